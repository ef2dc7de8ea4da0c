//! `kubectl ferrolb status`: the whole installation at a glance, problems first (ServiceGroups
//! not Ready or full, Services without an address or whose address no node announces, agents
//! that stopped renewing their Lease), then a short summary. Built from what `pools`, `where`
//! and `nodes` compute, so the three never disagree with it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cluster::{Cluster, ServiceInfo};
use crate::{locate, nodes, pools, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Something does not work now: an address is missing or announced nowhere, a group is
    /// unusable, an agent is down.
    Error,
    /// Works now, will not for long or is in flux: a full group, a handover under way.
    Warning,
}

/// What a problem is about, in the order they are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Subject {
    ServiceGroup,
    Service,
    Address,
    Node,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub subject: Subject,
    /// `lan`, `demo/web`, `demo/web 192.0.2.100`, `node-a`.
    pub object: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub service_groups: usize,
    pub service_groups_ready: usize,
    /// Services of type LoadBalancer that ferrolb handles.
    pub services: usize,
    pub services_with_address: usize,
    pub addresses_ipv4: usize,
    pub addresses_ipv6: usize,
    /// Nodes with a Node object.
    pub nodes: usize,
    pub nodes_alive: usize,
    /// Alive and eligible for local addresses.
    pub nodes_eligible: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// Most severe first, then by subject and object.
    pub problems: Vec<Problem>,
    pub summary: Summary,
}

impl StatusReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The group's condition types that are no problem: `Ready` (its absence shows as `NotReady`)
/// and `InUse` (the finalizer's reason).
const FINE_CONDITIONS: [&str; 2] = ["Ready", "InUse"];
/// Conditions that make a group unusable, not just full.
const UNUSABLE_CONDITIONS: [&str; 3] = ["NotReady", "Overlapping", "InvalidRange"];

fn group_problems(cluster: &Cluster) -> Vec<Problem> {
    let report = pools::report(cluster);
    let mut out = Vec::new();
    for g in &report.groups {
        let mut reasons: Vec<String> = g
            .conditions
            .iter()
            .filter(|c| !FINE_CONDITIONS.contains(&c.as_str()))
            .cloned()
            .collect();
        // A family used up with no Exhausted condition (an allocator older than the condition,
        // or one that has not reported since): the usage says it.
        if !reasons.iter().any(|c| c == "Exhausted") {
            for p in report.pools.iter().filter(|p| p.group == g.group) {
                if p.used_percent.is_some_and(|u| u >= 100.0) {
                    reasons.push(format!("{} full", p.family));
                }
            }
        }
        if reasons.is_empty() && g.messages.is_empty() {
            continue;
        }
        let severity = if reasons
            .iter()
            .any(|c| UNUSABLE_CONDITIONS.contains(&c.as_str()))
        {
            Severity::Error
        } else {
            Severity::Warning
        };
        let mut message = reasons.join(", ");
        if !g.messages.is_empty() {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&g.messages.join("; "));
        }
        out.push(Problem {
            severity,
            subject: Subject::ServiceGroup,
            object: g.group.clone(),
            message,
        });
    }
    out
}

/// `svc`'s problems, from what `where` explains; `failure` is its newest AllocationFailed Event.
fn service_problems(
    cluster: &Cluster,
    svc: &ServiceInfo,
    failure: Option<&String>,
) -> Vec<Problem> {
    let name = format!("{}/{}", svc.namespace, svc.name);
    let report = locate::explain(cluster, svc);
    if svc.addresses.is_empty() {
        let message = match failure {
            Some(m) => format!("no address: AllocationFailed: {m}"),
            None => {
                let notes: Vec<&str> = report
                    .notes
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !n.starts_with("no address in status.loadBalancer"))
                    .collect();
                if notes.is_empty() {
                    "no address yet (no AllocationFailed Event: is the allocator running?)".into()
                } else {
                    format!("no address: {}", notes.join("; "))
                }
            }
        };
        return vec![Problem {
            severity: Severity::Error,
            subject: Subject::Service,
            object: name,
            message,
        }];
    }
    report
        .addresses
        .iter()
        .filter_map(|a| {
            // Announced nowhere is an outage; announced by the wrong node or not yet is a
            // handover in progress (or an agent that lags).
            let nowhere = match a.kind.as_str() {
                "local" => a.elected.is_none(),
                "virtual" => a.carried_by.is_empty(),
                _ => true,
            };
            let mut why = a.warnings.clone();
            if a.kind == "local"
                && a.held_by.is_empty()
                && let Some(e) = &a.elected
            {
                why.push(format!("elected {e}, whose Lease does not list it yet"));
            }
            (!why.is_empty()).then(|| Problem {
                severity: if nowhere {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                subject: Subject::Address,
                object: format!("{name} {}", a.address),
                message: why.join("; "),
            })
        })
        .collect()
}

