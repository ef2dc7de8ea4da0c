//! The plain facts the decisions read: cluster objects and kernel state, without kube or netlink types.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_api::pool::{AddrRange, Aggregation, Family};
use ferrolb_api::servicegroup::GroupType;
use ipnetwork::IpNetwork;
use regex::Regex;

/// Everything one round of decisions looks at.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub node: NodeFacts,
    pub config: AgentConfig,
    /// ServiceGroups by name.
    pub groups: BTreeMap<String, Group>,
    pub services: Vec<ServiceAddresses>,
    pub kernel: KernelFacts,
    pub lifecycle: Lifecycle,
}

/// This node, as its Node object says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
}

/// The LBNodeAgent settings that apply to this node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The LBNodeAgent they come from; `None` when there is none and built-in defaults apply.
    pub source: Option<String>,
    /// Other LBNodeAgents that select this node too; the lowest name won (worth an Event).
    pub also_selecting: Vec<String>,
    /// The LBNodeAgent's nodeSelector selects this node.
    pub selects_node: bool,
    pub local_interface: LocalInterface,
    pub virtual_interface: String,
    /// Valid lifetime of local addresses, in whole seconds.
    pub local_address_lifetime: u32,
    pub gratuitous: Gratuitous,
    /// Graceful stop: how long virtual addresses stay after SIGTERM.
    pub drain: Duration,
    /// A starting (or rejoining) agent claims nothing for this long unless it has heard from
    /// every node with a fresh per-node Lease first.
    pub gossip_settle: Duration,
}

/// Gratuitous ARP / unsolicited NA after this node adds a local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gratuitous {
    pub enabled: bool,
    pub count: u32,
    pub interval: Duration,
    pub initial_delay: Duration,
}

impl Default for Gratuitous {
    /// The LBNodeAgent defaults: 3 packets, 500 ms apart, at once.
    fn default() -> Self {
        Self {
            enabled: true,
            count: 3,
            interval: Duration::from_millis(500),
            initial_delay: Duration::ZERO,
        }
    }
}

/// How the local interface is found, per family.
#[derive(Clone, Debug)]
pub enum LocalInterface {
    /// The interface of the default route with the lowest metric.
    DefaultRoute,
    /// The first interface (by index) whose name the regex matches.
    Matching(Regex),
}

/// A ServiceGroup's pools, parsed. Pools that do not parse are left out (the allocator reports
/// them and never allocates from them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub kind: GroupType,
    pub pools: Vec<GroupPool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPool {
    pub subnet: IpNetwork,
    pub range: AddrRange,
    pub aggregation: Aggregation,
}

/// The addresses the allocator gave one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAddresses {
    /// `namespace/name`.
    pub key: String,
    /// The ServiceGroup the addresses came from (`ferrolb.io/allocated-from`).
    pub group: String,
    pub addresses: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic_policy: bool,
    /// Nodes with a ready endpoint of this Service (only read with the Local policy).
    pub ready_endpoint_nodes: BTreeSet<String>,
}

/// The kernel's view of this node's network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFacts {
    /// Interfaces in index order.
    pub interfaces: Vec<Interface>,
    /// Default routes of the main table.
    pub default_routes: Vec<DefaultRoute>,
    /// `net.ipv4.conf.all.arp_ignore`/`arp_announce`; `None` when they cannot be read.
    pub arp_all: Option<ArpConf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Link kind (`dummy`, `ifb`, `veth`, ...); `None` for physical devices.
    pub kind: Option<String>,
    /// IFF_UP.
    pub admin_up: bool,
    /// IFLA_CARRIER.
    pub carrier: bool,
    pub oper: OperState,
    pub mac: Option<Vec<u8>>,
    /// Its IPv4 ARP settings; `None` for a link without IPv4 configuration.
    pub arp: Option<ArpConf>,
    pub addresses: Vec<InterfaceAddress>,
}

/// A link's IPv4 `arp_ignore` and `arp_announce` (as in `/proc/sys/net/ipv4/conf/<link>/`). The
/// kernel applies the larger of the link's and `all`'s value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpConf {
    pub ignore: i32,
    pub announce: i32,
}

impl Interface {
    /// Up, with a carrier, and not reported down by the operational state (`UNKNOWN` is what
    /// devices without operational state report, such as `ifb` and `dummy`).
    pub fn link_up(&self) -> bool {
        self.admin_up && self.carrier && matches!(self.oper, OperState::Up | OperState::Unknown)
    }
}

/// RFC 2863 operational state (IFLA_OPERSTATE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OperState {
    #[default]
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

/// One address on an interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// IFA_PROTO; 0 when the kernel reports none.
    pub proto: u8,
    /// IFA_FLAGS (`IFA_F_*`).
    pub flags: u32,
    /// Remaining valid lifetime.
    pub valid: Lifetime,
    /// Remaining preferred lifetime.
    pub preferred: Lifetime,
}

/// An address lifetime in whole seconds, as in IFA_CACHEINFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lifetime {
    Seconds(u32),
    Forever,
}

impl Lifetime {
    /// IFA_CACHEINFO's value for "forever".
    pub const INFINITY: u32 = u32::MAX;

    pub fn from_kernel(value: u32) -> Self {
        if value == Self::INFINITY {
            Lifetime::Forever
        } else {
            Lifetime::Seconds(value)
        }
    }

    pub fn to_kernel(self) -> u32 {
        match self {
            Lifetime::Seconds(s) => s.min(Self::INFINITY - 1),
            Lifetime::Forever => Self::INFINITY,
        }
    }
}

/// A default route (destination `/0`) of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    pub family: Family,
    /// Output interface (of the first next hop for a multipath route).
    pub interface_index: u32,
    /// RTA_PRIORITY; 0 when absent.
    pub metric: u32,
}

/// Where the agent is in its life: a stopping agent removes local addresses at once and virtual
/// addresses after `drain`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifecycle {
    #[default]
    Running,
    /// SIGTERM received, `drain` not over yet.
    Draining,
    /// `drain` is over.
    Drained,
}
