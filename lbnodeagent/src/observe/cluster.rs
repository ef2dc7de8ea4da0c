//! Nodes, ServiceGroups, Services and EndpointSlices, as the plain facts the decisions read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::ServiceGroup;
use ferrolb_api::annotations::ALLOCATED_FROM;
use ferrolb_api::pool::{AddrRange, Aggregation, parse_cidr};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

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
        let key = format!("{}/{service}", slice.namespace().unwrap_or_default());
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

/// LoadBalancer Services the allocator gave addresses (`ferrolb.io/allocated-from`).
pub fn services<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    ready: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<ServiceAddresses> {
    services
        .into_iter()
        .filter_map(|svc| {
            let spec = svc.spec.as_ref()?;
            if spec.type_.as_deref() != Some("LoadBalancer") {
                return None;
            }
            let group = svc.annotations().get(ALLOCATED_FROM)?.clone();
            let addresses: Vec<IpAddr> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect();
            if addresses.is_empty() {
                return None;
            }
            let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
            Some(ServiceAddresses {
                ready_endpoint_nodes: ready.get(&key).cloned().unwrap_or_default(),
                key,
                group,
                addresses,
                local_traffic_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeCondition, NodeStatus, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use kube::api::ObjectMeta;

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
        let got = services(svcs.iter(), &ready);
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
