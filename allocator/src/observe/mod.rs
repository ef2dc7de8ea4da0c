//! What the allocator watches: kube-runtime reflectors on Services, ServiceGroups, Nodes,
//! Namespaces (their labels), EndpointSlices and the per-node Leases, turned into one plain
//! [`Snapshot`].

mod leases;
mod service;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::NODE_LEASE_PREFIX;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Notify;

pub use service::{
    ObjKey, Policy, Requested, SvcView, WRITTEN_ANNOTATIONS, parse_requested, resolve,
};
pub use views::{Endpoints, GroupView, NodeLease, Snapshot, add_slice};

pub use ferrolb_api::watch_backoff::WatchBackoff;
use leases::{Heard, Sightings};

/// The caches, plus the objects our own writes returned that the caches have not seen yet
/// (so that a pass right after a write does not decide on stale status).
#[derive(Clone)]
pub struct Observer {
    services: Store<Service>,
    groups: Store<ServiceGroup>,
    leases: Store<DynamicObject>,
    /// When each per-node Lease's renewal was seen: liveness is judged on this clock.
    sightings: Arc<Mutex<Sightings>>,
    nodes: Store<PartialObjectMeta<Node>>,
    /// Metadata only: a ServiceGroup's namespaceSelector reads the labels.
    namespaces: Store<PartialObjectMeta<Namespace>>,
    slices: Store<EndpointSlice>,
    written: Arc<Mutex<Written>>,
    /// Per Service uid, its view and the resourceVersion it was made from: a pass re-reads
    /// only the Services that changed.
    views: Arc<Mutex<HashMap<String, (String, Arc<SvcView>)>>>,
    changed: Arc<Notify>,
}

/// What one allocator serves: every Service and ServiceGroup unless narrowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only Services (and EndpointSlices) of this namespace.
    pub namespace: Option<String>,
    /// Only ServiceGroups matching this label selector.
    pub group_selector: Option<String>,
}

#[derive(Default)]
struct Written {
    services: HashMap<String, Arc<Service>>,
    groups: HashMap<String, Arc<ServiceGroup>>,
}

/// Runs a reflector and pokes `changed` on every event that matters.
fn drive<K, S>(stream: S, changed: Arc<Notify>, matters: fn(&K) -> bool, what: &'static str)
where
    K: Resource + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) if !matters(&o) => {}
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(watch = what, error = %e, "watch failed; retrying"),
            }
        }
    });
}

/// Drops what the decisions never read and that can be most of a cached object: managed fields
/// and kubectl's copy of the last applied manifest (10,000 Services are cached).
fn slim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn any<K>(_: &K) -> bool {
    true
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Runs the per-node Lease reflector: every event is a sighting, timed on this clock as it
/// arrives (not at the next pass, which a follower never runs), and pokes `changed`.
fn drive_leases<S>(stream: S, sightings: Arc<Mutex<Sightings>>, changed: Arc<Notify>)
where
    S: Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let node_lease = |o: &DynamicObject| o.name_any().starts_with(NODE_LEASE_PREFIX);
            // While the watch is broken no renewal can be seen: that time is not held against
            // the Leases (an API-server outage would otherwise kill every node at once).
            let heard = match &ev {
                Ok(watcher::Event::Init) => Heard::ListStarts,
                Ok(_) => Heard::Answered,
                Err(_) => Heard::Failed,
            };
            lock(&sightings).heard(heard, Timestamp::now());
            match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if node_lease(&o) => {
                    lock(&sightings).observe(&o, Timestamp::now());
                    changed.notify_one();
                }
                Ok(watcher::Event::Delete(o)) if node_lease(&o) => {
                    lock(&sightings).forget(&o);
                    changed.notify_one();
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_))
                | Ok(watcher::Event::Delete(_)) => {}
                Ok(watcher::Event::Init | watcher::Event::InitDone) => changed.notify_one(),
                Err(e) => tracing::warn!(watch = "leases", error = %e, "watch failed; retrying"),
            }
        }
    });
}