/// Nodes whose agent has a Lease (or had one) that is not renewing. A node with no Lease at all
/// runs no agent (the DaemonSet does not place one there): counted, not a problem.
fn node_problems(cluster: &Cluster) -> Vec<Problem> {
    nodes::report(cluster)
        .into_iter()
        .filter(|r| {
            !r.alive
                && cluster.nodes.contains_key(&r.node)
                && (cluster.leases.contains_key(&r.node) || cluster.bad_leases.contains_key(&r.node))
        })
        .map(|r| Problem {
            severity: Severity::Error,
            subject: Subject::Node,
            object: r.node,
            message: format!(
                "agent not renewing its Lease: {} (it announces nothing; its local addresses move to other nodes)",
                r.liveness
            ),
        })
        .collect()
}

fn summary(cluster: &Cluster, services: &[ServiceInfo]) -> Summary {
    let ready = |g: &crate::cluster::Group| {
        g.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    let addresses = services.iter().flat_map(|s| &s.addresses);
    let alive: Vec<&String> = cluster.nodes.keys().filter(|n| cluster.alive(n)).collect();
    Summary {
        service_groups: cluster.groups.len(),
        service_groups_ready: cluster.groups.values().filter(|g| ready(g)).count(),
        services: services.len(),
        services_with_address: services.iter().filter(|s| !s.addresses.is_empty()).count(),
        addresses_ipv4: addresses.clone().filter(|a| a.is_ipv4()).count(),
        addresses_ipv6: addresses.filter(|a| a.is_ipv6()).count(),
        nodes: cluster.nodes.len(),
        nodes_alive: alive.len(),
        nodes_eligible: alive
            .iter()
            .filter(|n| {
                cluster
                    .leases
                    .get(n.as_str())
                    .is_some_and(|l| l.eligible_text.is_some() && l.ineligible.is_none())
            })
            .count(),
    }
}

/// The overview of `cluster` and the Services ferrolb handles; `failures` holds the newest
/// AllocationFailed message per Service (`namespace/name`).
pub fn report(
    cluster: &Cluster,
    services: &[ServiceInfo],
    failures: &BTreeMap<String, String>,
) -> StatusReport {
    let mut problems = group_problems(cluster);
    for svc in services {
        let key = format!("{}/{}", svc.namespace, svc.name);
        problems.extend(service_problems(cluster, svc, failures.get(&key)));
    }
    problems.extend(node_problems(cluster));
    problems.sort_by(|a, b| {
        (a.severity, a.subject, &a.object).cmp(&(b.severity, b.subject, &b.object))
    });
    StatusReport {
        problems,
        summary: summary(cluster, services),
    }
}

pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    if r.problems.is_empty() {
        out.push_str("No problems found.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .problems
            .iter()
            .map(|p| {
                vec![
                    match p.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    }
                    .to_string(),
                    format!("{:?}", p.subject),
                    p.object.clone(),
                    p.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["SEVERITY", "KIND", "OBJECT", "PROBLEM"],
            &rows,
        ));
    }
    let s = &r.summary;
    out.push('\n');
    out.push_str(&format!(
        "ServiceGroups:  {} ({} Ready)\n",
        s.service_groups, s.service_groups_ready
    ));
    out.push_str(&format!(
        "Services:       {} of type LoadBalancer ({} with an address)\n",
        s.services, s.services_with_address
    ));
    out.push_str(&format!(
        "Addresses:      {} ({} IPv4, {} IPv6)\n",
        s.addresses_ipv4 + s.addresses_ipv6,
        s.addresses_ipv4,
        s.addresses_ipv6
    ));
    out.push_str(&format!(
        "Nodes:          {} ({} with a live agent, {} eligible for local addresses)\n",
        s.nodes, s.nodes_alive, s.nodes_eligible
    ));
    out
}

#[cfg(test)]
mod tests;
