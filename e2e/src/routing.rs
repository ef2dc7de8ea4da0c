//! Routing checks on top of [`World`], shared by `e2e/tests/routing*.rs` and the routing
//! benchmark: virtual ServiceGroups and Services, the ToR's view of a route (next hops,
//! communities, local preference), requests from the client namespace, and a route monitor on
//! the ToR for timings.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use crate::env;
use crate::process::Process;
use crate::topology::{Frr, NODE_ASN, TOR_ASN, TOR_LAN_V4, TOR_LAN_V6, in_namespace};
use crate::world::{RESPONDER_PORT, World};

/// Namespace of the test Services.
pub const NAMESPACE: &str = "default";
/// Group annotation (DESIGN.md, Contracts).
pub const GROUP_ANNOTATION: &str = "ferrolb.io/service-group";

/// A virtual ServiceGroup: one IPv4 pool and optionally one IPv6 pool, aggregation as given,
/// its BGP attributes.
#[derive(Debug, Clone)]
pub struct VirtualGroup<'a> {
    pub name: &'a str,
    pub v4: &'a str,
    pub v4_aggregation: &'a str,
    pub v6: Option<(&'a str, &'a str)>,
    pub communities: &'a [&'a str],
    pub large_communities: &'a [&'a str],
    pub local_preference: Option<u32>,
}

impl VirtualGroup<'_> {
    pub fn yaml(&self) -> String {
        let quote = |items: &[&str]| {
            items
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "apiVersion: ferrolb.io/v1\nkind: ServiceGroup\nmetadata:\n  name: {}\nspec:\n  autoAssign: false\n  virtual:\n    v4pools:\n      - subnet: {}\n        pool: {}\n        aggregation: {}\n",
            self.name, self.v4, self.v4, self.v4_aggregation
        );
        if let Some((pool, aggregation)) = self.v6 {
            s += &format!(
                "    v6pools:\n      - subnet: {pool}\n        pool: {pool}\n        aggregation: {aggregation}\n"
            );
        }
        s += &format!(
            "    bgp:\n      communities: [{}]\n      largeCommunities: [{}]\n",
            quote(self.communities),
            quote(self.large_communities)
        );
        if let Some(lp) = self.local_preference {
            s += &format!("      localPreference: {lp}\n");
        }
        s
    }
}