impl Observer {
    /// Starts every watch. Nothing is decided before [`Observer::wait_synced`] returns.
    /// `scope` narrows what is served (tests, or one allocator per tenant); the per-node Leases
    /// are read from `lease_namespace` (the install namespace).
    pub fn start(client: &Client, scope: &Scope, lease_namespace: &str) -> Self {
        let changed = Arc::new(Notify::new());
        let cfg = watcher::Config::default;
        let scoped = |c: &Client| -> Api<Service> {
            match &scope.namespace {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        };
        let (services, w) = reflector::store();
        let api = scoped(client);
        drive(
            reflector::reflector(
                w,
                watcher(api, cfg())
                    .backoff(WatchBackoff::default())
                    .modify(|s: &mut Service| slim(&mut s.metadata)),
            ),
            changed.clone(),
            any,
            "services",
        );
        let (groups, w) = reflector::store();
        let api: Api<ServiceGroup> = Api::all(client.clone());
        let group_cfg = match &scope.group_selector {
            Some(sel) => cfg().labels(sel),
            None => cfg(),
        };
        drive(
            reflector::reflector(w, watcher(api, group_cfg).backoff(WatchBackoff::default())),
            changed.clone(),
            any,
            "servicegroups",
        );
        // Untyped: a Lease whose renewTime the API server accepts but k8s-openapi cannot
        // parse would otherwise fail every list and watch of them all.
        let ar = ApiResource::erase::<Lease>(&());
        let w = reflector::store::Writer::new(ar.clone());
        let leases = w.as_reader();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), lease_namespace, &ar);
        let sightings = Arc::new(Mutex::new(Sightings::default()));
        drive_leases(
            reflector::reflector(
                w,
                watcher(api, cfg())
                    .backoff(WatchBackoff::default())
                    .modify(|o: &mut DynamicObject| slim(&mut o.metadata)),
            ),
            sightings.clone(),
            changed.clone(),
        );
        let (nodes, w) = reflector::store();
        let api: Api<PartialObjectMeta<Node>> = Api::all(client.clone());
        drive(
            reflector::reflector(w, watcher(api, cfg()).backoff(WatchBackoff::default())),
            changed.clone(),
            any,
            "nodes",
        );
        // Only the served namespace when narrowed to one (a field selector on its name).
        let (namespaces, w) = reflector::store();
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let ns_cfg = match &scope.namespace {
            Some(ns) => cfg().fields(&format!("metadata.name={ns}")),
            None => cfg(),
        };
        drive(
            reflector::reflector(
                w,
                watcher(api, ns_cfg)
                    .backoff(WatchBackoff::default())
                    .modify(|n: &mut PartialObjectMeta<Namespace>| slim(&mut n.metadata)),
            ),
            changed.clone(),
            any,
            "namespaces",
        );
        let (slices, w) = reflector::store();
        let api: Api<EndpointSlice> = match &scope.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let slice_cfg = cfg().labels("kubernetes.io/service-name");
        drive(
            reflector::reflector(
                w,
                watcher(api, slice_cfg)
                    .backoff(WatchBackoff::default())
                    .modify(|s: &mut EndpointSlice| slim(&mut s.metadata)),
            ),
            changed.clone(),
            any,
            "endpointslices",
        );
        Observer {
            services,
            groups,
            leases,
            sightings,
            nodes,
            namespaces,
            slices,
            written: Arc::default(),
            views: Arc::default(),
            changed,
        }
    }

    /// Waits until every cache has listed its objects once (the first phase of the start).
    pub async fn wait_synced(&self) -> crate::Result<()> {
        let err = |w: &str| crate::Error::WatchEnded(w.to_string());
        self.services
            .wait_until_ready()
            .await
            .map_err(|_| err("services"))?;
        self.groups
            .wait_until_ready()
            .await
            .map_err(|_| err("servicegroups"))?;
        self.leases
            .wait_until_ready()
            .await
            .map_err(|_| err("leases"))?;
        self.nodes
            .wait_until_ready()
            .await
            .map_err(|_| err("nodes"))?;
        self.namespaces
            .wait_until_ready()
            .await
            .map_err(|_| err("namespaces"))?;
        self.slices
            .wait_until_ready()
            .await
            .map_err(|_| err("endpointslices"))?;
        Ok(())
    }

    /// Resolves when something watched changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Remembers what a write of ours returned, until the cache catches up.
    pub fn wrote_service(&self, mut svc: Service) {
        slim(&mut svc.metadata);
        if let (Some(uid), Ok(mut w)) = (svc.uid(), self.written.lock()) {
            w.services.insert(uid, Arc::new(svc));
        }
    }

    pub fn wrote_group(&self, g: ServiceGroup) {
        if let (Some(uid), Ok(mut w)) = (g.uid(), self.written.lock()) {
            w.groups.insert(uid, Arc::new(g));
        }
    }

    /// Everything observed, now.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let mut written = match self.written.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let services = newest(self.services.state(), &mut written.services);
        let groups = newest(self.groups.state(), &mut written.groups);
        drop(written);
        let leases = lock(&self.sightings).leases(&self.leases.state(), now);
        let mut endpoints = Endpoints::new();
        for s in self.slices.state() {
            add_slice(&mut endpoints, &s);
        }
        Snapshot {
            services: self.views_of(&services),
            groups: groups.iter().map(|g| GroupView::from_group(g)).collect(),
            leases,
            nodes: self.nodes.state().iter().map(|n| n.name_any()).collect(),
            namespaces: self
                .namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone()))
                .collect(),
            endpoints,
            now,
        }
    }

    /// The views of `services`, made anew only for those whose resourceVersion changed; views
    /// of Services no longer there are forgotten.
    fn views_of(&self, services: &[Arc<Service>]) -> Vec<Arc<SvcView>> {
        let mut cache = match self.views.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let uid = s.metadata.uid.as_deref().unwrap_or_default();
            let rv = s.metadata.resource_version.as_deref().unwrap_or_default();
            let view = match cache.get(uid) {
                Some((v, view)) if v == rv && !rv.is_empty() => view.clone(),
                _ => {
                    let view = Arc::new(SvcView::from_service(s));
                    cache.insert(uid.to_string(), (rv.to_string(), view.clone()));
                    view
                }
            };
            out.push(view);
        }
        if cache.len() > out.len() {
            let live: std::collections::HashSet<&str> =
                out.iter().map(|v| v.uid.as_str()).collect();
            cache.retain(|uid, _| live.contains(uid.as_str()));
        }
        out
    }
}

