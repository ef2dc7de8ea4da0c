//! What nodes publish on gossip, read back into the election's terms, and the rules that keep a
//! local address on one node at a time: break before make, claim nothing before the gossip view
//! has settled, and take no address that a node not yet heard from says it holds. Pure: no
//! chitchat handle, no clock of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::{IneligibleReason, eligible_value, gossip, parse_eligible};
use ferrolb_api::election::{Contender, elect};
use ipnetwork::IpNetwork;

use super::leases::LeasedNode;

/// What one node publishes (on gossip, and mirrored on its Lease).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// `None` when eligible; a node that published nothing is taken as not eligible.
    pub ineligible: Option<IneligibleReason>,
    pub subnets: BTreeSet<IpNetwork>,
    /// LAN MAC per local interface.
    pub macs: BTreeMap<String, String>,
    /// Local addresses it holds.
    pub holding: BTreeSet<IpAddr>,
}

/// The key-value pairs of `p`, as chitchat stores them.
pub fn encode(p: &Published) -> BTreeMap<String, String> {
    let mut kv = BTreeMap::new();
    kv.insert(
        gossip::KEY_ELIGIBLE.to_string(),
        eligible_value(p.ineligible),
    );
    let subnets: Vec<String> = p.subnets.iter().map(ToString::to_string).collect();
    kv.insert(gossip::KEY_SUBNETS.to_string(), subnets.join(" "));
    let macs: Vec<String> = p.macs.iter().map(|(i, m)| format!("{i}={m}")).collect();
    kv.insert(gossip::KEY_MAC.to_string(), macs.join(" "));
    for a in &p.holding {
        kv.insert(
            format!("{}{a}", gossip::KEY_HOLDING_PREFIX),
            "1".to_string(),
        );
    }
    kv
}

/// Reads a node's key-value pairs back; malformed values count as absent (and so as not
/// eligible), never as a claim.
pub fn decode<'a>(kv: impl IntoIterator<Item = (&'a str, &'a str)>) -> Published {
    let mut p = Published {
        ineligible: Some(IneligibleReason::NotReady),
        ..Default::default()
    };
    for (k, v) in kv {
        if k == gossip::KEY_ELIGIBLE {
            p.ineligible = parse_eligible(v).unwrap_or(Some(IneligibleReason::NotReady));
        } else if k == gossip::KEY_SUBNETS {
            p.subnets = v
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
        } else if k == gossip::KEY_MAC {
            p.macs = v
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(i, m)| (i.to_string(), m.to_string()))
                .collect();
        } else if let Some(Ok(a)) = k.strip_prefix(gossip::KEY_HOLDING_PREFIX).map(str::parse) {
            p.holding.insert(a);
        }
    }
    p
}

/// One node as this agent's gossip view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Live per the failure detector.
    pub alive: bool,
    /// Its key-values have reached this agent (live or not since): what it published is known.
    /// A node known only from another's digest has not been heard from.
    pub heard: bool,
    /// The gossip address it advertises (its newest generation's).
    pub addr: Option<SocketAddr>,
    pub published: Published,
}

/// Who holds what, from one agent's point of view.
#[derive(Clone, Debug)]
pub struct View {
    pub me: String,
    pub peers: Vec<Peer>,
    /// The view has settled (see [`settled`]); until then this agent claims nothing.
    pub settled: bool,
    /// The nodes whose per-node Lease is alive, as their Leases describe them.
    pub leases: Vec<LeasedNode>,
}

impl View {
    /// The candidates for an address, as the election sees them. `endpoint_nodes`: with
    /// `externalTrafficPolicy: Local`, the nodes with a ready endpoint.
    ///
    /// Only nodes with an alive per-node Lease that names the gossip address they gossip from
    /// (and this node) run: a key holder that invents a node, or poses as another node from
    /// its own address, makes no candidate.
    pub fn contenders(&self, endpoint_nodes: Option<&BTreeSet<String>>) -> Vec<Contender> {
        self.peers
            .iter()
            .filter(|p| p.name == self.me || self.leased_at(p))
            .map(|p| Contender {
                name: p.name.clone(),
                ineligible: p.published.ineligible,
                alive: p.alive,
                subnets: p.published.subnets.iter().copied().collect(),
                has_local_endpoint: endpoint_nodes.is_some_and(|n| n.contains(&p.name)),
            })
            .collect()
    }

    /// The elected holder of `addr`.
    pub fn holder(
        &self,
        addr: IpAddr,
        endpoint_nodes: Option<&BTreeSet<String>>,
    ) -> Option<String> {
        let contenders = self.contenders(endpoint_nodes);
        elect(addr, &contenders, endpoint_nodes.is_some())
            .0
            .map(str::to_string)
    }

    /// `p` has an alive per-node Lease that names the address it gossips from.
    fn leased_at(&self, p: &Peer) -> bool {
        p.addr.is_some()
            && self
                .leases
                .iter()
                .any(|l| l.node == p.name && l.gossip_addr == p.addr)
    }

    /// The nodes with an alive per-node Lease that this agent has not heard from on gossip
    /// yet (it has just started, or gossip to them is cut).
    pub fn unheard(&self) -> impl Iterator<Item = &LeasedNode> {
        self.leases.iter().filter(|l| {
            l.node != self.me && !self.peers.iter().any(|p| p.heard && p.name == l.node)
        })
    }

    /// Another live node still says it holds `addr` on gossip, or a node this agent has not
    /// heard from yet says so on its Lease. The second is what keeps a restarting agent (or
    /// one whose view settled by time alone, on a loaded machine) from taking an address off
    /// a holder it has not heard from: an order of facts, not a race against a timer.
    pub fn held_elsewhere(&self, addr: IpAddr) -> bool {
        self.peers
            .iter()
            .any(|p| p.name != self.me && p.alive && p.published.holding.contains(&addr))
            || self.unheard().any(|n| n.may_hold(addr))
    }

    /// This agent should have `addr` on its interface now: it is the elected holder, its view
    /// has settled, and — break before make — no other live node still holds it. An address
    /// this agent already holds stays while it is elected (the others wait for it to let go).
    pub fn should_hold(
        &self,
        addr: IpAddr,
        endpoint_nodes: Option<&BTreeSet<String>>,
        holding_now: bool,
    ) -> bool {
        if self.holder(addr, endpoint_nodes).as_deref() != Some(self.me.as_str()) {
            return false;
        }
        holding_now || (self.settled && !self.held_elsewhere(addr))
    }
}

/// A starting agent's view has settled when `settle` has passed since it started, or earlier
/// when it has heard from every node whose per-node Lease is fresh and its own Lease is among
/// them. Without its own Lease (a cold start: the Leases of the others may not be written
/// yet either) "heard from everyone" proves nothing, so it waits the whole `settle`.
pub fn settled(
    me: &str,
    started: Instant,
    now: Instant,
    settle: Duration,
    fresh_leases: &BTreeSet<String>,
    heard_from: &BTreeSet<String>,
) -> bool {
    now.duration_since(started) >= settle
        || (fresh_leases.contains(me) && fresh_leases.is_subset(heard_from))
}

#[cfg(test)]
mod tests;
