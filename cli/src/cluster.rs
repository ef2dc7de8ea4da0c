//! What the cluster says, as plain data: ServiceGroups, Nodes, per-node Leases, LBNodeAgents
//! and Services with their endpoint nodes, built from Kubernetes objects without I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::annotations as ann;
use ferrolb_api::election::agent_for_node;
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::selection::{Policy, families_and_policy};
use ferrolb_api::{LBNodeAgent, ServiceGroup, ServiceGroupSpec, ServiceGroupStatus};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::DynamicObject;

use ferrolb_api::node_lease::SKEW;

/// Everything the commands explain, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub now: Timestamp,
    pub groups: BTreeMap<String, Group>,
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Per-node Leases by node name, their expiry judged on this clock ([`read_leases`]).
    pub leases: BTreeMap<String, NodeLease>,
    /// Per-node Leases that cannot be believed, by node name: why they are ignored.
    pub bad_leases: BTreeMap<String, String>,
    /// LBNodeAgents: name and node selector.
    pub agents: Vec<(String, Option<LabelSelector>)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub name: String,
    pub spec: ServiceGroupSpec,
    pub status: Option<ServiceGroupStatus>,
}

impl Group {
    pub fn from_object(g: &ServiceGroup) -> Self {
        Group {
            name: g.metadata.name.clone().unwrap_or_default(),
            spec: g.spec.clone(),
            status: g.status.clone(),
        }
    }
}

/// A Node as the commands need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub network_unavailable: bool,
}

impl NodeInfo {
    pub fn from_object(n: &Node) -> Self {
        let condition = |t: &str| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                .is_some_and(|c| c.status == "True")
        };
        NodeInfo {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            ready: condition("Ready"),
            network_unavailable: condition("NetworkUnavailable"),
        }
    }
}

pub use ferrolb_api::node_lease::NodeLease;

/// The per-node Leases among `objects`, read as the API server returned them (untyped, so that
/// a renewTime it accepts but this side cannot parse costs one Lease, not the command), with
/// liveness judged on this clock at `now`: a one-shot read has seen no renewal, so a renewTime
/// ahead of `now` by more than the skew counts as not alive (see
/// [`ferrolb_api::node_lease::Renewal::expiry`]). The second map holds the bad Leases, by node,
/// and why they are ignored.
pub fn read_leases(
    objects: &[DynamicObject],
    now: Timestamp,
) -> (BTreeMap<String, NodeLease>, BTreeMap<String, String>) {
    let mut leases = BTreeMap::new();
    let mut bad = BTreeMap::new();
    for o in objects {
        match NodeLease::from_object(o) {
            None => {}
            Some(Ok((mut l, renewal))) => {
                l.expires = renewal.expiry(now, true);
                leases.insert(l.node.clone(), l);
            }
            Some(Err(e)) => {
                let node = e
                    .name
                    .strip_prefix(ferrolb_api::contracts::NODE_LEASE_PREFIX)
                    .unwrap_or(&e.name)
                    .to_string();
                bad.insert(node, e.to_string());
            }
        }
    }
    (leases, bad)
}

impl Cluster {
    /// A node is alive as the allocator sees it: its Lease is fresh and its Node exists.
    pub fn alive(&self, node: &str) -> bool {
        self.nodes.contains_key(node) && self.leases.get(node).is_some_and(|l| l.alive(self.now))
    }

    /// Why `node`'s Lease does not make it alive, in a few words.
    pub fn not_alive_why(&self, node: &str) -> String {
        if let Some(why) = self.bad_leases.get(node) {
            return format!("Lease ignored: {why}");
        }
        let Some(l) = self.leases.get(node) else {
            return "no per-node Lease (no agent)".into();
        };
        match (l.renewed, l.expires) {
            (Some(r), None) if r.duration_since(self.now) > SKEW => format!(
                "Lease renewTime {} ahead of this clock (skewed?); alive once a renewal is seen",
                human(r.duration_since(self.now))
            ),
            (_, Some(e)) if e <= self.now => {
                format!("Lease expired {} ago", human(self.now.duration_since(e)))
            }
            _ => "Lease never renewed".into(),
        }
    }

    /// Every node name known from a Node or a per-node Lease, sorted.
    pub fn node_names(&self) -> BTreeSet<&str> {
        self.nodes
            .keys()
            .chain(self.leases.keys())
            .chain(self.bad_leases.keys())
            .map(String::as_str)
            .collect()
    }

