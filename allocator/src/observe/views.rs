//! ServiceGroups, per-node Leases and EndpointSlices as plain views, and the whole snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_api::contracts;
use ferrolb_api::servicegroup::admission::Labels;
use ferrolb_api::{ServiceGroup, ServiceGroupSpec, ServiceGroupStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;

use super::service::{ObjKey, SvcView};

/// A ServiceGroup as the decisions need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub uid: Option<String>,
    pub created: Timestamp,
    pub generation: Option<i64>,
    pub spec: ServiceGroupSpec,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Carries the `ferrolb.io/in-use` finalizer.
    pub has_finalizer: bool,
    pub status: Option<ServiceGroupStatus>,
}

impl GroupView {
    pub fn from_group(g: &ServiceGroup) -> Self {
        let meta = &g.metadata;
        GroupView {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            created: meta
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            generation: meta.generation,
            spec: g.spec.clone(),
            deleting: meta.deletion_timestamp.is_some(),
            has_finalizer: meta
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == contracts::FINALIZER_IN_USE),
            status: g.status.clone(),
        }
    }
}

pub use ferrolb_api::node_lease::NodeLease;

/// Nodes with a ready endpoint, per Service.
pub type Endpoints = BTreeMap<ObjKey, BTreeSet<String>>;

/// Adds the nodes of one EndpointSlice's ready endpoints to `out`.
pub fn add_slice(out: &mut Endpoints, slice: &EndpointSlice) {
    let Some(service) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
    else {
        return;
    };
    let key = ObjKey::new(
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        service,
    );
    let nodes = out.entry(key).or_default();
    for e in slice.endpoints.iter().flatten() {
        let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if let (true, Some(node)) = (ready, e.node_name.as_ref()) {
            nodes.insert(node.clone());
        }
    }
}

/// Everything the allocator observes, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Shared with the observer's cache: a Service's view is made once per resourceVersion.
    pub services: Vec<Arc<SvcView>>,
    pub groups: Vec<GroupView>,
    pub leases: Vec<NodeLease>,
    /// Names of the Nodes that exist: a Lease of a deleted Node holds nothing.
    pub nodes: BTreeSet<String>,
    /// The labels of each Namespace, by name: ServiceGroups' namespaceSelectors read them.
    pub namespaces: BTreeMap<String, Labels>,
    pub endpoints: Endpoints,
    pub now: Timestamp,
}

impl Snapshot {
    /// Leases that are fresh and whose Node exists.
    pub fn live_leases(&self) -> impl Iterator<Item = &NodeLease> {
        self.leases
            .iter()
            .filter(|l| l.alive(self.now) && self.nodes.contains(&l.node))
    }

    /// The Services by uid.
    pub fn services_by_uid(&self) -> std::collections::HashMap<&str, &SvcView> {
        self.services
            .iter()
            .map(|s| (s.uid.as_str(), s.as_ref()))
            .collect()
    }

    /// The next instant a fresh Lease expires (the decisions change then).
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.leases
            .iter()
            .filter_map(|l| l.expires)
            .filter(|e| *e > self.now)
            .min()
    }
}
