//! The test world's network: node namespaces on a bridged LAN, an optional FRR ToR and client
//! behind it, and a management network to the host's API server; torn down on drop.
//!
//! ```text
//!  host ns: flbmgmt0 198.18.0.1/16 ──veth── mgmt0 198.18.<slot>.<10+i>/16 (route 198.18/16 only)
//!                                              │
//!  <prefix>-lan ns: br0 ──veth── eth0 of <prefix>-n<i>  192.0.2.<10+i>/24, 2001:db8:1::<10+i>/64
//!                    └──veth── eth0 of <prefix>-tor     192.0.2.1/24, 2001:db8:1::1/64 (forwards)
//!                                 eth1 of <prefix>-tor  198.51.100.1/24, 2001:db8:2::1/64
//!                                   └──veth── eth0 of <prefix>-client 198.51.100.10, 2001:db8:2::10
//! ```
//! Nodes route by default via the ToR's LAN address (also when no ToR namespace is built), so an
//! agent finds its local interface the way it would on a real node. Nothing is routed to the
//! outside: the only link to the host namespace is the management bridge, and no namespace
//! other than the ToR forwards.

mod bird;
mod build;
mod claim;
mod exec;
mod frr;
mod node;
mod rooted;
mod tor_config;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

pub use bird::BirdHandle;
pub use build::{Builder, ensure_management_bridge};
pub use claim::{NAME_PREFIX, RUN_DIR, cleanup_leftovers, reap_after_owner};
pub use exec::{Process, in_namespace, wait_for};
pub use frr::Frr;
pub use node::Node;
pub(crate) use rooted::{kill_processes_under, unmount_under};
pub use tor_config::{BfdTimers, BgpPeer, TorConfig, render_frr_conf};

use claim::Claim;
use exec::ip_batch;

/// The shared management bridge in the host namespace (the API server listens on its address).
pub const MGMT_BRIDGE: &str = "flbmgmt0";
/// The host's address on the management bridge, where the API server listens.
pub const MGMT_HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const MGMT_PREFIX_LEN: u8 = 16;
pub const LAN_V4_PREFIX_LEN: u8 = 24;
pub const LAN_V6_PREFIX_LEN: u8 = 64;
/// The ToR on the LAN: the nodes' default gateway.
pub const TOR_LAN_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const TOR_LAN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The ToR on the client link.
pub const TOR_CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const TOR_CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
/// eBGP: the ToR's AS and the one AS all nodes share.
pub const TOR_ASN: u32 = 64512;
pub const NODE_ASN: u32 = 64520;
/// Node i gets host part 10 + i on every network, so at most this many nodes.
pub const MAX_NODES: usize = 245;

/// Interface names inside the namespaces (namespaces keep them apart, so they are fixed).
pub const NODE_LAN_IF: &str = "eth0";
pub const NODE_MGMT_IF: &str = "mgmt0";
pub const TOR_LAN_IF: &str = "eth0";
pub const TOR_CLIENT_IF: &str = "eth1";
pub const CLIENT_IF: &str = "eth0";
const LAN_BRIDGE: &str = "br0";
const PARTITION_BRIDGE: &str = "br1";
const TOR_PORT: &str = "tor";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("timed out after {waited:?} waiting for {what}. {detail}")]
    Timeout {
        what: String,
        waited: Duration,
        detail: String,
    },
    #[error("{what} exited early ({status}); its log:\n{log}")]
    Exited {
        what: String,
        status: String,
        log: String,
    },
    #[error("no free topology slot: all 254 are held by live processes")]
    NoSlot,
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A built topology; dropping it kills what runs in its namespaces and removes them.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    slot: u8,
    dir: PathBuf,
    lan_ns: String,
    tor_ns: Option<String>,
    client_ns: Option<String>,
    nodes: Vec<Node>,
    /// Nodes whose LAN port currently sits on the partition bridge.
    partitioned: Mutex<Vec<usize>>,
    spawned: Mutex<u32>,
    claim: Option<Claim>,
}

impl Topology {
    /// `tag` (up to 4 of [a-z0-9]) goes into every name after `flb` and the slot, e.g.
    /// `flb1at1-n0`, so a reader can tell which test made it.
    pub fn builder(tag: &str) -> Builder {
        Builder::new(tag)
    }

    /// `flb` + slot + tag: every namespace, host link and temp dir of this topology starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// 1..=254, also the third octet of the nodes' management addresses.
    pub fn slot(&self) -> u8 {
        self.slot
    }
    /// Scratch directory for configs, sockets and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// Node `i`; panics when there is none (a test bug).
    pub fn node(&self, i: usize) -> &Node {
        self.nodes
            .get(i)
            .unwrap_or_else(|| panic!("node {i} of a {}-node topology", self.nodes.len()))
    }
    /// The namespace holding the LAN bridge.
    pub fn lan_ns(&self) -> &str {
        &self.lan_ns
    }
    pub fn tor_ns(&self) -> Option<&str> {
        self.tor_ns.as_deref()
    }
    pub fn client_ns(&self) -> Option<&str> {
        self.client_ns.as_deref()
    }
    /// Every namespace of this topology.
    pub fn namespaces(&self) -> Vec<&str> {
        std::iter::once(self.lan_ns.as_str())
            .chain(self.nodes.iter().map(|n| n.ns.as_str()))
            .chain(self.tor_ns.as_deref())
            .chain(self.client_ns.as_deref())
            .collect()
    }

