//! Benchmark of the agent binary (release build) in a real node namespace against a private
//! control plane, Services whose status the bench writes itself (no allocator):
//!
//! 1. Service status change → address on the interface: 1,000 changes, alternating a local and
//!    a virtual Service and the two families. The time runs from just before the status write
//!    to the kernel's RTM_NEWADDR for the new address, as an rtnetlink address listener inside
//!    the node namespace receives it (no polling); the old address's RTM_DELADDR likewise.
//! 2. 5,000 Services (local and virtual, both families, one address each, mostly virtual IPv6;
//!    see [`bulk_address`]) written while no agent runs; then an agent restart after a graceful stop (the kernel has none of them): the time
//!    from the spawn until a netlink dump (every 20 ms) shows all 5,000 addresses.
//! 3. A restart after SIGKILL (the addresses are still there): the time until `/readyz`.
//! 4. Peak RSS: VmHWM of the agents that held the 5,000 addresses, after a few seconds of
//!    renewals.
//!
//! Figures are printed and written to `target/bench/results.json` under `lbnodeagent`.

#[path = "../tests/world/mod.rs"]
mod world;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_api::annotations::ALLOCATED_FROM;
use ferrolb_api::servicegroup::{LocalSpec, Pool, VirtualSpec};
use ferrolb_api::{LBNodeAgentSpec, ServiceGroup, ServiceGroupSpec};
use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::results::{Tier, record};
use ferrolb_e2e::topology::Process;
use ferrolb_lbnodeagent::netlink::Netlink;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use nix::sched::CloneFlags;
use rtnetlink::MulticastGroup;
use serde_json::{Value, json};
use world::World;

const CHANGES: usize = 1_000;
const SERVICES: usize = 5_000;
/// Create requests in flight at once.
const CONCURRENCY: usize = 32;
/// Pause between two status changes, so each meets an agent at rest.
const GAP: Duration = Duration::from_millis(25);
/// One change whose address does not show up within this counts as lost.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lost changes tolerated before the run gives up.
const MAX_LOST: usize = 10;
/// Convergence of 5,000 and readiness give up after this.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
/// Steady state with 5,000 (renewals running) before the peak RSS is read.
const SETTLE: Duration = Duration::from_secs(6);
/// The whole run gives up after this.
const BUDGET: Duration = Duration::from_secs(8 * 60);
const METRICS_PORT: u16 = 9471;
/// Targets from issue 6.
const TARGET_P99_MS: f64 = 20.0;
const TARGET_CONVERGE_S: f64 = 2.0;
const TARGET_RSS_MIB: f64 = 30.0;

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The bench's own groups (the world's pools are too small for 5,000): ranges inside
/// DESIGN.md's documentation subnets.
struct Groups {
    local: String,
    virtual_: String,
    cp: &'static ControlPlane,
}

