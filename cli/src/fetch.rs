//! The only code that talks to the Kubernetes API: lists what the commands explain. Reads only.

use std::net::IpAddr;

use ferrolb_api::{LBNodeAgent, ServiceGroup};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, Config};

use crate::cluster::{Cluster, Group, NodeInfo, ServiceInfo, agent_entry, read_leases};
use crate::version::{COMPONENT_LABEL, Component, ServerVersion, components};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig found (set --kubeconfig or KUBECONFIG): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("Service {namespace}/{name} not found")]
    NoService { namespace: String, name: String },
    #[error(
        "no Service shows {0} in status.loadBalancer (is it in a ServiceGroup's pool? see `kubectl ferrolb pools`)"
    )]
    NoServiceWithAddress(IpAddr),
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn api_err(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Api {
        what: what.to_string(),
        source,
    }
}

/// A client from `kubeconfig` (a path) or the usual places (KUBECONFIG, ~/.kube/config,
/// in-cluster), with `context` when given.
pub async fn client(kubeconfig: Option<&str>, context: Option<&str>) -> Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                path: path.to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.to_string(),
                    source,
                })?
        }
        None if context.is_some() => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: "(default)".into(),
                    source,
                })?
        }
        None => Config::infer().await?,
    };
    Client::try_from(config).map_err(api_err("building the client"))
}

/// ServiceGroups, Nodes, per-node Leases (in `namespace`, where ferrolb is installed) and
/// LBNodeAgents. A per-node Lease that cannot be believed is reported on stderr and ignored.
pub async fn cluster(client: &Client, namespace: &str) -> Result<Cluster> {
    let lp = ListParams::default();
    let groups = Api::<ServiceGroup>::all(client.clone())
        .list(&lp)
        .await
        .map_err(api_err("listing ServiceGroups"))?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&lp)
        .await
        .map_err(api_err("listing Nodes"))?;
    // Untyped: one Lease whose renewTime this side cannot parse must not fail the list.
    let what = format!("listing per-node Leases in {namespace}");
    let leases = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<Lease>(&()),
    )
    .list(&lp)
    .await
    .map_err(api_err(&what))?;
    let agents = Api::<LBNodeAgent>::all(client.clone())
        .list(&lp)
        .await
        .map_err(api_err("listing LBNodeAgents"))?;
    let now = Timestamp::now();
    let (leases, bad_leases) = read_leases(&leases.items, now);
    for why in bad_leases.values() {
        eprintln!("warning: {why}");
    }
    Ok(Cluster {
        now,
        groups: groups
            .iter()
            .map(Group::from_object)
            .map(|g| (g.name.clone(), g))
            .collect(),
        nodes: nodes
            .iter()
            .map(NodeInfo::from_object)
            .map(|n| (n.name.clone(), n))
            .collect(),
        leases,
        bad_leases,
        agents: agents.iter().map(agent_entry).collect(),
    })
}

/// Every Service, in any namespace, whose `status.loadBalancer` shows `address` (several when
/// they share it), with the nodes of their ready endpoints; sorted by namespace and name.
pub async fn services_with_address(client: &Client, address: IpAddr) -> Result<Vec<ServiceInfo>> {
    // Its addresses, as `where` reads them, without its endpoints yet.
    let out = services_where(client, |s| s.addresses.contains(&address).then_some(true)).await?;
    if out.is_empty() {
        return Err(Error::NoServiceWithAddress(address));
    }
    Ok(out)
}

/// Every Service in any namespace that `keep` keeps (read without its endpoints; `Some(true)`:
/// keep it with the nodes of its ready endpoints), sorted by namespace and name.
async fn services_where(
    client: &Client,
    keep: impl Fn(&ServiceInfo) -> Option<bool>,
) -> Result<Vec<ServiceInfo>> {
    let all = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("listing Services"))?;
    let mut out = Vec::new();
    for svc in &all.items {
        let info = ServiceInfo::from_objects(svc, &[]);
        match keep(&info) {
            Some(true) => out.push(with_endpoints(client, svc).await?),
            Some(false) => out.push(info),
            None => {}
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// A Service and the nodes of its ready endpoints.
pub async fn service(client: &Client, namespace: &str, name: &str) -> Result<ServiceInfo> {
    let svc = Api::<Service>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(api_err("reading the Service"))?
        .ok_or_else(|| Error::NoService {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    with_endpoints(client, &svc).await
}

/// `svc` with the nodes of its ready endpoints (from its EndpointSlices).
async fn with_endpoints(client: &Client, svc: &Service) -> Result<ServiceInfo> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
        .await
        .map_err(api_err("listing EndpointSlices"))?;
    let mut info = ServiceInfo::from_objects(svc, &slices.items);
    // A namespaceSelector reads the namespace's labels; without the right to read them the
    // verdict says it cannot tell.
    info.namespace_labels = Api::<Namespace>::all(client.clone())
        .get_metadata_opt(namespace)
        .await
        .ok()
        .flatten()
        .map(|n| n.metadata.labels.unwrap_or_default());
    Ok(info)
}

/// The API server's version.
pub async fn server_version(client: &Client) -> Result<ServerVersion> {
    let info = client
        .apiserver_version()
        .await
        .map_err(api_err("reading the API server's version"))?;
    Ok(ServerVersion {
        version: info.git_version,
        platform: info.platform,
    })
}

/// The allocator Deployment and the agent DaemonSet in `namespace`, found by the chart's
/// component label (their names follow `fullnameOverride`).
pub async fn installed_components(client: &Client, namespace: &str) -> Result<Vec<Component>> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{COMPONENT_LABEL}=allocator")))
        .await
        .map_err(api_err(&format!("listing Deployments in {namespace}")))?;
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{COMPONENT_LABEL}=agent")))
        .await
        .map_err(api_err(&format!("listing DaemonSets in {namespace}")))?;
    Ok(components(&deployments.items, &daemonsets.items))
}

/// Every Service of type LoadBalancer ferrolb handles (class `ferrolb.io/ferrolb`, or none),
/// with the nodes of their ready endpoints when `externalTrafficPolicy` is Local (the only
/// case where they change where an address goes); sorted by namespace and name.
pub async fn our_services(client: &Client) -> Result<Vec<ServiceInfo>> {
    services_where(client, |s| s.is_ours().then_some(s.etp_local)).await
}

/// The newest `AllocationFailed` Event message per Service (`namespace/name`), any namespace.
pub async fn allocation_failures(
    client: &Client,
) -> Result<std::collections::BTreeMap<String, String>> {
    use ferrolb_api::contracts::reason::ALLOCATION_FAILED;
    use k8s_openapi::api::core::v1::Event;
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields(&format!("reason={ALLOCATION_FAILED}")))
        .await
        .map_err(api_err("listing AllocationFailed Events"))?;
    let mut newest: std::collections::BTreeMap<String, (Option<Timestamp>, String)> =
        Default::default();
    for e in &events.items {
        if e.involved_object.kind.as_deref() != Some("Service") {
            continue;
        }
        let key = format!(
            "{}/{}",
            e.involved_object.namespace.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default()
        );
        let when = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0));
        let message = e.message.clone().unwrap_or_default();
        match newest.get(&key) {
            Some((w, _)) if *w > when => {}
            _ => {
                newest.insert(key, (when, message));
            }
        }
    }
    Ok(newest.into_iter().map(|(k, (_, m))| (k, m)).collect())
}