    /// The LBNodeAgent that applies to `node`, and whether it selects the node.
    pub fn agent_for(&self, node: &NodeInfo) -> Option<(&str, bool)> {
        let agents: Vec<(&str, Option<&LabelSelector>)> = self
            .agents
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_ref()))
            .collect();
        agent_for_node(&agents, &node.labels)
    }
}

pub fn agent_entry(a: &LBNodeAgent) -> (String, Option<LabelSelector>) {
    (
        a.metadata.name.clone().unwrap_or_default(),
        a.spec.node_selector.clone(),
    )
}

/// A Service as `where` explains it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub type_: String,
    pub lb_class: Option<String>,
    pub etp_local: bool,
    /// `status.loadBalancer.ingress[].ip`.
    pub addresses: Vec<IpAddr>,
    pub annotations: BTreeMap<String, String>,
    /// Its own labels (a group's serviceSelector reads them).
    pub labels: BTreeMap<String, String>,
    /// Its namespace's labels (a group's namespaceSelector reads them), when they were read.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// `spec.ipFamilies` and `spec.ipFamilyPolicy`.
    pub families: Vec<Family>,
    pub policy: Policy,
    /// Nodes with a ready endpoint.
    pub endpoint_nodes: BTreeSet<String>,
}

impl ServiceInfo {
    pub fn from_objects(svc: &Service, slices: &[EndpointSlice]) -> Self {
        let spec = svc.spec.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let (families, policy) = families_and_policy(
            spec.ip_families.as_deref().unwrap_or_default(),
            spec.ip_family_policy.as_deref(),
        );
        let endpoint_nodes = slices
            .iter()
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    == Some(&name)
            })
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .filter_map(|e| e.node_name.clone())
            .collect();
        ServiceInfo {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name,
            type_: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
            lb_class: spec.load_balancer_class,
            etp_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            addresses: svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect(),
            annotations: svc.metadata.annotations.clone().unwrap_or_default(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            namespace_labels: None,
            families,
            policy,
            endpoint_nodes,
        }
    }

    /// Whether ferrolb handles it: type LoadBalancer with our class or none (the allocator's
    /// default `--handle-unclassed`; the CLI cannot see that flag).
    pub fn is_ours(&self) -> bool {
        self.type_ == "LoadBalancer"
            && self
                .lb_class
                .as_deref()
                .is_none_or(|c| c == ferrolb_api::contracts::LOAD_BALANCER_CLASS)
    }

    /// The ServiceGroup the allocator took the addresses from (or the one the Service asks for).
    pub fn group(&self) -> Option<&str> {
        self.annotations
            .get(ann::ALLOCATED_FROM)
            .or_else(|| self.annotations.get(ann::SERVICE_GROUP))
            .map(String::as_str)
    }
}

/// A duration to a person: `4s`, `3m10s`, `2h5m`, `3d`.
pub fn human(d: SignedDuration) -> String {
    let s = d.as_secs().unsigned_abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, renew: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": format!("ferrolb-node-{node}"), "namespace": "ferrolb-system" },
            "spec": { "holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": renew },
        }))
        .expect("an object")
    }

    #[test]
    fn leases_the_api_server_accepts_are_read_or_reported_never_believed_blindly() {
        let now: Timestamp = "2026-11-30T10:00:00Z".parse().expect("a timestamp");
        let objects = [
            lease("fresh", "2026-11-30T09:59:58.000000Z"),
            lease("old", "2026-11-30T09:58:00.000000Z"),
            lease("future", "3000-01-01T00:00:00.000000Z"),
            lease("edge", "9999-12-30T21:59:59.000000Z"),
            lease("end", "9999-12-31T23:59:59.999999Z"),
        ];
        let (leases, bad) = read_leases(&objects, now);
        let mut c = Cluster {
            now,
            leases,
            bad_leases: bad,
            ..Default::default()
        };
        for n in ["fresh", "old", "future", "edge", "end"] {
            c.nodes.insert(
                n.into(),
                NodeInfo {
                    name: n.into(),
                    ..Default::default()
                },
            );
        }
        // (node, alive, why not)
        let cases = [
            ("fresh", true, ""),
            ("old", false, "Lease expired 1m45s ago"),
            ("future", false, "ahead of this clock"),
            (
                "edge",
                false,
                "Lease ignored: per-node Lease ferrolb-node-edge",
            ),
            ("end", false, "cannot be read"),
        ];
        for (node, alive, why) in cases {
            assert_eq!(c.alive(node), alive, "{node}");
            if !alive {
                let text = c.not_alive_why(node);
                assert!(text.contains(why), "{node}: {text}");
            }
        }
        assert_eq!(c.node_names().len(), 5);
    }
}
