//! Turns node facts, values and virtual ServiceGroups into the plain context a template sees.

use std::net::{IpAddr, Ipv4Addr};

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::bird::GRACEFUL_SHUTDOWN_COMMUNITY;
use ferrolb_api::pool::{Aggregation, parse_cidr};
use ferrolb_api::servicegroup::{BgpAttributes, Pool};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::values::{self, Values};

/// What the sidecar knows about its node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeFacts {
    pub name: String,
    /// The node's addresses (its InternalIPs), in the Node's order.
    pub addresses: Vec<IpAddr>,
}

/// The template's whole context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderContext {
    pub node: NodeContext,
    pub router_id: String,
    pub local_asn: Option<u32>,
    pub virtual_interface: String,
    pub peers: Vec<PeerContext>,
    pub bfd: BfdContext,
    pub ospf: OspfContext,
    pub groups: Vec<GroupContext>,
    /// Drain: every export carries [`RenderContext::graceful_shutdown_community`].
    pub graceful_shutdown: bool,
    /// `(65535,0)` in BIRD's syntax.
    pub graceful_shutdown_community: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeContext {
    pub name: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerContext {
    /// BIRD protocol name.
    pub name: String,
    pub address: String,
    /// `ipv4` or `ipv6`: the channel, and which export filter.
    pub family: &'static str,
    pub asn: u32,
    pub local_asn: u32,
    pub ibgp: bool,
    /// The node's address of the peer's family, when it has one.
    pub local_address: Option<String>,
    pub bfd: bool,
    pub multihop: Option<u8>,
    /// Seconds.
    pub hold_time: Option<u64>,
    pub keepalive_time: Option<u64>,
    pub connect_retry_time: Option<u64>,
    pub connect_delay_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BfdContext {
    /// Some peer (or OSPF) uses BFD: the template adds `protocol bfd`.
    pub enabled: bool,
    /// Some BFD peer is multihop.
    pub multihop: bool,
    pub min_rx_ms: u128,
    pub min_tx_ms: u128,
    pub multiplier: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OspfContext {
    pub enabled: bool,
    pub area: u32,
    pub interfaces: Vec<String>,
    /// Seconds.
    pub hello: u64,
    pub dead: u64,
    pub bfd: bool,
}

/// One virtual group's prefixes (BIRD prefix-set patterns) and the attributes of its routes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupContext {
    pub name: String,
    /// e.g. `203.0.113.0/24{28,28}`: any /28 inside the pool's subnet.
    pub v4: Vec<String>,
    pub v6: Vec<String>,
    /// `(64512,100)`.
    pub communities: Vec<String>,
    /// `(64512,1,2)`.
    pub large_communities: Vec<String>,
    pub local_preference: Option<u32>,
}

/// Builds the context. Groups that are not virtual are ignored; a pool or community that does
/// not parse is left out and named in the returned warnings (one bad group must not take the
/// others' routes away).
pub fn build(
    node: &NodeFacts,
    values: &Values,
    groups: &[ServiceGroup],
    graceful_shutdown: bool,
) -> Result<(RenderContext, Vec<String>)> {
    let ipv4: Vec<Ipv4Addr> = node
        .addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let ipv6: Vec<IpAddr> = node
        .addresses
        .iter()
        .filter(|a| a.is_ipv6())
        .copied()
        .collect();
    let router_id = values.router_id.or(ipv4.first().copied()).ok_or_else(|| {
        Error::Facts(format!(
            "node {:?} has no IPv4 address for the router id; set routerID in the values",
            node.name
        ))
    })?;
    let mut peers = Vec::new();
    for (i, p) in values.peers.iter().enumerate() {
        let local_asn = p.local_asn.or(values.local_asn).ok_or_else(|| {
            Error::Values(format!(
                "peers[{i}] ({}): no localASN here or at the top level",
                p.address
            ))
        })?;
        let name = match &p.name {
            Some(n) if is_bird_symbol(n) => n.clone(),
            Some(n) => {
                return Err(Error::Values(format!(
                    "peers[{i}].name {n:?}: letters, digits and '_' only, not starting with a digit"
                )));
            }
            None => protocol_name(p.address),
        };
        let secs = |field: &str, v: &Option<String>| -> Result<Option<u64>> {
            v.as_deref()
                .map(|t| values::duration(&format!("peers[{i}].{field}"), t).map(|d| d.as_secs()))
                .transpose()
        };
        peers.push(PeerContext {
            name,
            address: p.address.to_string(),
            family: if p.address.is_ipv4() { "ipv4" } else { "ipv6" },
            asn: p.asn,
            local_asn,
            ibgp: p.asn == local_asn,
            local_address: node
                .addresses
                .iter()
                .find(|a| a.is_ipv4() == p.address.is_ipv4())
                .map(ToString::to_string),
            bfd: p.bfd,
            multihop: p.multihop,
            hold_time: secs("holdTime", &p.hold_time)?,
            keepalive_time: secs("keepaliveTime", &p.keepalive_time)?,
            connect_retry_time: secs("connectRetryTime", &p.connect_retry_time)?,
            connect_delay_time: secs("connectDelayTime", &p.connect_delay_time)?,
        });
    }
    if let Some(dup) = peers.iter().enumerate().find_map(|(i, p)| {
        peers[..i]
            .iter()
            .any(|q| q.name == p.name)
            .then_some(&p.name)
    }) {
        return Err(Error::Values(format!("two peers are named {dup:?}")));
    }
    let ms = |field: &str, t: &str| values::duration(field, t).map(|d| d.as_millis());
    let bfd = BfdContext {
        enabled: peers.iter().any(|p| p.bfd) || (values.ospf.enabled && values.ospf.bfd),
        multihop: peers.iter().any(|p| p.bfd && p.multihop.is_some()),
        min_rx_ms: ms("bfd.minRx", &values.bfd.min_rx)?,
        min_tx_ms: ms("bfd.minTx", &values.bfd.min_tx)?,
        multiplier: values.bfd.multiplier,
    };
    let o = &values.ospf;
    if o.enabled && o.interfaces.is_empty() {
        return Err(Error::Values(
            "ospf.interfaces: name the LAN interface(s) OSPF speaks on, e.g. [eth0]".into(),
        ));
    }
    let ospf = OspfContext {
        enabled: o.enabled,
        area: o.area,
        interfaces: o.interfaces.clone(),
        hello: values::duration("ospf.hello", &o.hello)?.as_secs(),
        dead: values::duration("ospf.dead", &o.dead)?.as_secs(),
        bfd: o.bfd,
    };
    let mut warnings = Vec::new();
    let mut sorted: Vec<&ServiceGroup> = groups.iter().collect();
    sorted.sort_by_key(|g| g.metadata.name.clone());
    let groups = sorted
        .into_iter()
        .filter_map(|g| group(g, &mut warnings))
        .collect();
    let (gs_asn, gs_value) = GRACEFUL_SHUTDOWN_COMMUNITY;
    let context = RenderContext {
        node: NodeContext {
            name: node.name.clone(),
            ipv4: ipv4.iter().map(ToString::to_string).collect(),
            ipv6: ipv6.iter().map(ToString::to_string).collect(),
        },
        router_id: router_id.to_string(),
        local_asn: values.local_asn,
        virtual_interface: values
            .virtual_interface
            .clone()
            .unwrap_or_else(|| ferrolb_api::contracts::VIRTUAL_INTERFACE.to_string()),
        peers,
        bfd,
        ospf,
        groups,
        graceful_shutdown,
        graceful_shutdown_community: format!("({gs_asn},{gs_value})"),
    };
    Ok((context, warnings))
}

/// A peer's protocol name from its address: `peer_192_0_2_1`, `peer_2001_db8__1`.
pub fn protocol_name(address: IpAddr) -> String {
    let text: String = address
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("peer_{text}")
}

fn is_bird_symbol(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

fn group(g: &ServiceGroup, warnings: &mut Vec<String>) -> Option<GroupContext> {
    let spec = g.spec.virtual_.as_ref()?;
    let name = g.metadata.name.clone().unwrap_or_default();
    let mut warn = |what: String| warnings.push(format!("ServiceGroup {name}: {what}"));
    let mut patterns = |pools: &[Pool], v4: bool| -> Vec<String> {
        pools
            .iter()
            .filter_map(|p| match pattern(p) {
                Ok((net, text)) if net.is_ipv4() == v4 => Some(text),
                Ok((net, _)) => {
                    warn(format!(
                        "pool subnet {net} is in the wrong family list; left out"
                    ));
                    None
                }
                Err(e) => {
                    warn(format!("{e}; pool left out"));
                    None
                }
            })
            .collect()
    };
    let v4 = patterns(&spec.v4pools, true);
    let v6 = patterns(&spec.v6pools, false);
    let bgp = spec.bgp.clone().unwrap_or_default();
    let (communities, large_communities) = communities(&bgp, &mut warn);
    Some(GroupContext {
        name,
        v4,
        v6,
        communities,
        large_communities,
        local_preference: bgp.local_preference,
    })
}

/// `subnet{agg,agg}`: the prefix routes kube-lb0 gets for this pool's addresses.
fn pattern(p: &Pool) -> std::result::Result<(ipnetwork::IpNetwork, String), String> {
    let net = parse_cidr(&p.subnet).map_err(|e| format!("subnet: {e}"))?;
    let agg = Aggregation::parse(p.aggregation.as_deref().unwrap_or("default"))
        .map_err(|e| format!("aggregation: {e}"))?;
    let len = agg.prefix_for(net);
    let max = if net.is_ipv4() { 32 } else { 128 };
    if len < net.prefix() || len > max {
        return Err(format!(
            "aggregation /{len} does not fit subnet {net} (from /{} to /{max})",
            net.prefix()
        ));
    }
    Ok((net, format!("{net}{{{len},{len}}}")))
}

fn communities(bgp: &BgpAttributes, warn: &mut impl FnMut(String)) -> (Vec<String>, Vec<String>) {
    let parse = |c: &str, parts: usize, max: u64| -> Option<String> {
        let nums: Vec<u64> = c
            .split(':')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        (nums.len() == parts && nums.iter().all(|n| *n <= max)).then(|| {
            let inner: Vec<String> = nums.iter().map(ToString::to_string).collect();
            format!("({})", inner.join(","))
        })
    };
    let mut pick = |list: &[String], parts: usize, max: u64, what: &str| -> Vec<String> {
        list.iter()
            .filter_map(|c| {
                let parsed = parse(c, parts, max);
                if parsed.is_none() {
                    warn(format!("{what} {c:?} does not parse; left out"));
                }
                parsed
            })
            .collect()
    };
    let standard = pick(&bgp.communities, 2, u64::from(u16::MAX), "community");
    let large = pick(
        &bgp.large_communities,
        3,
        u64::from(u32::MAX),
        "large community",
    );
    (standard, large)
}
