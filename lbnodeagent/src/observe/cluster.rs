//! Nodes, ServiceGroups, Services and EndpointSlices, as the plain facts the decisions read.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::ServiceGroup;
use ferrolb_api::annotations::ALLOCATED_FROM;
use ferrolb_api::pool::{AddrRange, Aggregation, parse_cidr};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::Lookup;
use kube::{Resource, ResourceExt};

use crate::snapshot::{Group, GroupPool, NodeFacts, ServiceAddresses};

/// EndpointSlice label naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub fn node_facts(node: &Node) -> NodeFacts {
    let condition = |kind: &str| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .is_some_and(|c| c.status == "True")
    };
    NodeFacts {
        name: node.name_any(),
        labels: node.labels().clone(),
        ready: condition("Ready"),
        network_unavailable: condition("NetworkUnavailable"),
    }
}

/// A ServiceGroup's pools; `None` for a group that is neither local nor virtual. Pools that
/// do not parse are left out: the allocator never allocates from them.
pub fn group(sg: &ServiceGroup) -> Option<Group> {
    let kind = sg.spec.group_type()?;
    let (v4, v6) = sg.spec.pools();
    let pools = v4
        .iter()
        .chain(v6)
        .filter_map(|p| {
            Some(GroupPool {
                subnet: parse_cidr(&p.subnet).ok()?,
                range: AddrRange::parse(&p.pool).ok()?,
                aggregation: match &p.aggregation {
                    Some(a) => Aggregation::parse(a).ok()?,
                    None => Aggregation::Default,
                },
            })
        })
        .collect();
    Some(Group { kind, pools })
}

pub fn groups<'a>(sgs: impl IntoIterator<Item = &'a ServiceGroup>) -> BTreeMap<String, Group> {
    sgs.into_iter()
        .filter_map(|sg| Some((sg.name_any(), group(sg)?)))
        .collect()
}

/// Nodes with a ready endpoint, by `namespace/service`. An endpoint whose `ready` is unset
/// counts as ready, as the EndpointSlice API says.
pub fn ready_endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for slice in slices {
        let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let key = format!(
            "{}/{service}",
            ResourceExt::namespace(slice).unwrap_or_default()
        );
        let nodes = out.entry(key).or_default();
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if let (true, Some(node)) = (ready, &endpoint.node_name) {
                nodes.insert(node.clone());
            }
        }
    }
    out
}

/// A Service as the agent's store keeps it: only what [`services`] reads. A full Service is
/// over 1.5 kB in memory even without managed fields, most of it spec fields the agent never
/// looks at; with 5,000 Services that was most of the agent's memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredService {
    pub namespace: String,
    pub name: String,
    /// `type: LoadBalancer`.
    pub load_balancer: bool,
    /// `ferrolb.io/allocated-from`.
    pub allocated_from: Option<String>,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic_policy: bool,
    /// The status's ingress IPs that parse.
    pub ingress: Vec<IpAddr>,
}

impl From<Service> for StoredService {
    fn from(svc: Service) -> Self {
        let spec = svc.spec.unwrap_or_default();
        Self {
            allocated_from: svc
                .metadata
                .annotations
                .and_then(|mut a| a.remove(ALLOCATED_FROM)),
            namespace: svc.metadata.namespace.unwrap_or_default(),
            name: svc.metadata.name.unwrap_or_default(),
            load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            local_traffic_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
            ingress: svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip?.parse().ok())
                .collect(),
        }
    }
}

impl Lookup for StoredService {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        <Service as Resource>::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        <Service as Resource>::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        <Service as Resource>::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        <Service as Resource>::plural(&())
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.namespace))
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// LoadBalancer Services the allocator gave addresses (`ferrolb.io/allocated-from`).
pub fn services<'a>(
    services: impl IntoIterator<Item = &'a StoredService>,
    ready: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<ServiceAddresses> {
    services
        .into_iter()
        .filter_map(|svc| {
            if !svc.load_balancer || svc.ingress.is_empty() {
                return None;
            }
            let group = svc.allocated_from.clone()?;
            let key = format!("{}/{}", svc.namespace, svc.name);
            Some(ServiceAddresses {
                ready_endpoint_nodes: ready.get(&key).cloned().unwrap_or_default(),
                key,
                group,
                addresses: svc.ingress.clone(),
                local_traffic_policy: svc.local_traffic_policy,
            })
        })
        .collect()
}

/// Drops from a watched EndpointSlice what [`ready_endpoint_nodes`] never reads: labels but
/// the Service's name, annotations, ports, and of each endpoint all but its node and readiness.
pub fn strip_endpoint_slice(slice: &mut EndpointSlice) {
    strip_meta(&mut slice.metadata);
    slice.metadata.annotations = None;
    if let Some(l) = &mut slice.metadata.labels {
        l.retain(|k, _| k == SERVICE_NAME_LABEL);
    }
    slice.ports = None;
    if let Some(endpoints) = &mut slice.endpoints {
        for e in endpoints.iter_mut() {
            *e = Endpoint {
                node_name: e.node_name.take(),
                conditions: e.conditions.as_ref().map(|c| EndpointConditions {
                    ready: c.ready,
                    ..Default::default()
                }),
                ..Default::default()
            };
        }
    }
}

/// Drops from the watched Node what [`node_facts`] never reads: annotations, the spec, and the
/// status but the conditions' types and statuses (images alone can be tens of kilobytes).
pub fn strip_node(node: &mut Node) {
    strip_meta(&mut node.metadata);
    node.metadata.annotations = None;
    node.spec = None;
    node.status = node.status.take().map(|status| NodeStatus {
        conditions: status.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| NodeCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    });
}