/// The cached objects, each replaced by what our own write returned when that is newer. Entries
/// the cache has caught up with, or whose object is gone, are dropped.
fn newest<K: Resource>(cached: Vec<Arc<K>>, written: &mut HashMap<String, Arc<K>>) -> Vec<Arc<K>> {
    if written.is_empty() {
        return cached;
    }
    let rv = |k: &K| {
        k.meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut pending = HashMap::with_capacity(written.len());
    let out = cached
        .into_iter()
        .map(|c| {
            let uid = c.meta().uid.as_deref().unwrap_or_default();
            match written.remove_entry(uid) {
                Some((uid, w)) if rv(&w) > rv(&c) => {
                    pending.insert(uid, w.clone());
                    w
                }
                _ => c,
            }
        })
        .collect();
    // What is left in `written` is caught up with or gone.
    *written = pending;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(uid: &str, rv: &str) -> Arc<Service> {
        let mut s = Service::default();
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    }

    fn rvs(list: &[Arc<Service>]) -> Vec<String> {
        list.iter()
            .map(|s| s.metadata.resource_version.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn newest_prefers_our_newer_writes_and_forgets_those_caught_up_or_gone() {
        let mut written: HashMap<String, Arc<Service>> = [
            ("a".to_string(), svc("a", "12")),
            ("b".to_string(), svc("b", "20")),
            ("gone".to_string(), svc("gone", "30")),
        ]
        .into();
        let cached = vec![svc("a", "10"), svc("b", "21"), svc("c", "5")];
        let out = newest(cached, &mut written);
        assert_eq!(rvs(&out), ["12", "21", "5"]);
        assert_eq!(
            written.keys().collect::<Vec<_>>(),
            ["a"],
            "b caught up, gone is gone"
        );
        let out = newest(vec![svc("a", "12")], &mut written);
        assert_eq!(rvs(&out), ["12"]);
        assert!(written.is_empty());
    }
}