impl Groups {
    async fn create(w: &World) -> anyhow::Result<Groups> {
        let pool = |subnet: &str, pool: &str, aggregation: Option<&str>| Pool {
            subnet: subnet.into(),
            pool: pool.into(),
            aggregation: aggregation.map(Into::into),
        };
        let local = ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: vec![pool("192.0.2.0/24", "192.0.2.100-192.0.2.250", None)],
                v6pools: vec![pool("2001:db8:1::/64", "2001:db8:1::1:0/112", None)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let virtual_ = ServiceGroupSpec {
            virtual_: Some(VirtualSpec {
                v4pools: vec![pool("203.0.113.0/24", "203.0.113.0/24", Some("/28"))],
                v6pools: vec![pool(
                    "2001:db8:ff::/48",
                    "2001:db8:ff::1:0/112",
                    Some("/64"),
                )],
                bgp: None,
            }),
            ..Default::default()
        };
        let groups = Groups {
            local: format!("{}-blocal", w.name()),
            virtual_: format!("{}-bvirtual", w.name()),
            cp: w.cp,
        };
        let api = Api::<ServiceGroup>::all(w.client.clone());
        for (name, spec) in [(&groups.local, local), (&groups.virtual_, virtual_)] {
            api.create(&PostParams::default(), &ServiceGroup::new(name, spec))
                .await
                .with_context(|| format!("create ServiceGroup {name}"))?;
        }
        Ok(groups)
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        let _ = self
            .cp
            .kubectl()
            .arg("delete")
            .args([
                format!("servicegroup/{}", self.local),
                format!("servicegroup/{}", self.virtual_),
            ])
            .args(["--wait=false", "--ignore-not-found"])
            .output();
    }
}

/// Runs `body` on a thread of its own inside network namespace `ns`, with a current-thread
/// runtime: its sockets belong to that namespace.
async fn in_netns<T, F, Fut>(ns: &str, body: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_in_netns(ns, body, tx);
    rx.await.context("the namespace thread panicked")?
}

fn spawn_in_netns<T, F, Fut>(
    ns: &str,
    body: F,
    done: tokio::sync::oneshot::Sender<anyhow::Result<T>>,
) -> std::thread::JoinHandle<()>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let run = || -> anyhow::Result<T> {
            let file = File::open(&path).with_context(|| path.clone())?;
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(body())
        };
        let _ = done.send(run());
    })
}

/// An address appearing (RTM_NEWADDR of an address not there before) or going away.
struct AddressEvent {
    address: IpAddr,
    added: bool,
    at: Instant,
}

/// An rtnetlink address listener in the node namespace, and what it has seen.
struct Monitor {
    events: tokio::sync::mpsc::UnboundedReceiver<AddressEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    present: HashSet<IpAddr>,
    appeared: HashMap<IpAddr, Instant>,
    removed: HashMap<IpAddr, Instant>,
}

