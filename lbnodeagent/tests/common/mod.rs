//! Throw-away network namespaces for the root tests, and the snapshot they feed to `decide`.
//!
//! The netlink code runs on a thread that has `setns(2)`-ed into the test's namespace (nix's
//! safe wrapper, so no unsafe code) with a current-thread tokio runtime: the socket, the tasks
//! and the `/proc/sys/net` write all stay on that thread and in that namespace, while the test
//! process and the host's network are left alone. The harness itself may use `ip`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ferrolb_api::pool::{AddrRange, Aggregation, parse_cidr};
use ferrolb_api::servicegroup::GroupType;
use ferrolb_lbnodeagent::apply::{Applied, apply};
use ferrolb_lbnodeagent::decide::{Observed, desired, diff, holds_every_address};
use ferrolb_lbnodeagent::netlink::Netlink;
use ferrolb_lbnodeagent::observe::kernel_facts;
use ferrolb_lbnodeagent::snapshot::{
    AgentConfig, Group, GroupPool, InterfaceAddress, Lifecycle, LocalInterface, NodeFacts,
    ServiceAddresses, Snapshot,
};
use nix::sched::CloneFlags;

/// As e2e's `require_root`: under `CI=true` a test that cannot run fails; elsewhere it says
/// SKIPPED and returns `false`.
pub fn require_root() -> bool {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let missing = if !is_root {
        Some("not running as root")
    } else if !std::path::Path::new("/proc/self/ns/net").exists() {
        Some("no network namespace support in /proc")
    } else {
        None
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match missing {
        None => true,
        Some(why) if in_ci => {
            panic!("CI=true and this test needs root and network namespaces: {why}")
        }
        Some(why) => {
            eprintln!(
                "SKIPPED: this test needs root and network namespaces: {why} (under CI=true it would fail)"
            );
            false
        }
    }
}

const PREFIX: &str = "flbna-";

/// A network namespace named `flbna-<pid>-<n>`, deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        sweep_leftovers();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]).expect("ip netns add");
        let ns = Self { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n <ns> <args>`; panics when it fails.
    pub fn ip(&self, args: &str) -> String {
        self.try_ip(args)
            .unwrap_or_else(|e| panic!("ip {args}: {e}"))
    }

    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        let mut all = vec!["-n", &self.name];
        all.extend(args.split_whitespace());
        run("ip", &all)
    }

    /// A file under /proc/sys/net as the namespace sees it.
    pub fn sysctl(&self, path: &str) -> String {
        run("ip", &["netns", "exec", &self.name, "cat", path])
            .expect("read sysctl")
            .trim()
            .to_string()
    }

    /// A veth pair `name`/`name`p, both up: `name` has a carrier.
    pub fn veth(&self, name: &str, addrs: &[&str]) {
        self.ip(&format!("link add {name} type veth peer name {name}p"));
        self.ip(&format!("link set {name}p up"));
        self.ip(&format!("link set {name} up"));
        for a in addrs {
            let nodad = if a.contains(':') { " nodad" } else { "" };
            self.ip(&format!("addr add {a} dev {name}{nodad}"));
        }
    }

    /// Runs `body` on a thread inside the namespace, with its own current-thread runtime.
    pub fn run<T, F, Fut>(&self, body: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                .expect("setns into the test namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(body())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("could not delete namespace {}: {e}", self.name);
        }
    }
}

/// Namespaces of test processes that died without cleaning up (killed, not panicked).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", &name]);
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The lines `ip addr` prints for `addr` (the address line and its lifetime line).
pub fn ip_addr_lines(output: &str, addr: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    let i = lines.iter().position(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|a| a.starts_with(&format!("{addr}/")))
    })?;
    Some(format!(
        "{} {}",
        lines[i].trim(),
        lines.get(i + 1).map_or("", |l| l.trim())
    ))
}

pub fn svc(name: &str, group: &str, ips: &[&str]) -> ServiceAddresses {
    ServiceAddresses {
        key: format!("default/{name}"),
        group: group.into(),
        addresses: ips
            .iter()
            .map(|a| a.parse().expect("test address"))
            .collect(),
        ..Default::default()
    }
}

fn pool(subnet: &str, range: &str, aggregation: &str) -> GroupPool {
    GroupPool {
        subnet: parse_cidr(subnet).expect("subnet"),
        range: AddrRange::parse(range).expect("range"),
        aggregation: Aggregation::parse(aggregation).expect("aggregation"),
    }
}

/// Groups `lan` (local: 192.0.2.0/24, 2001:db8:1::/64) and `routed` (virtual: 203.0.113.0/24
/// in /28 aggregates, 2001:db8:ff::/48 in one /64 each).
pub fn groups() -> BTreeMap<String, Group> {
    BTreeMap::from([
        (
            "lan".into(),
            Group {
                kind: GroupType::Local,
                pools: vec![
                    pool("192.0.2.0/24", "192.0.2.100-192.0.2.150", "default"),
                    pool("2001:db8:1::/64", "2001:db8:1::/120", "default"),
                ],
            },
        ),
        (
            "routed".into(),
            Group {
                kind: GroupType::Virtual,
                pools: vec![
                    pool("203.0.113.0/24", "203.0.113.0/26", "/28"),
                    pool("2001:db8:ff::/48", "2001:db8:ff::/120", "/64"),
                ],
            },
        ),
    ])
}

/// One round of the agent: dump the kernel, decide, diff, apply.
pub async fn reconcile(
    netlink: &Netlink,
    services: Vec<ServiceAddresses>,
    lifecycle: Lifecycle,
    lifetime: u32,
) -> Vec<Applied> {
    let kernel = kernel_facts(netlink).await.expect("kernel dump");
    let snapshot = Snapshot {
        node: NodeFacts {
            name: "n1".into(),
            ready: true,
            ..Default::default()
        },
        config: AgentConfig {
            source: None,
            also_selecting: Vec::new(),
            selects_node: true,
            local_interface: LocalInterface::DefaultRoute,
            virtual_interface: "kube-lb0".into(),
            local_address_lifetime: lifetime,
            gratuitous: Default::default(),
            drain: std::time::Duration::from_secs(5),
            gossip_settle: std::time::Duration::from_secs(2),
        },
        groups: groups(),
        services,
        kernel,
        lifecycle,
    };
    let want = desired(&snapshot, &holds_every_address);
    let changes = diff(&want, &Observed::from_kernel(&snapshot.kernel));
    let report = apply(netlink, &changes).await;
    for applied in &report {
        assert!(!applied.failed(), "{applied:?}");
    }
    report
}

/// The changes of a report, as text.
pub fn shown(report: &[Applied]) -> Vec<String> {
    report.iter().map(|a| a.change.to_string()).collect()
}

/// A namespace with `lan0` (carrier up) on 192.0.2.0/24 and 2001:db8:1::/64 and both default
/// routes through it.
pub fn lan() -> Netns {
    let ns = Netns::new();
    ns.veth("lan0", &["192.0.2.5/24", "2001:db8:1::5/64"]);
    ns.ip("route add default via 192.0.2.1 dev lan0 metric 100");
    ns.ip("-6 route add default via 2001:db8:1::1 dev lan0 metric 100");
    ns
}

/// Every address on `interface`, read back over netlink.
pub async fn read(netlink: &Netlink, interface: &str) -> Vec<InterfaceAddress> {
    let index = netlink
        .link_index(interface)
        .await
        .expect("lookup")
        .expect("the interface");
    let all = netlink.addresses().await.expect("dump");
    all.into_iter()
        .filter(|(i, _)| *i == index)
        .map(|(_, a)| a)
        .collect()
}

pub fn find(addrs: &[InterfaceAddress], addr: &str) -> Option<InterfaceAddress> {
    let addr: IpAddr = addr.parse().expect("ip");
    addrs.iter().find(|a| a.address == addr).cloned()
}
