//! `kubectl ferrolb where`: for each address of a Service, which node holds it (local) or which
//! nodes carry it (virtual), and why every other node does not, by the same election the agents
//! run, fed from the per-node Leases; for a Service that names no group, which group serves it
//! and why.

mod group;

use std::net::IpAddr;

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{IneligibleReason, VIRTUAL_INTERFACE};
use ferrolb_api::election::{Contender, NotCandidate, candidacy, elect};
use ferrolb_api::pool::{Aggregation, Family};
use ferrolb_api::servicegroup::GroupType;
use serde::Serialize;

use crate::cluster::{Cluster, ServiceInfo, human};
use crate::table;
pub use group::GroupVerdict;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhereReport {
    pub service: String,
    pub group: Option<String>,
    pub group_type: Option<String>,
    pub external_traffic_policy_local: bool,
    pub endpoint_nodes: Vec<String>,
    pub addresses: Vec<AddressReport>,
    /// Things about the Service as a whole (no address yet, unknown group...).
    pub notes: Vec<String>,
    /// It names no group and has no address: every group in the order tried, with its verdict.
    pub selection: Vec<GroupVerdict>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressReport {
    pub address: String,
    pub family: String,
    /// `local`, `virtual`, or `unknown` when the group is gone.
    pub kind: String,
    /// Local: the node the election picks from the Leases.
    pub elected: Option<String>,
    /// Local: nodes whose Lease lists the address, with their interface.
    pub held_by: Vec<Placement>,
    /// Virtual: nodes that carry it on kube-lb0, with its prefix length.
    pub carried_by: Vec<Placement>,
    /// The allocator's `ferrolb.io/announcing-IPv4/-IPv6` annotation.
    pub announcing: Option<String>,
    pub nodes: Vec<NodeRole>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub node: String,
    pub interface: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRole {
    pub node: String,
    /// `holder`, `candidate`, `carrier` or `-`.
    pub role: String,
    pub why: String,
}

/// Explains where each address of `svc` is, from `cluster`.
pub fn explain(cluster: &Cluster, svc: &ServiceInfo) -> WhereReport {
    let group_name = svc.group().map(str::to_string);
    let group = group_name.as_deref().and_then(|g| cluster.groups.get(g));
    let kind = group.and_then(|g| g.spec.group_type()).or_else(|| {
        match svc.annotations.get(ann::POOL_TYPE).map(String::as_str) {
            Some("local") => Some(GroupType::Local),
            Some("virtual") => Some(GroupType::Virtual),
            _ => None,
        }
    });
    let mut notes = Vec::new();
    if svc.type_ != "LoadBalancer" {
        notes.push(format!(
            "type is {}, not LoadBalancer: ferrolb gives it no address",
            svc.type_
        ));
    }
    if svc.addresses.is_empty() && svc.type_ == "LoadBalancer" {
        notes.push(
            "no address in status.loadBalancer yet: see `kubectl describe service` for the allocator's Events"
                .to_string(),
        );
    }
    if let (Some(g), None) = (&group_name, group) {
        notes.push(format!("ServiceGroup {g} does not exist"));
    }
    if let Some(why) = group.and_then(|g| group::refusal(cluster, svc, g)) {
        notes.push(why);
    }
    let mut selection = Vec::new();
    if svc.type_ == "LoadBalancer" && !group::names_group(svc) {
        let (n, s) = group::explain(cluster, svc);
        notes.extend(n);
        selection = s;
    }
    if svc.etp_local && svc.endpoint_nodes.is_empty() {
        notes.push(
            "externalTrafficPolicy: Local and no ready endpoint on any node: no node announces it"
                .to_string(),
        );
    }
    let addresses = svc
        .addresses
        .iter()
        .map(|&addr| {
            let prefix = group.and_then(|g| virtual_prefix(g, addr));
            match kind {
                Some(GroupType::Local) => local(cluster, svc, addr),
                Some(GroupType::Virtual) => virtual_(cluster, svc, addr, prefix),
                None => unknown(svc, addr),
            }
        })
        .collect();
    WhereReport {
        service: format!("{}/{}", svc.namespace, svc.name),
        group: group_name,
        group_type: kind.map(|k| k.as_str().to_string()),
        external_traffic_policy_local: svc.etp_local,
        endpoint_nodes: svc.endpoint_nodes.iter().cloned().collect(),
        addresses,
        notes,
        selection,
    }
}

fn announcing(svc: &ServiceInfo, addr: IpAddr) -> Option<String> {
    let key = match Family::of(addr) {
        Family::V4 => ann::ANNOUNCING_IPV4,
        Family::V6 => ann::ANNOUNCING_IPV6,
    };
    svc.annotations
        .get(key)
        .map(|v| ann::announcing_for(v, addr))
        .filter(|v| !v.is_empty())
}

fn base(svc: &ServiceInfo, addr: IpAddr, kind: &str) -> AddressReport {
    AddressReport {
        address: addr.to_string(),
        family: Family::of(addr).k8s_name().to_string(),
        kind: kind.to_string(),
        elected: None,
        held_by: Vec::new(),
        carried_by: Vec::new(),
        announcing: announcing(svc, addr),
        nodes: Vec::new(),
        warnings: Vec::new(),
    }
}

fn unknown(svc: &ServiceInfo, addr: IpAddr) -> AddressReport {
    let mut r = base(svc, addr, "unknown");
    r.warnings.push(
        "its ServiceGroup is unknown, so no agent places it (see the Service's Events)".into(),
    );
    r
}

/// The nodes as the election sees them, from their Leases.
fn contenders(cluster: &Cluster, svc: &ServiceInfo) -> Vec<Contender> {
    cluster
        .leases
        .values()
        .map(|l| Contender {
            name: l.node.clone(),
            ineligible: l.ineligible,
            alive: cluster.alive(&l.node),
            subnets: l.subnets.clone(),
            has_local_endpoint: svc.endpoint_nodes.contains(&l.node),
        })
        .collect()
}

/// Why a node is not a candidate, in words that say where to look.
fn why_not(cluster: &Cluster, node: &str, addr: IpAddr, why: NotCandidate) -> String {
    match why {
        NotCandidate::NotAlive => {
            if !cluster.nodes.contains_key(node) {
                return "its Node object does not exist".into();
            }
            match cluster.leases.get(node).and_then(|l| l.expires) {
                Some(e) if e <= cluster.now => format!(
                    "not alive: its Lease expired {} ago (agent stopped or cut off from the API server)",
                    human(cluster.now.duration_since(e))
                ),
                _ => format!("not alive: {}", cluster.not_alive_why(node)),
            }
        }
        NotCandidate::NoSubnet => {
            let iface = cluster
                .leases
                .get(node)
                .and_then(|l| l.interface(addr))
                .unwrap_or("its local interface");
            format!("no subnet: {iface} has no subnet that contains {addr}")
        }
        NotCandidate::Ineligible(r) => format!("not eligible: {}", reason_text(r)),
        NotCandidate::NoLocalEndpoint => {
            "no ready endpoint on it (externalTrafficPolicy: Local)".into()
        }
    }
}

/// An ineligibility reason and what causes it.
pub fn reason_text(r: IneligibleReason) -> String {
    let why = match r {
        IneligibleReason::NotSelected => "its LBNodeAgent's nodeSelector leaves it out",
        IneligibleReason::ExcludedLabel => {
            "label node.kubernetes.io/exclude-from-external-load-balancers"
        }
        IneligibleReason::NotReady => "the Node is not Ready",
        IneligibleReason::NetworkUnavailable => "the Node's NetworkUnavailable condition is True",
        IneligibleReason::CarrierDown => "no carrier on its local interface",
        IneligibleReason::Stopping => "its agent is stopping",
    };
    format!("{} ({why})", r.as_str())
}

fn no_lease_rows(cluster: &Cluster) -> Vec<NodeRole> {
    cluster
        .nodes
        .keys()
        .filter(|n| !cluster.leases.contains_key(*n))
        .map(|n| NodeRole {
            node: n.clone(),
            role: "-".into(),
            why: match cluster.bad_leases.get(n) {
                Some(why) => format!("not a candidate: {why}"),
                None => "no per-node Lease: no ferrolb agent has run there".into(),
            },
        })
        .collect()
}

fn local(cluster: &Cluster, svc: &ServiceInfo, addr: IpAddr) -> AddressReport {
    let mut r = base(svc, addr, GroupType::Local.as_str());
    let contenders = contenders(cluster, svc);
    let (elected, rejected) = elect(addr, &contenders, svc.etp_local);
    let elected = elected.map(str::to_string);
    let candidates: Vec<&str> = contenders
        .iter()
        .filter(|c| candidacy(c, addr, svc.etp_local).is_ok())
        .map(|c| c.name.as_str())
        .collect();
    r.held_by = cluster
        .leases
        .values()
        .filter(|l| l.alive(cluster.now) && l.holding.contains(&addr))
        .map(|l| Placement {
            node: l.node.clone(),
            interface: l.interface(addr).unwrap_or("-").to_string(),
        })
        .collect();
    let holds = |n: &str| r.held_by.iter().any(|p| p.node == n);
    for c in &contenders {
        let name = c.name.as_str();
        let row = if let Some((_, why)) = rejected.iter().find(|(n, _)| *n == name) {
            let mut why = why_not(cluster, name, addr, *why);
            if holds(name) {
                why.push_str("; yet its Lease still lists the address (it should drop it)");
            }
            ("-", why)
        } else if elected.as_deref() == Some(name) {
            let n = candidates.len();
            let mut why = format!(
                "lowest election hash of {n} candidate{}",
                if n == 1 { "" } else { "s" }
            );
            if !holds(name) {
                why.push_str("; its Lease does not list the address yet (taking over?)");
            }
            ("holder", why)
        } else {
            let winner = elected.as_deref().unwrap_or("-");
            let mut why = format!("not elected: {winner} has the lower election hash");
            if holds(name) {
                why.push_str("; yet its Lease lists the address (handover in progress?)");
            }
            ("candidate", why)
        };
        r.nodes.push(NodeRole {
            node: name.to_string(),
            role: row.0.to_string(),
            why: row.1,
        });
    }
    r.nodes.extend(no_lease_rows(cluster));
    r.nodes.sort_by(|a, b| a.node.cmp(&b.node));
    match &elected {
        None => r.warnings.push(format!(
            "no candidate: no node announces {addr} (the allocator reports NoCandidate)"
        )),
        Some(e) if r.held_by.len() > 1 || r.held_by.iter().any(|p| &p.node != e) => {
            r.warnings.push(format!(
                "the Leases disagree with the election ({e}): held by {}",
                r.held_by
                    .iter()
                    .map(|p| p.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => {}
    }
    r.elected = elected;
    r
}

/// The prefix length a virtual address gets on kube-lb0, from its pool.
fn virtual_prefix(group: &crate::cluster::Group, addr: IpAddr) -> Option<u8> {
    let (v4, v6) = group.spec.pools();
    v4.iter().chain(v6).find_map(|p| {
        let subnet: ipnetwork::IpNetwork = p.subnet.parse().ok()?;
        if !subnet.contains(addr) {
            return None;
        }
        let agg = Aggregation::parse(p.aggregation.as_deref().unwrap_or("default")).ok()?;
        Some(agg.prefix_for(subnet))
    })
}

fn virtual_(
    cluster: &Cluster,
    svc: &ServiceInfo,
    addr: IpAddr,
    prefix: Option<u8>,
) -> AddressReport {
    let mut r = base(svc, addr, GroupType::Virtual.as_str());
    let iface = match prefix {
        Some(p) => format!("{VIRTUAL_INTERFACE} /{p}"),
        None => VIRTUAL_INTERFACE.to_string(),
    };
    for l in cluster.leases.values() {
        let name = l.node.as_str();
        let why_not = if !cluster.alive(name) {
            Some(why_not(cluster, name, addr, NotCandidate::NotAlive))
        } else {
            match l.ineligible {
                // Carrier and the stop (until the drain ends) do not gate virtual addresses:
                // routing protocols handle link loss and the drain.
                None | Some(IneligibleReason::CarrierDown) | Some(IneligibleReason::Stopping) => {
                    (svc.etp_local && !svc.endpoint_nodes.contains(name))
                        .then(|| why_not(cluster, name, addr, NotCandidate::NoLocalEndpoint))
                }
                Some(other) => Some(format!("not eligible: {}", reason_text(other))),
            }
        };
        let row = match why_not {
            Some(why) => ("-", why),
            None => {
                r.carried_by.push(Placement {
                    node: name.to_string(),
                    interface: iface.clone(),
                });
                let mut why = format!("carries it on {iface}; BIRD exports the prefix");
                match l.ineligible {
                    Some(IneligibleReason::CarrierDown) => {
                        why.push_str(" (carrier down on its local interface: local addresses only)")
                    }
                    Some(IneligibleReason::Stopping) => {
                        why.push_str(" until its drain ends (agent stopping)")
                    }
                    _ => {}
                }
                if l.virtual_count == Some(0) {
                    why.push_str("; but its Lease reports 0 virtual addresses (not applied yet?)");
                }
                ("carrier", why)
            }
        };
        r.nodes.push(NodeRole {
            node: name.to_string(),
            role: row.0.to_string(),
            why: row.1,
        });
    }
    r.nodes.extend(no_lease_rows(cluster));
    r.nodes.sort_by(|a, b| a.node.cmp(&b.node));
    if r.carried_by.is_empty() {
        r.warnings.push(format!(
            "no node carries {addr}: no router learns a route to it"
        ));
    }
    r
}

/// The report as a platform engineer reads it in a terminal.
pub fn render(r: &WhereReport) -> String {
    let mut out = format!("Service {}\n", r.service);
    let group = match (&r.group, &r.group_type) {
        (Some(g), Some(t)) => format!("{g} ({t})"),
        (Some(g), None) => format!("{g} (type unknown)"),
        (None, _) => "-".into(),
    };
    out.push_str(&format!("  ServiceGroup:           {group}\n"));
    let etp = if r.external_traffic_policy_local {
        format!(
            "Local (ready endpoints on: {})",
            if r.endpoint_nodes.is_empty() {
                "none".to_string()
            } else {
                r.endpoint_nodes.join(", ")
            }
        )
    } else {
        "Cluster".into()
    };
    out.push_str(&format!("  externalTrafficPolicy:  {etp}\n"));
    for n in &r.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    if !r.selection.is_empty() {
        let rows: Vec<Vec<String>> = r
            .selection
            .iter()
            .map(|v| vec![v.group.clone(), v.verdict.clone()])
            .collect();
        out.push_str(&table::indent(
            &table::render(
                &["SERVICEGROUP", "FOR THIS SERVICE (in the order tried)"],
                &rows,
            ),
            2,
        ));
    }
    for a in &r.addresses {
        out.push('\n');
        out.push_str(&format!("{} ({}, {})\n", a.address, a.family, a.kind));
        let summary = match a.kind.as_str() {
            "local" => match (&a.elected, a.held_by.as_slice()) {
                (_, [p]) => format!("held by {} on {}", p.node, p.interface),
                (Some(e), []) => format!("elected {e}, which does not hold it yet"),
                (None, []) => "held by no node".into(),
                (_, many) => format!(
                    "held by {} nodes: {}",
                    many.len(),
                    many.iter()
                        .map(|p| format!("{} on {}", p.node, p.interface))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            "virtual" => match a.carried_by.first() {
                Some(p) => format!(
                    "on {} of {} node{}: {}",
                    p.interface,
                    a.carried_by.len(),
                    if a.carried_by.len() == 1 { "" } else { "s" },
                    a.carried_by
                        .iter()
                        .map(|p| p.node.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "on no node".into(),
            },
            _ => "unknown".into(),
        };
        out.push_str(&format!("  where:       {summary}\n"));
        // No annotation and no node that may announce it: the allocator has nothing to write.
        let candidates = a
            .nodes
            .iter()
            .any(|n| matches!(n.role.as_str(), "holder" | "candidate" | "carrier"));
        out.push_str(&format!(
            "  announcing:  {}\n",
            a.announcing.as_deref().unwrap_or(if candidates {
                "(not written by the allocator yet)"
            } else {
                "none: no node can announce it (each node's reason below)"
            })
        ));
        for w in &a.warnings {
            out.push_str(&format!("  warning:     {w}\n"));
        }
        let rows: Vec<Vec<String>> = a
            .nodes
            .iter()
            .map(|n| vec![n.node.clone(), n.role.clone(), n.why.clone()])
            .collect();
        if !rows.is_empty() {
            out.push_str(&table::indent(
                &table::render(&["NODE", "ROLE", "WHY"], &rows),
                2,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
