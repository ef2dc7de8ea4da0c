//! The reflectors (kube runtime stores) the agent reads, and the cluster half of a snapshot.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use ferrolb_api::contracts::node_lease_name;
use ferrolb_api::watch_backoff::WatchBackoff;
use ferrolb_api::{LBNodeAgent, ServiceGroup};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Lookup, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::observe::{self, StoredService};
use crate::snapshot::{NodeFacts, ServiceAddresses};

/// Every store the agent reads; each change of one wakes the reconcile loop.
pub struct Stores {
    services: Store<StoredService>,
    groups: Store<ServiceGroup>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    agents: Store<LBNodeAgent>,
    /// The per-node Leases; the election reads them.
    pub leases: Store<Lease>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stores {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// The cluster's half of a snapshot.
pub struct Cluster {
    pub node: NodeFacts,
    pub agents: Vec<LBNodeAgent>,
    pub groups: Vec<Arc<ServiceGroup>>,
    pub services: Vec<ServiceAddresses>,
}

impl Stores {
    /// Starts one reflector per kind: Nodes (only this one), Services and EndpointSlices (of
    /// `services_in` only, when set), ServiceGroups, LBNodeAgents, and the Leases of
    /// `namespace` (a renewal of our own Lease wakes nobody).
    pub fn start(
        client: &Client,
        node: &str,
        namespace: &str,
        services_in: Option<&str>,
        wake: Arc<Notify>,
    ) -> Self {
        let mut tasks = Vec::new();
        let own_lease = node_lease_name(node);
        let all = watcher::Config::default();
        let mut reflect = |task| tasks.push(task);
        let (nodes, t) = reflector_for(
            Api::all(client.clone()),
            all.clone().fields(&format!("metadata.name={node}")),
            wake.clone(),
            None,
            stripped(observe::strip_node),
        );
        reflect(t);
        let (services, t) = reflector_for(
            scoped(client, services_in),
            all.clone(),
            wake.clone(),
            None,
            <StoredService as From<Service>>::from,
        );
        reflect(t);
        let (slices, t) = reflector_for(
            scoped(client, services_in),
            all.clone(),
            wake.clone(),
            None,
            stripped(observe::strip_endpoint_slice),
        );
        reflect(t);
        let (groups, t) = reflector_for(
            Api::all(client.clone()),
            all.clone(),
            wake.clone(),
            None,
            without_managed_fields,
        );
        reflect(t);
        let (agents, t) = reflector_for(
            Api::all(client.clone()),
            all.clone(),
            wake.clone(),
            None,
            without_managed_fields,
        );
        reflect(t);
        let (leases, t) = reflector_for(
            Api::namespaced(client.clone(), namespace),
            all,
            wake,
            Some(own_lease),
            without_managed_fields,
        );
        reflect(t);
        Self {
            services,
            groups,
            slices,
            nodes,
            agents,
            leases,
            tasks,
        }
    }

    /// Waits until every store has its first full list.
    pub async fn synced(&self) -> Result<(), reflector::store::WriterDropped> {
        self.nodes.wait_until_ready().await?;
        debug!("Nodes synced");
        self.services.wait_until_ready().await?;
        debug!("Services synced");
        self.slices.wait_until_ready().await?;
        debug!("EndpointSlices synced");
        self.groups.wait_until_ready().await?;
        debug!("ServiceGroups synced");
        self.agents.wait_until_ready().await?;
        debug!("LBNodeAgents synced");
        self.leases.wait_until_ready().await
    }

    /// What the stores say now about `node`. A Node that does not exist (yet) is not ready.
    pub fn cluster(&self, node: &str) -> Cluster {
        let facts = self
            .nodes
            .get(&ObjectRef::new(node))
            .map(|n| observe::node_facts(&n))
            .unwrap_or_else(|| NodeFacts {
                name: node.to_string(),
                ..Default::default()
            });
        let slices = self.slices.state();
        let ready = observe::ready_endpoint_nodes(slices.iter().map(AsRef::as_ref));
        let services = self.services.state();
        Cluster {
            node: facts,
            agents: self.agents.state().iter().map(|a| (**a).clone()).collect(),
            groups: self.groups.state(),
            services: observe::services(services.iter().map(AsRef::as_ref), &ready),
        }
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Managed fields: the agent never reads them and they are most of a small object.
fn without_managed_fields<K: ResourceExt>(mut o: K) -> K {
    o.managed_fields_mut().clear();
    o
}

/// `strip`, as a conversion into the stored object.
fn stripped<K: 'static>(strip: fn(&mut K)) -> impl Fn(K) -> K + Send + 'static {
    move |mut o| {
        strip(&mut o);
        o
    }
}

/// A reflector of `S` objects, each stored as `keep` makes it (what the agent never reads
/// dropped before the store keeps it: at least the managed fields), whose every event (but
/// those about the object named `quiet`) wakes `wake`.
fn reflector_for<S, K>(
    api: Api<S>,
    config: watcher::Config,
    wake: Arc<Notify>,
    quiet: Option<String>,
    keep: impl Fn(S) -> K + Send + 'static,
) -> (Store<K>, JoinHandle<()>)
where
    S: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    S::DynamicType: Default + Send,
    K: Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, mut writer) = reflector::store::<K>();
    let kind = S::kind(&S::DynamicType::default()).to_string();
    let stream = watcher(api, config).backoff(WatchBackoff::default());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    warn!(kind, error = %e, "watch failed; retrying with back-off");
                    continue;
                }
            };
            let event = match event {
                watcher::Event::Apply(o) => watcher::Event::Apply(keep(o)),
                watcher::Event::Delete(o) => watcher::Event::Delete(keep(o)),
                watcher::Event::InitApply(o) => watcher::Event::InitApply(keep(o)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
            };
            writer.apply_watcher_event(&event);
            match &event {
                watcher::Event::Apply(o) | watcher::Event::Delete(o)
                    if quiet.is_some() && o.name().as_deref() == quiet.as_deref() => {}
                _ => wake.notify_one(),
            }
        }
    });
    (reader, task)
}