    /// Runs `argv` inside `ns` and returns its output, whatever the exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<Output> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::Invalid("empty command".into()))?;
        exec::output(in_namespace(ns, program).args(args))
    }

    /// Runs `argv` inside `ns`; a non-zero exit is an error carrying its output. Returns stdout.
    pub fn run(&self, ns: &str, argv: &[&str]) -> Result<String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::Invalid("empty command".into()))?;
        exec::checked(in_namespace(ns, program).args(args))
    }

    /// One ICMP echo from `ns` to `to` (1 s timeout); true when answered.
    pub fn ping(&self, ns: &str, to: IpAddr) -> bool {
        self.exec(ns, &["ping", "-c", "1", "-W", "1", "-q", &to.to_string()])
            .is_ok_and(|o| o.status.success())
    }

    /// Starts `cmd` (program, arguments, environment, working dir) inside `ns` in its own process
    /// group, stdout and stderr to a log file in [`Topology::dir`] (see [`Process::log`]).
    /// Dropping the [`Process`], or the topology, kills it and its children.
    pub fn spawn_in(&self, ns: &str, cmd: &Command) -> Result<Process> {
        let program = Path::new(cmd.get_program())
            .file_name()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = format!("{ns}-{program}-{}", self.next_spawn());
        let log = self.dir.join("logs").join(format!("{label}.log"));
        let (out, err) = exec::log_stdio(&log)?;
        let mut inner = exec::rebuild_in_namespace(ns, cmd);
        inner.stdout(out).stderr(err);
        exec::spawn(&label, inner, Some(log))
    }

    /// Starts a command made with [`in_namespace`] as is (its stdio as the caller set it), e.g.
    /// to read its stdout through a pipe.
    pub fn spawn(&self, label: &str, cmd: Command) -> Result<Process> {
        exec::spawn(label, cmd, None)
    }

    fn next_spawn(&self) -> u32 {
        let mut n = self.spawned.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    }

    /// Takes node `i`'s LAN port on the bridge down: the node sees its LAN interface lose carrier.
    pub fn cut_lan(&self, i: usize) -> Result<()> {
        self.set_lan_port(i, "down")
    }

    /// Brings node `i`'s LAN port back up.
    pub fn restore_lan(&self, i: usize) -> Result<()> {
        self.set_lan_port(i, "up")
    }

    fn set_lan_port(&self, i: usize, state: &str) -> Result<()> {
        self.node(i);
        ip_batch(Some(&self.lan_ns), &[format!("link set dev n{i} {state}")])
    }

    /// Splits the LAN in two: the ports of `b` move to a second bridge, so `a` and `b` cannot
    /// reach each other while every link keeps its carrier. The ToR (and so the client) and any
    /// node in neither list stay with `a`. Management is untouched.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<()> {
        if let Some(i) = a.iter().find(|i| b.contains(i)) {
            return Err(Error::Invalid(format!(
                "node {i} is on both sides of the partition"
            )));
        }
        for &i in a.iter().chain(b) {
            self.node(i);
        }
        self.heal()?;
        if b.is_empty() {
            return Ok(());
        }
        let mut lines = vec![
            format!("link add name {PARTITION_BRIDGE} type bridge stp_state 0 mcast_snooping 0"),
            format!("link set dev {PARTITION_BRIDGE} up"),
        ];
        lines.extend(
            b.iter()
                .map(|i| format!("link set dev n{i} master {PARTITION_BRIDGE}")),
        );
        ip_batch(Some(&self.lan_ns), &lines)?;
        *self.partitioned.lock().unwrap_or_else(|p| p.into_inner()) = b.to_vec();
        Ok(())
    }

    /// Joins the LAN again after [`Topology::partition`]; a no-op when it is whole.
    pub fn heal(&self) -> Result<()> {
        let mut moved = self.partitioned.lock().unwrap_or_else(|p| p.into_inner());
        if moved.is_empty() {
            return Ok(());
        }
        let mut lines: Vec<String> = moved
            .iter()
            .map(|i| format!("link set dev n{i} master {LAN_BRIDGE}"))
            .collect();
        lines.push(format!("link del dev {PARTITION_BRIDGE}"));
        ip_batch(Some(&self.lan_ns), &lines)?;
        moved.clear();
        Ok(())
    }

    /// Starts BIRD 2 in node `i`'s namespace with `config`; see [`BirdHandle`].
    pub fn run_bird(&self, i: usize, config: &str) -> Result<BirdHandle> {
        let node = self.node(i);
        // A fresh dir per start, so a restarted BIRD never meets its predecessor's socket.
        let dir = self.dir.join(format!("bird-n{i}-{}", self.next_spawn()));
        BirdHandle::start(&node.ns, &dir, config)
    }

    /// Starts FRR (zebra, bgpd, bfdd, and ospfd when asked) in the ToR namespace and applies
    /// `config`; see [`Frr`].
    pub fn run_frr(&self, config: &TorConfig) -> Result<Frr> {
        let ns = self.tor_ns.as_deref().ok_or_else(|| {
            Error::Invalid("this topology has no ToR; build it with .tor(true)".into())
        })?;
        Frr::start(
            ns,
            &self.dir.join(format!("frr-{}", self.next_spawn())),
            config,
        )
    }
}