impl Monitor {
    async fn start(ns: &str) -> anyhow::Result<Monitor> {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let body = move || async move {
            let (conn, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
                MulticastGroup::Ipv4Ifaddr,
                MulticastGroup::Ipv6Ifaddr,
            ])?;
            tokio::spawn(conn);
            let _ = ready_tx.send(Ok(()));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    message = messages.next() => {
                        let Some((message, _)) = message else { break };
                        let at = Instant::now();
                        let (msg, added) = match message.payload {
                            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
                                (m, true)
                            }
                            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => {
                                (m, false)
                            }
                            _ => continue,
                        };
                        if let Some(address) = address_of(&msg)
                            && tx.send(AddressEvent { address, added, at }).is_err()
                        {
                            break;
                        }
                    }
                }
            }
            Ok(())
        };
        let (done, _ignored) = tokio::sync::oneshot::channel();
        spawn_in_netns(ns, body, done);
        ready
            .await
            .context("the address listener did not start")??;
        Ok(Monitor {
            events,
            stop: Some(stop),
            present: HashSet::new(),
            appeared: HashMap::new(),
            removed: HashMap::new(),
        })
    }

    fn take(&mut self, e: AddressEvent) {
        if e.added {
            if self.present.insert(e.address) {
                self.appeared.insert(e.address, e.at);
            }
        } else {
            self.present.remove(&e.address);
            self.removed.insert(e.address, e.at);
        }
    }

    /// Takes events until `done` holds, for at most `timeout`.
    async fn until(&mut self, timeout: Duration, done: impl Fn(&Monitor) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(event) = self.events.try_recv() {
            self.take(event);
        }
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.take(event),
                Ok(None) | Err(_) => return false,
            }
            while let Ok(event) = self.events.try_recv() {
                self.take(event);
            }
        }
        true
    }

    fn appeared_since(&self, address: IpAddr, t0: Instant) -> Option<Duration> {
        let at = *self.appeared.get(&address)?;
        (self.present.contains(&address) && at >= t0).then(|| at - t0)
    }

    fn removed_since(&self, address: IpAddr, t0: Instant) -> Option<Duration> {
        let at = *self.removed.get(&address)?;
        (!self.present.contains(&address) && at >= t0).then(|| at - t0)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attribute in &msg.attributes {
        match attribute {
            AddressAttribute::Local(a) => return Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

/// The `ENV` settings of the agent image (`Dockerfile.agent`), e.g. its malloc arenas.
fn image_env() -> anyhow::Result<Vec<(String, String)>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile.agent");
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|kv| kv.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The agent binary in the node namespace, SIGKILLed on drop.
struct Agent {
    process: Process,
}

impl Agent {
    fn start(w: &World) -> anyhow::Result<Agent> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrolb-agent"));
        cmd.arg("--node-name")
            .arg(&w.nodes[0])
            .arg("--kubeconfig")
            .arg(w.cp.management_kubeconfig())
            .args(["--watch-namespace", w.name()])
            .args(["--namespace", w.name()])
            .args(["--metrics-addr", &format!("127.0.0.1:{METRICS_PORT}")])
            // As deployed: the binary's default level, and the agent image's environment.
            .env("RUST_LOG", "info")
            .envs(image_env()?);
        let process = w.topo.spawn_in(w.node_ns(0), &cmd)?;
        // `setpriv` and `ip netns exec` exec into the agent: the pid is the agent's.
        let agent = Agent { process };
        let deadline = Instant::now() + Duration::from_secs(2);
        while agent.process.proc_file("comm").trim() != "ferrolb-agent" {
            if Instant::now() > deadline {
                bail!(
                    "pid {} is {:?}, not the agent",
                    agent.process.id(),
                    agent.process.proc_file("comm")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(agent)
    }

    /// VmHWM (peak) and VmRSS (now), in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        (
            self.process.status_mib("VmHWM:"),
            self.process.status_mib("VmRSS:"),
        )
    }

    /// What VmRSS is now made of, in MiB: heap and stacks (RssAnon) and mapped files, the
    /// binary's own pages mostly (RssFile).
    fn rss_split(&self) -> Value {
        json!({
            "anon_mib": round(self.process.status_mib("RssAnon:"), 1),
            "file_mib": round(self.process.status_mib("RssFile:"), 1),
        })
    }

    /// Whether it exited, and the last lines of its log: for error messages.
    fn state(&mut self) -> String {
        let log = self.process.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        match self.process.exited() {
            Some(exited) => exited,
            None => format!("the agent runs; its last lines:\n{tail}"),
        }
    }

    /// SIGTERM, and wait for the graceful stop (drain included).
    fn stop(mut self) {
        self.process.stop(Duration::from_secs(20));
    }

    fn kill(mut self) {
        self.process.kill();
    }
}

/// `GET path` on the agent's metrics port inside `ns`: (status line, body).
async fn http_get(ns: &str, path: &str) -> anyhow::Result<String> {
    let path = path.to_string();
    in_netns(ns, move || async move { http_get_here(&path) }).await
}

fn http_get_here(path: &str) -> anyhow::Result<String> {
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, METRICS_PORT));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Polls `/readyz` in `ns` every 5 ms until it answers 200: the time since `t0`.
async fn ready_after(ns: &str, t0: Instant) -> anyhow::Result<Duration> {
    in_netns(ns, move || async move {
        loop {
            if http_get_here("/readyz").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > CONVERGE_TIMEOUT {
                bail!("/readyz not 200 after {CONVERGE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .await
}

/// How many of `want` a netlink dump in `ns` shows now.
async fn present_now(ns: &str, want: &HashSet<IpAddr>) -> anyhow::Result<usize> {
    let want = want.clone();
    in_netns(ns, move || async move {
        let netlink = Netlink::connect()?;
        let all = netlink.addresses().await?;
        Ok(all
            .iter()
            .filter(|(_, a)| want.contains(&a.address))
            .count())
    })
    .await
}

/// Dumps the addresses in `ns` every 20 ms until all of `want` are there: for each set, the
/// time since `t0` of the first dump that saw all of it.
async fn all_present_after(
    ns: &str,
    want: &[HashSet<IpAddr>],
    t0: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let want = want.to_vec();
    in_netns(ns, move || async move {
        let netlink = Netlink::connect()?;
        let mut done: Vec<Option<Duration>> = vec![None; want.len()];
        loop {
            let all = netlink.addresses().await?;
            let now = t0.elapsed();
            let there: HashSet<IpAddr> = all.iter().map(|(_, a)| a.address).collect();
            for (set, done) in want.iter().zip(done.iter_mut()) {
                if done.is_none() && set.iter().all(|a| there.contains(a)) {
                    *done = Some(now);
                }
            }
            if done.iter().all(Option::is_some) {
                return Ok(done.into_iter().flatten().collect());
            }
            if now > CONVERGE_TIMEOUT {
                let seen: Vec<usize> = want
                    .iter()
                    .map(|s| s.iter().filter(|a| there.contains(a)).count())
                    .collect();
                bail!(
                    "{seen:?} of {:?} addresses after {CONVERGE_TIMEOUT:?}",
                    want.iter().map(HashSet::len).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// `perf record` of the agent while `FERROLB_BENCH_PROFILE` names an output file.
fn profile(agent: &Agent) -> Option<Process> {
    let out = std::env::var("FERROLB_BENCH_PROFILE").ok()?;
    let mut cmd = ferrolb_e2e::process::tied("perf");
    cmd.args(["record", "-F", "499", "-g", "-o", &out, "-p"])
        .arg(agent.process.id().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Process::spawn("perf", cmd, None).ok()
}

fn end_profile(perf: Option<Process>) {
    if let Some(mut perf) = perf {
        let _ = perf.signal("INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while perf.exit_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The agent's reconcile histogram: (rounds, mean seconds per round).
fn reconcile_rounds(metrics: &str) -> (u64, f64) {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let count = value("ferrolb_agent_reconcile_duration_seconds_count");
    let sum = value("ferrolb_agent_reconcile_duration_seconds_sum");
    (count as u64, if count > 0.0 { sum / count } else { 0.0 })
}

fn v4(base: [u8; 3], host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(base[0], base[1], base[2], host))
}

/// `prefix` + `n` in the last 32 bits.
fn v6(prefix: [u16; 6], n: u32) -> IpAddr {
    let [a, b, c, d, e, f] = prefix;
    IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, (n >> 16) as u16, n as u16))
}

const LOCAL_V6: [u16; 6] = [0x2001, 0xdb8, 1, 0, 0, 0];
const VIRTUAL_V6: [u16; 6] = [0x2001, 0xdb8, 0xff, 0, 0, 0];

/// The address of latency change `k` of one (kind, family): local v4 192.0.2.100-149 and
/// virtual v4 203.0.113.1-50 in turn (reused 50 changes later, long gone by then); v6 fresh.
fn change_address(local: bool, ipv6: bool, k: usize) -> IpAddr {
    let k32 = u32::try_from(k).expect("few changes");
    let cycle = u8::try_from(k % 50).expect("below 50");
    match (local, ipv6) {
        (true, false) => v4([192, 0, 2], 100 + cycle),
        (false, false) => v4([203, 0, 113], 1 + cycle),
        (true, true) => v6(LOCAL_V6, 0x1_0000 + k32),
        (false, true) => v6(VIRTUAL_V6, 0x1_0000 + k32),
    }
}

/// Local IPv6 addresses among the 5,000: one /120 pool's worth (DESIGN.md's example), as a LAN
/// hands out. Each IPv6 address on an ARP-capable interface joins its solicited-node group,
/// and this kernel walks every group of the device on each IPv6 address write
/// (`ipv6_find_idev` → `ipv6_mc_up`): thousands of local IPv6 addresses on one interface cost
/// O(n²) in the kernel per renewal pass (measured: 2,350 of them kept a core 93% busy).
const BULK_LOCAL_V6: usize = 250;

/// The 5,000: 100 local v4 (192.0.2.151-250), 200 virtual v4 (203.0.113.51-250),
/// [`BULK_LOCAL_V6`] local v6 and the rest virtual v6. (local, address) by index.
fn bulk_address(i: usize) -> (bool, IpAddr) {
    let n = |x: usize| u32::try_from(x).expect("few services");
    let h = |x: usize| u8::try_from(x).expect("a host part");
    match i {
        _ if i < 100 => (true, v4([192, 0, 2], h(151 + i))),
        _ if i < 300 => (false, v4([203, 0, 113], h(51 + i - 100))),
        _ if i < 300 + BULK_LOCAL_V6 => (true, v6(LOCAL_V6, 0x1_8000 + n(i - 300))),
        _ => (false, v6(VIRTUAL_V6, 0x1_8000 + n(i - 300 - BULK_LOCAL_V6))),
    }
}

fn service_body(name: &str, group: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": { ALLOCATED_FROM: group } },
        "spec": {
            "type": "LoadBalancer",
            // 5,000 LoadBalancer Services would exhaust the NodePort range.
            "allocateLoadBalancerNodePorts": false,
            "ports": [ { "port": 80 } ],
        }
    }))?)
}

async fn set_ip(api: &Api<Service>, name: &str, ip: IpAddr) -> anyhow::Result<()> {
    let patch =
        json!({ "status": { "loadBalancer": { "ingress": [ { "ip": ip.to_string() } ] } } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("status of {name}"))?;
    Ok(())
}

/// Sorted milliseconds → p50, p99, max, mean, n.
fn summary(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return json!({ "n": 0 });
    }
    v.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        round(v[rank - 1], 2)
    };
    json!({
        "n": v.len(),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(v[v.len() - 1], 2),
        "mean_ms": round(v.iter().sum::<f64>() / v.len() as f64, 2),
    })
}

/// Phase 1: 1,000 status changes → RTM_NEWADDR of the new address (and RTM_DELADDR of the old).
async fn latency(w: &World, groups: &Groups, ns: &str) -> anyhow::Result<Value> {
    let api: Api<Service> = Api::namespaced(w.client.clone(), w.name());
    let mut monitor = Monitor::start(ns).await?;
    let names = ["lat-local", "lat-virtual"];
    let mut current: [Option<IpAddr>; 2] = [None, None];
    for (name, group) in names.iter().zip([&groups.local, &groups.virtual_]) {
        api.create(&PostParams::default(), &service_body(name, group)?)
            .await?;
    }
    // Warm-up: one address of each, so the agent is past its gossip settle and first rounds.
    let mut counters: HashMap<(bool, bool), usize> = HashMap::new();
    for (j, name) in names.iter().enumerate() {
        let address = change_address(j == 0, false, 49);
        set_ip(&api, name, address).await?;
        let t0 = Instant::now() - Duration::from_secs(60);
        if !monitor
            .until(Duration::from_secs(30), |m| {
                m.appeared_since(address, t0).is_some()
            })
            .await
        {
            bail!("warm-up address {address} never appeared");
        }
        current[j] = Some(address);
    }
    let mut adds: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut removes = Vec::new();
    let mut api_ms = Vec::new();
    let mut lost = 0;
    let started = Instant::now();
    for i in 0..CHANGES {
        let j = i % 2;
        let (local, ipv6) = (j == 0, (i / 2) % 2 == 1);
        let counter = counters.entry((local, ipv6)).or_default();
        let address = change_address(local, ipv6, *counter);
        *counter += 1;
        if !monitor
            .until(CHANGE_TIMEOUT, |m| !m.present.contains(&address))
            .await
        {
            bail!("{address} is still there from an earlier change");
        }
        let t0 = Instant::now();
        set_ip(&api, names[j], address).await?;
        api_ms.push(ms(t0.elapsed()));
        let old = current[j].replace(address);
        let done = monitor
            .until(CHANGE_TIMEOUT, |m| {
                m.appeared_since(address, t0).is_some()
                    && old.is_none_or(|o| m.removed_since(o, t0).is_some())
            })
            .await;
        let key = match (local, ipv6) {
            (true, false) => "local_v4",
            (true, true) => "local_v6",
            (false, false) => "virtual_v4",
            (false, true) => "virtual_v6",
        };
        match monitor.appeared_since(address, t0) {
            Some(d) => adds.entry(key).or_default().push(ms(d)),
            None => {
                lost += 1;
                eprintln!("change {i}: {address} did not appear within {CHANGE_TIMEOUT:?}");
            }
        }
        if let Some(d) = old.and_then(|o| monitor.removed_since(o, t0)) {
            removes.push(ms(d));
        }
        if !done && lost > MAX_LOST {
            bail!("{lost} changes lost");
        }
        tokio::time::sleep(GAP).await;
    }
    let elapsed = started.elapsed();
    // Leave nothing behind for the next phase.
    for name in names {
        api.delete(name, &Default::default()).await?;
    }
    let last: Vec<IpAddr> = current.iter().flatten().copied().collect();
    monitor
        .until(Duration::from_secs(10), |m| {
            last.iter().all(|a| !m.present.contains(a))
        })
        .await;
    let all: Vec<f64> = adds.values().flatten().copied().collect();
    let mut out = json!({
        "changes": CHANGES,
        "lost": lost,
        "seconds": round(elapsed.as_secs_f64(), 1),
        "status_to_address": summary(all),
        "old_address_removed": summary(removes),
        "status_write_api_call": summary(api_ms),
    });
    for (key, v) in adds {
        out["by_kind"][key] = summary(v);
    }
    Ok(out)
}

/// Phase 2: the 5,000 Services, written while no agent runs.
/// (local addresses, virtual addresses, seconds).
async fn create_bulk(
    w: &World,
    groups: &Groups,
) -> anyhow::Result<(HashSet<IpAddr>, HashSet<IpAddr>, f64)> {
    let api: Api<Service> = Api::namespaced(w.client.clone(), w.name());
    let started = Instant::now();
    let results: Vec<(bool, IpAddr)> = stream::iter(0..SERVICES)
        .map(|i| {
            let api = api.clone();
            let (local, address) = bulk_address(i);
            let group = if local {
                groups.local.clone()
            } else {
                groups.virtual_.clone()
            };
            async move {
                let name = format!("s-{i:04}");
                api.create(&PostParams::default(), &service_body(&name, &group)?)
                    .await
                    .with_context(|| format!("create {name}"))?;
                set_ip(&api, &name, address).await?;
                anyhow::Ok((local, address))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let local: HashSet<IpAddr> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
    let virtual_: HashSet<IpAddr> = results.iter().filter(|r| !r.0).map(|r| r.1).collect();
    if local.len() + virtual_.len() != SERVICES {
        bail!(
            "{} distinct addresses for {SERVICES} Services",
            local.len() + virtual_.len()
        );
    }
    Ok((local, virtual_, started.elapsed().as_secs_f64()))
}

async fn run(w: &World) -> anyhow::Result<Value> {
    let budget = Instant::now() + BUDGET;
    let ns = w.node_ns(0).to_string();
    let groups = Groups::create(w).await?;
    let over = |what: &str| -> anyhow::Result<()> {
        if Instant::now() > budget {
            bail!("over the {BUDGET:?} budget before {what}");
        }
        Ok(())
    };

    // 1. Latency, with only the two Services of the phase.
    let agent = Agent::start(w)?;
    ready_after(&ns, Instant::now()).await?;
    let latency = latency(w, &groups, &ns).await;
    let latency = match latency {
        Ok(v) => v,
        Err(e) => {
            let mut agent = agent;
            bail!("{e:#}\n{}", agent.state());
        }
    };
    println!(
        "status change → address: {}",
        serde_json::to_string(&latency["status_to_address"])?
    );
    println!(
        "  old address removed:  {}",
        serde_json::to_string(&latency["old_address_removed"])?
    );
    agent.stop();

    // 2. The 5,000, while no agent runs; the graceful stop left none of them in the kernel.
    over("the 5,000 Services")?;
    let (local, virtual_, create_s) = create_bulk(w, &groups).await?;
    let want: HashSet<IpAddr> = local.union(&virtual_).copied().collect();
    println!("{SERVICES} Services with their status written in {create_s:.1} s");
    let before = present_now(&ns, &want).await?;
    if before != 0 {
        bail!("{before} of the addresses are in the kernel before the agent starts");
    }

    // 3. Restart after a graceful stop: the time until all 5,000 are on the interfaces.
    over("the restart")?;
    let t0 = Instant::now();
    let mut agent = Agent::start(w)?;
    let perf = profile(&agent);
    let converged = all_present_after(&ns, &[local.clone(), virtual_.clone()], t0).await;
    let (local_s, virtual_s) = match converged.as_deref() {
        Ok([l, v]) => (l.as_secs_f64(), v.as_secs_f64()),
        Ok(_) => unreachable!("two sets"),
        Err(e) => bail!("{e:#}\n{}", agent.state()),
    };
    let converged = Duration::from_secs_f64(local_s.max(virtual_s));
    let cpu_converge = agent.process.cpu_seconds();
    let ready = ready_after(&ns, t0).await?;
    println!(
        "restart after a graceful stop: all {SERVICES} addresses after {:.3} s (virtual {virtual_s:.3} s, local {local_s:.3} s; ready after {:.3} s, {cpu_converge:.2} s CPU)",
        converged.as_secs_f64(),
        ready.as_secs_f64()
    );
    let cpu_before = agent.process.cpu_seconds();
    tokio::time::sleep(SETTLE).await;
    let cpu_steady = (agent.process.cpu_seconds() - cpu_before) / SETTLE.as_secs_f64();
    let (hwm_graceful, rss_graceful) = agent.rss_mib();
    let split_graceful = agent.rss_split();
    end_profile(perf);
    if let Ok(out) = std::env::var("FERROLB_BENCH_PROFILE") {
        std::fs::write(format!("{out}.log"), agent.process.log())?;
    }
    let metrics = http_get(&ns, "/metrics").await.unwrap_or_default();
    let (rounds, mean_round) = reconcile_rounds(&metrics);
    println!(
        "  peak RSS {hwm_graceful:.1} MiB, now {rss_graceful:.1} MiB ({split_graceful}); {rounds} rounds, mean {:.1} ms; steady CPU {:.0}% of a core",
        mean_round * 1000.0,
        cpu_steady * 100.0
    );
    if let Some(e) = agent.process.exited() {
        bail!("the agent died: {e}");
    }

    // 4. Restart after SIGKILL: the addresses are still there; the time until ready, then all
    //    5,000 are checked.
    over("the SIGKILL restart")?;
    agent.kill();
    let t0 = Instant::now();
    let mut agent = Agent::start(w)?;
    let ready_kill = match ready_after(&ns, t0).await {
        Ok(d) => d,
        Err(e) => bail!("{e:#}\n{}", agent.state()),
    };
    let after_kill = match all_present_after(&ns, std::slice::from_ref(&want), t0).await {
        Ok(d) => d[0],
        Err(e) => bail!("{e:#}\n{}", agent.state()),
    };
    println!(
        "restart after SIGKILL: ready after {:.3} s, all {SERVICES} there at {:.3} s",
        ready_kill.as_secs_f64(),
        after_kill.as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let (hwm_kill, rss_kill) = agent.rss_mib();
    let split_kill = agent.rss_split();
    println!("  peak RSS {hwm_kill:.1} MiB, now {rss_kill:.1} MiB ({split_kill})");
    if let Some(e) = agent.process.exited() {
        bail!("the agent died: {e}");
    }
    agent.kill();

    let p99 = latency["status_to_address"]["p99_ms"]
        .as_f64()
        .unwrap_or(f64::MAX);
    let converge_s = converged.as_secs_f64();
    let peak = hwm_graceful.max(hwm_kill);
    Ok(json!({
        "status_change": latency,
        "services": SERVICES,
        "mix": format!(
            "local: 100 IPv4 + {BULK_LOCAL_V6} IPv6; virtual: 200 IPv4 + {} IPv6",
            SERVICES - 300 - BULK_LOCAL_V6
        ),
        "create_services_s": round(create_s, 1),
        "restart_graceful": {
            "all_addresses_s": round(converge_s, 3),
            "all_local_s": round(local_s, 3),
            "all_virtual_s": round(virtual_s, 3),
            "ready_s": round(ready.as_secs_f64(), 3),
            "cpu_s": round(cpu_converge, 2),
            "peak_rss_mib": round(hwm_graceful, 1),
            "rss_mib": round(rss_graceful, 1),
            "rss_now": split_graceful,
            "steady_cpu_fraction": round(cpu_steady, 3),
            "rounds": rounds,
            "mean_round_ms": round(mean_round * 1000.0, 2),
        },
        "restart_sigkill": {
            "ready_s": round(ready_kill.as_secs_f64(), 3),
            "all_addresses_s": round(after_kill.as_secs_f64(), 3),
            "peak_rss_mib": round(hwm_kill, 1),
            "rss_mib": round(rss_kill, 1),
            "rss_now": split_kill,
        },
        "peak_rss_mib": round(peak, 1),
        "targets": {
            "status_to_address_p99_ms": TARGET_P99_MS,
            "converge_5000_s": TARGET_CONVERGE_S,
            "peak_rss_mib": TARGET_RSS_MIB,
        },
        "met": {
            "status_to_address_p99": p99 < TARGET_P99_MS,
            "converge_5000": converge_s < TARGET_CONVERGE_S,
            "peak_rss": peak < TARGET_RSS_MIB,
        },
        "method": "status change: the time from before the status PATCH to the RTM_NEWADDR an \
                   rtnetlink listener in the node namespace receives; convergence: from the \
                   spawn after a graceful stop until a netlink dump (every 20 ms) shows all \
                   addresses; RSS: VmHWM of /proc/<pid>/status after 6 s at 5,000",
        "agent_settings": "LBNodeAgent defaults (localAddressLifetime 5s), drain 1s, RUST_LOG=info",
        "agent_environment": image_env()?.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut spec = LBNodeAgentSpec {
        drain: "1s".into(),
        ..Default::default()
    };
    // Diagnosis: `FERROLB_BENCH_GRATUITOUS=off` runs the agents without gratuitous ARP/NA.
    let gratuitous = std::env::var("FERROLB_BENCH_GRATUITOUS").unwrap_or_default() != "off";
    spec.gratuitous.enabled = gratuitous;
    let Some(w) = World::with_nodes("abn", "agentbench", spec, 1).await else {
        eprintln!("SKIPPED: the agent benchmark needs root and the control plane");
        return Ok(());
    };
    let mut figures = run(&w).await?;
    figures["gratuitous"] = gratuitous.into();
    let key = if gratuitous {
        "lbnodeagent"
    } else {
        "lbnodeagent_without_gratuitous"
    };
    let path = record(Tier::Bench, key, figures)?;
    println!("figures: {}", path.display());
    Ok(())
}
