//! What a kubelet and the EndpointSlice controller would write, for a control plane that has
//! neither: Nodes with Ready status and addresses, EndpointSlices with ready endpoints.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const MANAGER: &str = "ferrolb-e2e-kubelet";

/// Creates (or updates) a Node with InternalIP addresses and a Ready condition.
pub async fn create_node(
    client: &Client,
    name: &str,
    addresses: &[IpAddr],
    labels: &[(&str, &str)],
    ready: bool,
) -> anyhow::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let pp = PatchParams::apply(MANAGER).force();
    api.patch(name, &pp, &Patch::Apply(&with_kind(&node)?))
        .await?;
    node.status = Some(NodeStatus {
        addresses: Some(
            addresses
                .iter()
                .map(|a| NodeAddress {
                    type_: "InternalIP".into(),
                    address: a.to_string(),
                })
                .chain(std::iter::once(NodeAddress {
                    type_: "Hostname".into(),
                    address: name.to_string(),
                }))
                .collect(),
        ),
        conditions: Some(vec![ready_condition(ready)]),
        ..Default::default()
    });
    // A merge patch: server-side apply cannot express two InternalIPs (the schema keys
    // `status.addresses` by type, yet dual-stack nodes list one per family).
    let patch = json!({ "status": node.status });
    Ok(api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Sets a node's Ready condition.
pub async fn set_node_ready(client: &Client, name: &str, ready: bool) -> anyhow::Result<()> {
    set_node_condition(client, name, ready_condition(ready)).await
}

/// Sets (adds or replaces) one condition of a node, e.g. `NetworkUnavailable`.
pub async fn set_node_condition(
    client: &Client,
    name: &str,
    condition: NodeCondition,
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node = api.get(name).await?;
    let mut conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
    let patch = json!({ "status": { "conditions": conditions } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A node condition of `type_` with status True/False, stamped now.
pub fn condition(type_: &str, status: bool) -> NodeCondition {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    NodeCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
        reason: Some("FerrolbE2E".into()),
        message: Some("written by the ferrolb test harness".into()),
    }
}

fn ready_condition(ready: bool) -> NodeCondition {
    condition("Ready", ready)
}

/// An endpoint of a Service: which node it runs on, its address, whether it is ready.
#[derive(Clone, Debug)]
pub struct Backend {
    pub node: String,
    pub address: IpAddr,
    pub ready: bool,
}

impl Backend {
    pub fn ready(node: &str, address: &str) -> Self {
        Self {
            node: node.to_string(),
            address: address.parse().expect("a test endpoint address"),
            ready: true,
        }
    }
}

/// Writes the EndpointSlice(s) of a Service (one per address family) with these backends and
/// one TCP port; replaces what was there.
pub async fn write_endpoints(
    client: &Client,
    namespace: &str,
    service: &str,
    port: i32,
    backends: &[Backend],
) -> anyhow::Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        let name = format!("{service}-{}", family.to_lowercase());
        let endpoints: Vec<Endpoint> = backends
            .iter()
            .filter(|b| b.address.is_ipv6() == v6)
            .map(|b| Endpoint {
                addresses: vec![b.address.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(b.ready),
                    serving: Some(b.ready),
                    terminating: Some(false),
                }),
                node_name: Some(b.node.clone()),
                ..Default::default()
            })
            .collect();
        if endpoints.is_empty() {
            let _ = api.delete(&name, &DeleteParams::default()).await;
            continue;
        }
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(
                    [
                        (
                            "kubernetes.io/service-name".to_string(),
                            service.to_string(),
                        ),
                        (
                            "endpointslice.kubernetes.io/managed-by".to_string(),
                            MANAGER.to_string(),
                        ),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            address_type: family.to_string(),
            endpoints: Some(endpoints),
            ports: Some(vec![EndpointPort {
                port: Some(port),
                protocol: Some("TCP".into()),
                name: Some(String::new()),
                ..Default::default()
            }]),
        };
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&with_kind(&slice)?),
        )
        .await?;
    }
    Ok(())
}

/// Server-side apply needs apiVersion and kind in the body.
fn with_kind<K>(obj: &K) -> anyhow::Result<serde_json::Value>
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    let mut v = serde_json::to_value(obj)?;
    v["apiVersion"] = K::api_version(&()).into();
    v["kind"] = K::kind(&()).into();
    Ok(v)
}
