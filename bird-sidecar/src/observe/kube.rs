//! Reflectors on ServiceGroups, this node's Node and the LBNodeAgents, turned into plain facts;
//! every change wakes the reconcile loop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::election::agent_for_node;
use ferrolb_api::watch_backoff::WatchBackoff;
use ferrolb_api::{LBNodeAgent, ServiceGroup};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::Notify;

use crate::decide::NodeFacts;

/// The cluster as the sidecar sees it.
#[derive(Clone)]
pub struct ClusterView {
    node: String,
    groups: Store<ServiceGroup>,
    nodes: Store<Node>,
    agents: Store<LBNodeAgent>,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
}

/// What the LBNodeAgent that applies to this node says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    pub drain: Option<Duration>,
    pub virtual_interface: String,
}

impl ClusterView {
    /// Starts the reflectors and returns once every cache has synced (nothing is rendered from
    /// a half-filled cache).
    pub async fn start(client: Client, node: &str) -> ClusterView {
        let changed = Arc::new(Notify::new());
        let groups = reflect(
            Api::<ServiceGroup>::all(client.clone()),
            watcher::Config::default(),
            &changed,
        );
        let nodes = reflect(
            Api::<Node>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={node}")),
            &changed,
        );
        let agents = reflect(
            Api::<LBNodeAgent>::all(client),
            watcher::Config::default(),
            &changed,
        );
        let synced = [
            ("ServiceGroups", groups.wait_until_ready().await.is_ok()),
            ("Node", nodes.wait_until_ready().await.is_ok()),
            ("LBNodeAgents", agents.wait_until_ready().await.is_ok()),
        ];
        for (what, ok) in synced {
            if !ok {
                tracing::error!("the {what} reflector stopped before syncing");
            }
        }
        tracing::info!("caches synced");
        ClusterView {
            node: node.to_string(),
            groups,
            nodes,
            agents,
            changed,
        }
    }

    pub fn groups(&self) -> Vec<ServiceGroup> {
        self.groups.state().iter().map(|g| (**g).clone()).collect()
    }

    /// This node's facts; `None` while its Node object does not exist.
    pub fn node_facts(&self) -> Option<NodeFacts> {
        self.nodes
            .state()
            .iter()
            .find(|n| n.meta().name.as_deref() == Some(&self.node))
            .map(|n| node_facts(n))
    }

    /// A reference to this node's Node (with its uid), for Events.
    pub fn node_reference(&self) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
        self.nodes
            .state()
            .iter()
            .find(|n| n.meta().name.as_deref() == Some(&self.node))
            .map(|n| n.object_ref(&()))
    }

    pub fn agent_settings(&self) -> Option<AgentSettings> {
        let nodes = self.nodes.state();
        let node = nodes
            .iter()
            .find(|n| n.meta().name.as_deref() == Some(&self.node))?;
        let agents: Vec<LBNodeAgent> = self.agents.state().iter().map(|a| (**a).clone()).collect();
        agent_settings(node, &agents)
    }
}

fn reflect<K>(api: Api<K>, config: watcher::Config, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let stream = watcher(api, config)
        .backoff(WatchBackoff::default())
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!("watch error (retrying): {e}"),
            }
        }
    });
    reader
}

/// A Node's name and InternalIP addresses (ExternalIPs when it has no InternalIP).
pub fn node_facts(node: &Node) -> NodeFacts {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| a.as_slice())
        .unwrap_or_default();
    let of = |kind: &str| -> Vec<IpAddr> {
        addresses
            .iter()
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.parse().ok())
            .collect()
    };
    let internal = of("InternalIP");
    NodeFacts {
        name: node.meta().name.clone().unwrap_or_default(),
        addresses: if internal.is_empty() {
            of("ExternalIP")
        } else {
            internal
        },
    }
}

/// The drain and virtual interface of the LBNodeAgent that applies to `node`.
pub fn agent_settings(node: &Node, agents: &[LBNodeAgent]) -> Option<AgentSettings> {
    let selectors: Vec<(&str, _)> = agents
        .iter()
        .filter_map(|a| {
            a.meta()
                .name
                .as_deref()
                .map(|n| (n, a.spec.node_selector.as_ref()))
        })
        .collect();
    let labels = node.meta().labels.clone().unwrap_or_default();
    let (name, _) = agent_for_node(&selectors, &labels)?;
    let agent = agents
        .iter()
        .find(|a| a.meta().name.as_deref() == Some(name))?;
    Some(AgentSettings {
        drain: bounded_drain(&agent.spec.drain),
        virtual_interface: agent.spec.virtual_interface.clone(),
    })
}

/// `spec.drain` within the bounds the CRD and the agent use; `None` (the sidecar's own
/// `--drain` applies) when it does not parse or is out of them: a value the API server took
/// before its rule existed must not hold a node's shutdown for centuries or overflow a clock.
fn bounded_drain(text: &str) -> Option<Duration> {
    let (min, max) = ferrolb_api::lbnodeagent::bounds::DRAIN;
    ferrolb_api::duration::parse_within(text, min, max).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::LBNodeAgentSpec;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn node(addresses: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("worker-1".into());
        n.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|(t, a)| NodeAddress {
                        type_: t.to_string(),
                        address: a.to_string(),
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        });
        n
    }

    #[test]
    fn node_facts_take_internal_ips() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
        let cases: &[(&str, Vec<(&str, &str)>, Vec<IpAddr>)] = &[
            (
                "dual stack internal",
                vec![
                    ("Hostname", "worker-1"),
                    ("InternalIP", "192.0.2.10"),
                    ("InternalIP", "2001:db8:1::10"),
                ],
                vec![ip("192.0.2.10"), ip("2001:db8:1::10")],
            ),
            (
                "external only",
                vec![("ExternalIP", "198.51.100.7")],
                vec![ip("198.51.100.7")],
            ),
            ("none", vec![], vec![]),
        ];
        for (name, addrs, want) in cases {
            assert_eq!(&node_facts(&node(addrs)).addresses, want, "{name}");
        }
    }

    #[test]
    fn agent_settings_come_from_the_agent_for_the_node() {
        let spec = LBNodeAgentSpec {
            drain: "8s".into(),
            ..LBNodeAgentSpec::default()
        };
        let default = LBNodeAgent::new("default", spec);
        let got = agent_settings(&node(&[]), &[default]).expect("default applies");
        assert_eq!(got.drain, Some(Duration::from_secs(8)));
        assert_eq!(got.virtual_interface, "kube-lb0");
        assert_eq!(agent_settings(&node(&[]), &[]), None);
    }

    /// Issue 16 item 9: the sidecar read `spec.drain` unbounded, so a drain the API server
    /// took before its CEL rule (`18446744073709551615s`) made the drain wait forever.
    #[test]
    fn a_drain_out_of_its_bounds_leaves_the_sidecars_own() {
        let cases = [
            ("within", "1m30s", Some(Duration::from_secs(90))),
            ("the most allowed", "5m", Some(Duration::from_secs(300))),
            ("zero", "0ms", Some(Duration::ZERO)),
            ("past the most allowed", "5m1s", None),
            ("u64::MAX seconds", "18446744073709551615s", None),
            ("overflowing minutes", "18446744073709551615m", None),
            ("not a duration", "soon", None),
        ];
        for (name, drain, want) in cases {
            let spec = LBNodeAgentSpec {
                drain: drain.into(),
                ..LBNodeAgentSpec::default()
            };
            let agent = LBNodeAgent::new("default", spec);
            let got = agent_settings(&node(&[]), &[agent]).expect("default applies");
            assert_eq!(got.drain, want, "{name}");
        }
    }
}
