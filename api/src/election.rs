//! Who may hold a local address and who does: eligibility, candidates, and the holder by the
//! election hash of the Contracts. The agents act on it; the allocator and the CLI explain it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest, Sha256};

use crate::contracts::{DEFAULT_LBNODEAGENT, EXCLUDE_LABEL, IneligibleReason};
use crate::pool::canonical;

/// `sha256(node + "#" + address)`, address in canonical text without prefix.
pub fn election_hash(node: &str, addr: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(canonical(addr).as_bytes());
    h.finalize().into()
}

/// The candidate with the lowest election hash for `addr` (ties, impossible in practice, go to
/// the lower name).
pub fn holder<'a, I>(addr: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .min_by_key(|n| (election_hash(n, addr), *n))
}

/// Does `selector` select a node with `labels`? `None` or an empty selector selects all.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    // A selector that cannot be evaluated (an unknown operator: the API server refuses it)
    // selects nothing.
    selector.is_none_or(|sel| crate::servicegroup::admission::matches(sel, labels).unwrap_or(false))
}

/// The LBNodeAgent that applies to a node: among the non-default agents that select it, the
/// lowest name; otherwise `default` if it exists. Returns the name and whether it selects the
/// node (the default agent may carry a selector that leaves the node out).
pub fn agent_for_node<'a>(
    agents: &[(&'a str, Option<&LabelSelector>)],
    labels: &BTreeMap<String, String>,
) -> Option<(&'a str, bool)> {
    let chosen = agents
        .iter()
        .filter(|(name, sel)| {
            *name != DEFAULT_LBNODEAGENT && sel.is_some() && selects(*sel, labels)
        })
        .map(|(name, _)| *name)
        .min();
    match chosen {
        Some(name) => Some((name, true)),
        None => agents
            .iter()
            .find(|(name, _)| *name == DEFAULT_LBNODEAGENT)
            .map(|(name, sel)| (*name, selects(*sel, labels))),
    }
}

/// What decides whether a node is eligible to hold local addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub labels: BTreeMap<String, String>,
    /// Selected by the LBNodeAgent that applies to it.
    pub selected: bool,
    /// The Node's Ready condition is True.
    pub ready: bool,
    /// The Node's NetworkUnavailable condition is True.
    pub network_unavailable: bool,
    /// Carrier is up on the local interface.
    pub carrier_up: bool,
    /// The agent is stopping.
    pub stopping: bool,
}

/// `None` when eligible, else the first reason in the order of the Contracts.
pub fn eligibility(f: &NodeFacts) -> Option<IneligibleReason> {
    if f.stopping {
        Some(IneligibleReason::Stopping)
    } else if !f.selected {
        Some(IneligibleReason::NotSelected)
    } else if f.labels.contains_key(EXCLUDE_LABEL) {
        Some(IneligibleReason::ExcludedLabel)
    } else if !f.ready {
        Some(IneligibleReason::NotReady)
    } else if f.network_unavailable {
        Some(IneligibleReason::NetworkUnavailable)
    } else if !f.carrier_up {
        Some(IneligibleReason::CarrierDown)
    } else {
        None
    }
}

/// A node as the election sees it (from gossip on the agents, from the Leases elsewhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contender {
    pub name: String,
    /// As published: `None` eligible, or why not.
    pub ineligible: Option<IneligibleReason>,
    /// Alive in gossip (agents) or Lease fresh (allocator, CLI).
    pub alive: bool,
    /// CIDRs on its local interfaces.
    pub subnets: Vec<IpNetwork>,
    /// Has a ready endpoint of the Service (only asked with `externalTrafficPolicy: Local`).
    pub has_local_endpoint: bool,
}

/// Why a node is not a candidate for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotCandidate {
    Ineligible(IneligibleReason),
    NotAlive,
    NoSubnet,
    NoLocalEndpoint,
}

impl std::fmt::Display for NotCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotCandidate::Ineligible(r) => write!(f, "not eligible ({})", r.as_str()),
            NotCandidate::NotAlive => f.write_str("not alive (no gossip / Lease expired)"),
            NotCandidate::NoSubnet => f.write_str("its local interface lacks the address's subnet"),
            NotCandidate::NoLocalEndpoint => {
                f.write_str("no ready endpoint on it (externalTrafficPolicy: Local)")
            }
        }
    }
}

/// Is `c` a candidate for `addr`? `etp_local`: the Service (or any sharing it) has
/// `externalTrafficPolicy: Local`.
pub fn candidacy(c: &Contender, addr: IpAddr, etp_local: bool) -> Result<(), NotCandidate> {
    if let Some(r) = c.ineligible {
        return Err(NotCandidate::Ineligible(r));
    }
    if !c.alive {
        return Err(NotCandidate::NotAlive);
    }
    if !c.subnets.iter().any(|s| s.contains(addr)) {
        return Err(NotCandidate::NoSubnet);
    }
    if etp_local && !c.has_local_endpoint {
        return Err(NotCandidate::NoLocalEndpoint);
    }
    Ok(())
}

/// The holder of `addr` among `contenders`, and why each other node is not a candidate.
pub fn elect(
    addr: IpAddr,
    contenders: &[Contender],
    etp_local: bool,
) -> (Option<&str>, Vec<(&str, NotCandidate)>) {
    let mut rejected = Vec::new();
    let mut candidates = Vec::new();
    for c in contenders {
        match candidacy(c, addr, etp_local) {
            Ok(()) => candidates.push(c.name.as_str()),
            Err(why) => rejected.push((c.name.as_str(), why)),
        }
    }
    (holder(addr, candidates), rejected)
}

#[cfg(test)]
mod tests;