/// Metadata nobody in the agent reads, of any kind.
fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    fn service(name: &str, type_: &str, from: Option<&str>, ips: &[&str], etp: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                annotations: from
                    .map(|g| BTreeMap::from([(ALLOCATED_FROM.to_string(), g.to_string())])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                external_traffic_policy: Some(etp.into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
        }
    }

    fn endpoint(node: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            node_name: Some(node.into()),
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_services_with_allocated_addresses_and_their_endpoint_nodes() {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.into(), "web".into())])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(vec![
                endpoint("n1", Some(true)),
                endpoint("n2", Some(false)),
                endpoint("n3", None),
            ]),
            ports: None,
        };
        let ready = ready_endpoint_nodes([&slice]);
        let svcs = [
            service(
                "web",
                "LoadBalancer",
                Some("lan"),
                &["192.0.2.100", "2001:db8:1::10"],
                "Local",
            ),
            service(
                "no-group",
                "LoadBalancer",
                None,
                &["192.0.2.101"],
                "Cluster",
            ),
            service(
                "cluster-ip",
                "ClusterIP",
                Some("lan"),
                &["192.0.2.102"],
                "Cluster",
            ),
            service("pending", "LoadBalancer", Some("lan"), &[], "Cluster"),
        ];
        let stored: Vec<StoredService> = svcs.into_iter().map(Into::into).collect();
        let got = services(&stored, &ready);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].key, "shop/web");
        assert_eq!(got[0].group, "lan");
        assert_eq!(got[0].addresses.len(), 2);
        assert!(got[0].local_traffic_policy);
        let nodes: Vec<&str> = got[0]
            .ready_endpoint_nodes
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(nodes, ["n1", "n3"]);
    }

    #[test]
    fn stored_objects_keep_what_the_decisions_read() {
        let mut full = service(
            "web",
            "LoadBalancer",
            Some("lan"),
            &["192.0.2.100", "2001:db8:1::10", "not an address"],
            "Local",
        );
        let meta = &mut full.metadata;
        meta.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        meta.annotations.get_or_insert_default().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{\"big\": true}".into(),
        );
        let spec = full.spec.as_mut().expect("spec");
        spec.cluster_ip = Some("10.96.0.10".into());
        spec.selector = Some(BTreeMap::from([("app".into(), "web".into())]));
        assert_eq!(
            StoredService::from(full),
            StoredService {
                namespace: "shop".into(),
                name: "web".into(),
                load_balancer: true,
                allocated_from: Some("lan".into()),
                local_traffic_policy: true,
                ingress: vec![
                    "192.0.2.100".parse().expect("ip"),
                    "2001:db8:1::10".parse().expect("ip")
                ],
            }
        );

        let mut slice = EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([
                    (SERVICE_NAME_LABEL.into(), "web".into()),
                    ("endpointslice.kubernetes.io/managed-by".into(), "x".into()),
                ])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(vec![
                Endpoint {
                    addresses: vec!["10.0.0.1".into()],
                    hostname: Some("web-0".into()),
                    ..endpoint("n1", Some(true))
                },
                endpoint("n2", Some(false)),
                endpoint("n3", None),
            ]),
            ports: Some(vec![Default::default()]),
        };
        let before = ready_endpoint_nodes([&slice]);
        strip_endpoint_slice(&mut slice);
        assert_eq!(ready_endpoint_nodes([&slice]), before);
        assert!(slice.ports.is_none());
        assert!(
            slice
                .endpoints
                .iter()
                .flatten()
                .all(|e| e.addresses.is_empty())
        );
        assert_eq!(slice.labels().len(), 1);
    }

    #[test]
    fn stripping_a_node_keeps_its_labels_and_conditions() {
        let mut node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                annotations: Some(BTreeMap::from([("big".into(), "x".repeat(100))])),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![
                    NodeCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        message: Some("kubelet is posting ready status".into()),
                        ..Default::default()
                    },
                    NodeCondition {
                        type_: "NetworkUnavailable".into(),
                        status: "True".into(),
                        ..Default::default()
                    },
                ]),
                images: Some(vec![Default::default(); 3]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let before = node_facts(&node);
        strip_node(&mut node);
        assert_eq!(node_facts(&node), before);
        assert!(before.ready && before.network_unavailable);
        assert!(node.metadata.annotations.is_none());
        assert!(node.status.as_ref().is_some_and(|s| s.images.is_none()));
    }

    #[test]
    fn reads_node_conditions() {
        let cases = [
            ("ready", vec![("Ready", "True")], true, false),
            ("not ready", vec![("Ready", "False")], false, false),
            ("unknown", vec![("Ready", "Unknown")], false, false),
            ("no conditions yet", vec![], false, false),
            (
                "network unavailable",
                vec![("Ready", "True"), ("NetworkUnavailable", "True")],
                true,
                true,
            ),
        ];
        for (name, conditions, ready, unavailable) in cases {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some("n1".into()),
                    ..Default::default()
                },
                status: Some(NodeStatus {
                    conditions: Some(
                        conditions
                            .into_iter()
                            .map(|(t, s)| NodeCondition {
                                type_: t.into(),
                                status: s.into(),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let facts = node_facts(&node);
            assert_eq!(
                (facts.ready, facts.network_unavailable),
                (ready, unavailable),
                "{name}"
            );
        }
    }
}
