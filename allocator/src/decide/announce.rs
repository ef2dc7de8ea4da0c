//! Who announces an address, as the per-node Leases tell it: the `announcing-IPv4/-IPv6`
//! annotations, `HolderChanged` when the holders change, `NoCandidate` when nobody can hold it.

use std::net::IpAddr;

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{VIRTUAL_INTERFACE, reason};
use ferrolb_api::election::{Contender, elect};
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::GroupType;

use super::{Note, SvcPlan};
use crate::observe::{Snapshot, SvcView};

/// Adds the announcing entries of `addr` to the annotation of its family (a Service with
/// multiPool has several addresses of a family, each with its own holders) and the Events
/// about its holders to `p`.
pub fn announce(
    snap: &Snapshot,
    svc: &SvcView,
    group_type: GroupType,
    addr: IpAddr,
    p: &mut SvcPlan,
) {
    let family = Family::of(addr);
    let key = match family {
        Family::V4 => ann::ANNOUNCING_IPV4,
        Family::V6 => ann::ANNOUNCING_IPV6,
    };
    let value = match group_type {
        GroupType::Virtual => {
            let n = snap
                .live_leases()
                .filter(|l| l.virtual_count.unwrap_or(0) > 0)
                .count();
            Some(format!("{n} nodes,{VIRTUAL_INTERFACE}"))
        }
        GroupType::Local => {
            let holders: Vec<String> = snap
                .live_leases()
                .filter(|l| l.holding.contains(&addr))
                .map(|l| {
                    let iface = match family {
                        Family::V4 => l.interface_v4.as_deref(),
                        Family::V6 => l.interface_v6.as_deref(),
                    };
                    format!("{},{},{addr}", l.node, iface.unwrap_or("-"))
                })
                .collect();
            if let Some(why) = no_candidate(snap, svc, addr) {
                p.problems.push(Note::warning(reason::NO_CANDIDATE, why));
            }
            (!holders.is_empty()).then(|| holders.join(" "))
        }
    };
    let old = svc
        .written
        .get(key)
        .map(|v| ann::announcing_for(v, addr))
        .filter(|v| !v.is_empty());
    if group_type == GroupType::Local && old != value {
        let was = old.as_deref().map_or("nobody".to_string(), nodes_of);
        let message = match &value {
            Some(v) => format!(
                "{family} {addr} is now announced by {} (was {was})",
                nodes_of(v)
            ),
            None => format!(
                "{family} {addr} is no longer announced (was {was}): {}",
                why_not_announced(snap, old.as_deref().unwrap_or_default())
            ),
        };
        p.news.push(Note::normal(reason::HOLDER_CHANGED, message));
    }
    if let Some(v) = value {
        p.annotations
            .entry(key.to_string())
            .and_modify(|all| {
                // A virtual group's value is the same for every address of the family.
                if group_type == GroupType::Local {
                    all.push(' ');
                    all.push_str(&v);
                }
            })
            .or_insert(v);
    }
}

/// Why the nodes of an announcing value no longer count as announcing `addr`, as the Leases
/// show it (the Event says it: nobody needs the allocator's log to learn it).
fn why_not_announced(snap: &Snapshot, value: &str) -> String {
    let each: Vec<String> = value
        .split_whitespace()
        .filter_map(|h| h.split(',').next())
        .map(|node| match snap.leases.iter().find(|l| l.node == node) {
            None => format!("{node} has no per-node Lease"),
            Some(_) if !snap.nodes.contains(node) => format!("{node}'s Node is gone"),
            Some(l) if !l.alive(snap.now) => {
                let renewed = l.renewed.map_or("never".to_string(), |r| r.to_string());
                match l.expires {
                    Some(e) => format!(
                        "{node}'s per-node Lease expired at {e} on this allocator's clock (renewTime {renewed})"
                    ),
                    None => format!(
                        "{node}'s per-node Lease has no renewal this allocator believes (renewTime {renewed})"
                    ),
                }
            }
            Some(_) => format!("{node}'s per-node Lease no longer lists it"),
        })
        .collect();
    each.join("; ")
}

/// The node names of an announcing value.
fn nodes_of(value: &str) -> String {
    value
        .split_whitespace()
        .filter_map(|h| h.split(',').next())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why no node can hold `addr`, or `None` when the election has a holder.
fn no_candidate(snap: &Snapshot, svc: &SvcView, addr: IpAddr) -> Option<String> {
    let endpoints = snap.endpoints.get(&svc.key);
    let contenders: Vec<Contender> = snap
        .leases
        .iter()
        .map(|l| Contender {
            name: l.node.clone(),
            ineligible: l.ineligible,
            alive: l.alive(snap.now) && snap.nodes.contains(&l.node),
            subnets: l.subnets.clone(),
            has_local_endpoint: endpoints.is_some_and(|e| e.contains(&l.node)),
        })
        .collect();
    let (holder, rejected) = elect(addr, &contenders, svc.etp_local);
    if holder.is_some() {
        return None;
    }
    if rejected.is_empty() {
        return Some(format!(
            "no node can announce {addr}: no ferrolb agent has a live per-node Lease; check that the lbnodeagent DaemonSet runs"
        ));
    }
    let why: Vec<String> = rejected
        .iter()
        .map(|(node, why)| format!("{node}: {why}"))
        .collect();
    Some(format!(
        "no node can announce {addr} ({}); make a node with the address's subnet on its local interface eligible{}",
        why.join("; "),
        if svc.etp_local {
            ", and run a ready endpoint on it (externalTrafficPolicy: Local)"
        } else {
            ""
        }
    ))
}