/// `kubectl apply` of YAML text (written to a file in the world's scratch dir).
pub fn apply(world: &World, name: &str, yaml: &str) -> anyhow::Result<()> {
    let path = world.topo.dir().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml)?;
    let out = world
        .cp
        .kubectl()
        .args(["apply", "-f"])
        .arg(&path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A LoadBalancer Service on port [`RESPONDER_PORT`] from `group`; dual-stack when `dual`,
/// `externalTrafficPolicy: Local` when `etp_local`.
pub fn service(name: &str, group: &str, dual: bool, etp_local: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            annotations: Some([(GROUP_ANNOTATION.to_string(), group.to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ip_family_policy: Some(
                if dual {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                }
                .into(),
            ),
            ip_families: Some(if dual {
                vec!["IPv4".into(), "IPv6".into()]
            } else {
                vec!["IPv4".into()]
            }),
            external_traffic_policy: etp_local.then(|| "Local".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(RESPONDER_PORT),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn services(world: &World) -> anyhow::Result<Api<Service>> {
    Ok(Api::namespaced(world.cp.client().await?, NAMESPACE))
}

pub async fn create_service(api: &Api<Service>, svc: &Service) -> anyhow::Result<()> {
    api.create(&PostParams::default(), svc).await?;
    Ok(())
}

pub async fn delete_service(api: &Api<Service>, name: &str) -> anyhow::Result<()> {
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// The ingress addresses of a Service once it has `count` of them (bounded wait).
pub async fn ingress(
    api: &Api<Service>,
    name: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<IpAddr>> {
    let start = Instant::now();
    loop {
        let svc = api.get(name).await?;
        let ips: Vec<IpAddr> = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
            .collect();
        if ips.len() >= count {
            return Ok(ips);
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "Service {name}: {count} addresses not within {timeout:?} (has {ips:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The prefix `addr/len` with host bits cleared, as FRR prints it.
pub fn prefix(addr: IpAddr, len: u8) -> String {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a) & (u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0));
            format!("{}/{len}", std::net::Ipv4Addr::from(bits))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a) & (u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0));
            format!("{}/{len}", std::net::Ipv6Addr::from(bits))
        }
    }
}

/// Next hops of the ToR's installed route for exactly `prefix`, sorted; empty when none (or
/// when vtysh fails, which the caller's bounded wait treats as "not yet").
pub fn nexthops(frr: &Frr, prefix: &str) -> Vec<IpAddr> {
    let mut hops = frr.route_nexthops(prefix).unwrap_or_default();
    hops.sort();
    hops.dedup();
    hops
}

/// The LAN next hop the ToR shows for node `i` in `family` (link-local for IPv6).
pub fn node_hop(world: &World, i: usize, v6: bool) -> IpAddr {
    let node = world.topo.node(i);
    if v6 {
        node.lan_link_local().into()
    } else {
        node.lan_v4().into()
    }
}

/// The sorted next hops expected for nodes `nodes`.
pub fn hops_of(world: &World, nodes: &[usize], v6: bool) -> Vec<IpAddr> {
    let mut hops: Vec<IpAddr> = nodes.iter().map(|&i| node_hop(world, i, v6)).collect();
    hops.sort();
    hops
}

/// The ToR's paths for `prefix` in its BGP table: (peer, communities, large communities,
/// local preference, multipath or best).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorPath {
    pub peer: String,
    pub communities: String,
    pub large_communities: String,
    pub local_pref: u64,
    pub used: bool,
}

pub fn tor_paths(frr: &Frr, prefix: &str) -> Vec<TorPath> {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let Ok(v) = frr.vtysh_json(&format!("show bgp {family} unicast {prefix} json")) else {
        return Vec::new();
    };
    let text = |p: &serde_json::Value, key: &str| {
        p.get(key)
            .and_then(|c| c.get("string"))
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string()
    };
    v.get("paths")
        .and_then(|p| p.as_array())
        .map(|paths| {
            paths
                .iter()
                .map(|p| TorPath {
                    peer: p
                        .get("peer")
                        .and_then(|x| x.get("peerId"))
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    communities: text(p, "community"),
                    large_communities: text(p, "largeCommunity"),
                    local_pref: p.get("locPrf").and_then(|l| l.as_u64()).unwrap_or(100),
                    used: p.get("multipath").and_then(|m| m.as_bool()) == Some(true)
                        || p.get("bestpath")
                            .and_then(|b| b.get("overall"))
                            .and_then(|o| o.as_bool())
                            == Some(true),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every prefix in the ToR's BGP table of one family.
pub fn tor_prefixes(frr: &Frr, v6: bool) -> Vec<String> {
    let family = if v6 { "ipv6" } else { "ipv4" };
    frr.vtysh_json(&format!("show bgp {family} unicast json"))
        .ok()
        .and_then(|v| {
            v.get("routes")
                .and_then(|r| r.as_object())
                .map(|r| r.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Starts a responder (`ferrolb-demo --respond`, answering `hello from <node>`) in every node
/// namespace. `World` starts its own from the running executable, which only works from
/// `ferrolb-demo`; in a test or bench those exit at once and these take port 80 instead.
pub fn start_responders(world: &World) -> anyhow::Result<Vec<Process>> {
    let demo = env::binary("ferrolb-demo");
    anyhow::ensure!(
        demo.exists(),
        "{} is not built (cargo build --bins)",
        demo.display()
    );
    let mut out = Vec::new();
    for (i, name) in world.names.iter().enumerate() {
        let mut cmd = Command::new(&demo);
        cmd.args(["--respond", name, &RESPONDER_PORT.to_string()]);
        out.push(world.topo.spawn_in(world.topo.node(i).ns_name(), &cmd)?);
    }
    Ok(out)
}

/// The values file [`World::start_sidecar`] writes, with or without BFD.
pub fn sidecar_values(bfd: bool) -> String {
    format!(
        "localASN: {NODE_ASN}\npeers:\n  - {{ address: {TOR_LAN_V4}, asn: {TOR_ASN}, bfd: {bfd} }}\n  - {{ address: \"{TOR_LAN_V6}\", asn: {TOR_ASN}, bfd: {bfd} }}\n"
    )
}

/// The scratch dir [`World::start_sidecar`] uses for node `i` (values, bird.conf, socket).
pub fn sidecar_dir(world: &World, i: usize) -> PathBuf {
    world
        .bird_socket(i)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Replaces node `i`'s bird-sidecar (and its BIRD) with one run as [`World::start_sidecar`]
/// does, but with `values`.
pub fn restart_sidecar_with(world: &mut World, i: usize, values: &str) -> anyhow::Result<()> {
    if let Some(mut old) = world.sidecars[i].take() {
        old.stop(Duration::ZERO);
    }
    let dir = sidecar_dir(world, i);
    std::fs::write(dir.join("values.yaml"), values)?;
    let _ = std::fs::remove_file(dir.join("bird.ctl"));
    let cmd = world.sidecar_command(i, &dir);
    let ns = world.topo.node(i).ns_name().to_string();
    world.sidecars[i] = Some(world.topo.spawn_in(&ns, &cmd)?);
    Ok(())
}

/// The pid of the BIRD that node `i`'s sidecar runs (found by its control socket argument).
pub fn bird_pid(world: &World, i: usize) -> Option<i32> {
    let socket = world.bird_socket(i).display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_bird = args
            .first()
            .is_some_and(|a| a == "bird" || a.ends_with("/bird"));
        (is_bird && args.contains(&socket)).then_some(pid)
    })
}

/// `birdc` on node `i`'s control socket.
pub fn birdc(world: &World, i: usize, args: &[&str]) -> String {
    let socket = world.bird_socket(i).display().to_string();
    let mut argv = vec!["birdc", "-s", socket.as_str()];
    argv.extend_from_slice(args);
    world.in_ns(world.topo.node(i).ns_name(), &argv)
}

/// Sets L4 ECMP hashing on the ToR, so connections from one client spread over the next hops
/// (the kernel default hashes on addresses only).
pub fn hash_on_ports(world: &World) -> anyhow::Result<()> {
    let tor = world
        .topo
        .tor_ns()
        .ok_or_else(|| anyhow::anyhow!("no ToR"))?;
    world.topo.run(
        tor,
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ],
    )?;
    Ok(())
}

/// One HTTP/1.0 request to `addr` from the current thread's namespace: the responder's body.
pub fn request(addr: IpAddr) -> Result<String, String> {
    let sock = SocketAddr::new(addr, RESPONDER_PORT);
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(1))
        .map_err(|e| format!("connect {sock}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send to {sock}: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read from {sock}: {e}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .ok_or_else(|| format!("{sock}: no HTTP response in {text:?}"))?;
    body.starts_with("hello from ")
        .then_some(body.clone())
        .ok_or_else(|| format!("{sock}: unexpected body {body:?}"))
}

/// Runs `f` on a thread of its own inside network namespace `ns` (the test thread never joins
/// it).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn enter(ns: &str) -> anyhow::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// From the client namespace: requests to `addr` (at most `max`, stopping once every node in
/// `want` has answered); who answered how often, and the failures.
pub fn spread(
    world: &World,
    addr: IpAddr,
    want: &[&str],
    max: usize,
) -> anyhow::Result<(BTreeMap<String, usize>, Vec<String>)> {
    let client = world
        .topo
        .client_ns()
        .ok_or_else(|| anyhow::anyhow!("no client namespace"))?;
    in_netns(client, || {
        let mut seen = BTreeMap::new();
        let mut failed = Vec::new();
        for _ in 0..max {
            match request(addr) {
                Ok(body) => {
                    let node = body.trim_start_matches("hello from ").to_string();
                    *seen.entry(node).or_insert(0) += 1;
                }
                Err(e) => failed.push(e),
            }
            if want.iter().all(|w| seen.contains_key(*w)) {
                break;
            }
        }
        (seen, failed)
    })
}

/// Requests in a loop from the client namespace on a thread of its own, one every `pace`,
/// until stopped, `max` requests were sent or `limit` has passed.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<LoopResult>>>,
}

/// What a [`RequestLoop`] saw.
#[derive(Debug, Default, Clone)]
pub struct LoopResult {
    pub sent: usize,
    /// Answers per node name.
    pub answered: BTreeMap<String, usize>,
    /// (time since the loop started, error)
    pub failed: Vec<(Duration, String)>,
    /// Per answer: (time since start, node), in order.
    pub timeline: Vec<(Duration, String)>,
}

impl RequestLoop {
    pub fn start(
        world: &World,
        addr: IpAddr,
        pace: Duration,
        max: usize,
        limit: Duration,
    ) -> anyhow::Result<RequestLoop> {
        let client = world
            .topo
            .client_ns()
            .ok_or_else(|| anyhow::anyhow!("no client namespace"))?
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            enter(&client)?;
            let start = Instant::now();
            let mut out = LoopResult::default();
            while !flag.load(Ordering::Relaxed) && out.sent < max && start.elapsed() < limit {
                out.sent += 1;
                match request(addr) {
                    Ok(body) => {
                        let node = body.trim_start_matches("hello from ").to_string();
                        *out.answered.entry(node.clone()).or_insert(0) += 1;
                        out.timeline.push((start.elapsed(), node));
                    }
                    Err(e) => out.failed.push((start.elapsed(), e)),
                }
                std::thread::sleep(pace);
            }
            Ok(out)
        });
        Ok(RequestLoop {
            stop,
            handle: Some(handle),
        })
    }

    pub fn finish(mut self) -> anyhow::Result<LoopResult> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => anyhow::bail!("the request loop was already finished"),
        }
    }
}

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `ip monitor route` in the ToR namespace: every route the ToR installs, replaces or deletes,
/// stamped when read, for timings finer than polling vtysh allows.
pub struct RouteMonitor {
    events: Arc<Mutex<Vec<RouteEvent>>>,
    _process: Process,
}

/// One route message: the destination, its next hops, whether it was a deletion.
#[derive(Debug, Clone)]
pub struct RouteEvent {
    /// When its first line was read.
    pub at: Instant,
    last: Instant,
    /// The next message has begun (so no more `nexthop` lines come).
    complete: bool,
    pub prefix: String,
    pub nexthops: Vec<IpAddr>,
    pub deleted: bool,
}

impl RouteMonitor {
    pub fn start(world: &World, v6: bool) -> anyhow::Result<RouteMonitor> {
        let tor = world
            .topo
            .tor_ns()
            .ok_or_else(|| anyhow::anyhow!("no ToR"))?;
        let mut cmd = in_namespace(tor, "ip");
        cmd.args([if v6 { "-6" } else { "-4" }, "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = world.topo.spawn("route-monitor", cmd)?;
        let stdout = process
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("ip monitor has no stdout"))?;
        let events: Arc<Mutex<Vec<RouteEvent>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let mut events = sink.lock().unwrap_or_else(|p| p.into_inner());
                // A multipath route continues on indented `nexthop` lines.
                if line.starts_with(char::is_whitespace) {
                    if let Some(ev) = events.last_mut() {
                        ev.nexthops.extend(parse_via(&line));
                        ev.last = now;
                    }
                    continue;
                }
                if let Some(ev) = events.last_mut() {
                    ev.complete = true;
                }
                let (deleted, rest) = match line.strip_prefix("Deleted ") {
                    Some(rest) => (true, rest),
                    None => (false, line.as_str()),
                };
                events.push(RouteEvent {
                    at: now,
                    last: now,
                    complete: false,
                    prefix: rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    nexthops: parse_via(rest),
                    deleted,
                });
            }
        });
        Ok(RouteMonitor {
            events,
            _process: process,
        })
    }

    /// Waits (bounded) for the first event after `since` for `prefix` satisfying `pred` on
    /// its next hops (deletions have none), and returns when it was read.
    pub fn wait(
        &self,
        prefix: &str,
        since: Instant,
        timeout: Duration,
        pred: impl Fn(&[IpAddr], bool) -> bool,
    ) -> anyhow::Result<Instant> {
        loop {
            {
                let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
                // Lines of one message arrive together: a message is whole once the next one
                // began or nothing followed for 20 ms.
                if let Some(ev) = events.iter().find(|e| {
                    e.at >= since
                        && (e.complete || e.last.elapsed() > Duration::from_millis(20))
                        && normalise(&e.prefix) == normalise(prefix)
                        && pred(&e.nexthops, e.deleted)
                }) {
                    return Ok(ev.at);
                }
            }
            anyhow::ensure!(
                since.elapsed() < timeout,
                "no route event for {prefix} within {timeout:?}; events: {:?}",
                self.events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter(|e| e.at >= since)
                    .map(|e| format!("{} {:?} deleted={}", e.prefix, e.nexthops, e.deleted))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// `ip monitor` prints host routes without the length.
fn normalise(prefix: &str) -> String {
    if prefix.contains('/') {
        prefix.to_string()
    } else if prefix.contains(':') {
        format!("{prefix}/128")
    } else {
        format!("{prefix}/32")
    }
}

/// The addresses after `via` (IPv4 or `inet6 <addr>`) in an `ip route` line.
fn parse_via(line: &str) -> Vec<IpAddr> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .chain(
            words
                .windows(3)
                .filter(|w| w[0] == "via" && w[1] == "inet6")
                .filter_map(|w| w[2].parse().ok()),
        )
        .collect()
}

/// How many of the ToR's BGP sessions are Established and have been up for at least `up_ms`
/// (past FRR's BFD re-registration flap, see `topology::Frr`); `None` when FRR does not answer.
pub fn established_for(frr: &Frr, up_ms: u64) -> Option<usize> {
    let v = frr.vtysh_json("show bgp neighbors json").ok()?;
    let peers = v.as_object()?;
    Some(
        peers
            .values()
            .filter(|n| {
                n.get("bgpState").and_then(|s| s.as_str()) == Some("Established")
                    && n.get("bgpTimerUpMsec").and_then(|m| m.as_u64()) >= Some(up_ms)
            })
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_clear_host_bits() {
        let cases = [
            ("203.0.113.5", 28, "203.0.113.0/28"),
            ("203.0.113.17", 28, "203.0.113.16/28"),
            ("203.0.113.17", 32, "203.0.113.17/32"),
            ("2001:db8:5::7", 120, "2001:db8:5::/120"),
            ("2001:db8:5::1:7", 64, "2001:db8:5::/64"),
        ];
        for (addr, len, want) in cases {
            assert_eq!(
                prefix(addr.parse().expect("literal"), len),
                want,
                "{addr}/{len}"
            );
        }
    }

    #[test]
    fn parses_next_hops_of_route_lines() {
        let cases: [(&str, &[&str]); 4] = [
            (
                "203.0.113.5 via 192.0.2.10 dev eth0 proto bgp metric 20",
                &["192.0.2.10"],
            ),
            (
                "\tnexthop via 192.0.2.11 dev eth0 weight 1",
                &["192.0.2.11"],
            ),
            (
                "\tnexthop via inet6 fe80::fb:1ff:fe01:a dev eth0 weight 1",
                &["fe80::fb:1ff:fe01:a"],
            ),
            ("203.0.113.0/28 proto bgp metric 20", &[]),
        ];
        for (line, want) in cases {
            let want: Vec<IpAddr> = want.iter().map(|a| a.parse().expect("literal")).collect();
            assert_eq!(parse_via(line), want, "{line}");
        }
        assert_eq!(normalise("203.0.113.5"), "203.0.113.5/32");
        assert_eq!(normalise("203.0.113.0/28"), "203.0.113.0/28");
    }
}
