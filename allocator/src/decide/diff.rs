//! From desired to observed: the writes needed, and none when everything is right.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ferrolb_api::ServiceGroupStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{GroupPlan, Plan, SvcPlan};
use crate::observe::{GroupView, ObjKey, Snapshot, SvcView};

/// One write.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Server-side apply of `status.loadBalancer.ingress` (ipMode VIP) together with the
    /// allocator's annotations, in one write: the Service's status strategy keeps metadata
    /// (it resets only `spec`), so watchers (every node's agent) see the address and its group
    /// at once, and a Service costs one write instead of two.
    SetIngress {
        key: ObjKey,
        ingress: Vec<IpAddr>,
        annotations: BTreeMap<String, String>,
    },
    /// Remove `status.loadBalancer.ingress`.
    ClearIngress { key: ObjKey },
    /// Server-side apply of the allocator's annotations.
    SetAnnotations {
        key: ObjKey,
        annotations: BTreeMap<String, String>,
    },
    /// Remove allocator annotations that should no longer be there.
    RemoveAnnotations { key: ObjKey, keys: Vec<String> },
    /// Server-side apply of a ServiceGroup's status.
    GroupStatus {
        name: String,
        status: Box<ServiceGroupStatus>,
    },
    /// Add or remove the `ferrolb.io/in-use` finalizer.
    GroupFinalizer { name: String, present: bool },
}

/// Every write the plan needs against the snapshot it was made from.
pub fn diff(plan: &Plan, snap: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    let services = snap.services_by_uid();
    for p in &plan.services {
        if let Some(s) = services.get(p.uid.as_str()) {
            out.extend(service_changes(p, s));
        }
    }
    let groups: HashMap<&str, &GroupView> =
        snap.groups.iter().map(|g| (g.name.as_str(), g)).collect();
    for p in &plan.groups {
        if let Some(g) = groups.get(p.name.as_str()) {
            out.extend(group_changes(p, g, snap.now));
        }
    }
    out
}

/// The writes one Service needs.
pub fn service_changes(p: &SvcPlan, s: &SvcView) -> Vec<Change> {
    let mut out = Vec::new();
    let annotations_differ = p
        .annotations
        .iter()
        .any(|(k, v)| s.written.get(k) != Some(v));
    if p.ingress.is_empty() {
        if !s.ingress.is_empty() || !s.ingress_exact {
            out.push(Change::ClearIngress { key: s.key.clone() });
        }
    } else if s.ingress != p.ingress || !s.ingress_exact {
        out.push(Change::SetIngress {
            key: s.key.clone(),
            ingress: p.ingress.clone(),
            annotations: p.annotations.clone(),
        });
    }
    let with_status = matches!(out.last(), Some(Change::SetIngress { .. }));
    if annotations_differ && !with_status {
        out.push(Change::SetAnnotations {
            key: s.key.clone(),
            annotations: p.annotations.clone(),
        });
    }
    let stale: Vec<String> = s
        .written
        .keys()
        .filter(|k| !p.annotations.contains_key(*k))
        .cloned()
        .collect();
    if !stale.is_empty() {
        out.push(Change::RemoveAnnotations {
            key: s.key.clone(),
            keys: stale,
        });
    }
    out
}

/// The writes one ServiceGroup needs. Condition times are kept where the status did not change.
pub fn group_changes(p: &GroupPlan, g: &GroupView, now: Timestamp) -> Vec<Change> {
    let mut out = Vec::new();
    let mut status = p.status.clone();
    let observed = g.status.clone().unwrap_or_default();
    for c in &mut status.conditions {
        c.last_transition_time = observed
            .conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .map(|o| o.last_transition_time.clone())
            .unwrap_or(Time(now));
    }
    if g.status.as_ref() != Some(&status) {
        out.push(Change::GroupStatus {
            name: g.name.clone(),
            status: Box::new(status),
        });
    }
    // A group being deleted cannot get a finalizer added.
    if p.finalizer != g.has_finalizer && !(g.deleting && p.finalizer) {
        out.push(Change::GroupFinalizer {
            name: g.name.clone(),
            present: p.finalizer,
        });
    }
    out
}
