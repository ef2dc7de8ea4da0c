//! The only code that writes: server-side apply of Service status and annotations and of
//! ServiceGroup status and finalizer (field manager `ferrolb-allocator`), and Events.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::{FIELD_MANAGER_ALLOCATOR, FINALIZER_IN_USE, reason};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use tokio::sync::watch;

use events::Published;

use crate::decide::{Change, Note, Plan, Rounds, SvcPlan, diff, group_news, rounds};
use crate::leader::Term;
use crate::metrics::Metrics;
use crate::observe::{GroupView, Observer, Snapshot, SvcView};
use crate::{Error, Result};

mod events;
mod note;
mod retry;
mod told;

pub use note::{NOTE_MAX_BYTES, note};
pub use retry::Retries;
pub use told::{EVENT_PAGE, told_before, told_selector};

/// Writes plans, tells each standing problem once, and stops writing when leadership goes.
pub struct Applier {
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    leading: watch::Receiver<bool>,
    /// Until when this replica may write; checked before every write.
    term: Term,
    /// Per Service uid, the problems already told.
    told: Mutex<HashMap<String, BTreeSet<Note>>>,
    /// Per Service uid, Events whose publication failed transiently: retried when due.
    pending: Mutex<HashMap<String, Vec<Note>>>,
    /// Per Service uid, the back-off of its failed writes (and the plan that failed): one bad
    /// Service waits alone, the others are written in the same pass.
    writes: Mutex<Retries<String, SvcPlan>>,
    /// Per ServiceGroup name, the back-off of its failed writes.
    group_writes: Mutex<Retries<String>>,
    /// Per (Service uid, Event reason), the back-off of Events the API server did not take:
    /// logged on the first failure in a row, not on every pass.
    events: Mutex<Retries<(String, &'static str)>>,
}

/// Services written at once.
pub const WRITERS: usize = 64;

/// How one Service's writes went.
#[derive(Default)]
struct Outcome {
    /// Its status change (if any) was written.
    status_written: bool,
    /// Why one of its writes failed (it backs off).
    failed: Option<String>,
    /// Not tried in this pass (backing off, or waiting for a release): its back-off stays.
    held: bool,
    leader_lost: Option<Error>,
}

impl Outcome {
    /// Records a failed write; a permanent failure also becomes a problem to tell.
    fn failed(&mut self, e: Error) -> Option<Note> {
        if let Error::LeaderLost(_) = e {
            self.leader_lost = Some(e);
            return None;
        }
        let note = (!e.is_transient()).then(|| {
            Note::warning(
                reason::ALLOCATION_FAILED,
                format!(
                    "the allocator cannot write this Service: {e}; check its RBAC and the Service's validity"
                ),
            )
        });
        self.failed.get_or_insert(e.to_string());
        note
    }

    /// Not written because the release of an address it takes was not written.
    fn waiting(s: &SvcView, releaser: &SvcPlan) -> Outcome {
        tracing::info!(service = %s.key, waiting_for = %releaser.key, "waiting for a release before reusing its address");
        Outcome {
            held: true,
            ..Default::default()
        }
    }

    /// Not tried: its earlier writes failed and its back-off has not passed.
    fn backing_off() -> Outcome {
        Outcome {
            held: true,
            ..Default::default()
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER_ALLOCATOR).force()
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER_ALLOCATOR.into()),
        ..Default::default()
    }
}

impl Applier {
    pub fn new(
        client: Client,
        identity: &str,
        metrics: Arc<Metrics>,
        leading: watch::Receiver<bool>,
        term: Term,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER_ALLOCATOR.into(),
            instance: Some(identity.to_string()),
        };
        Applier {
            reporter,
            client,
            metrics,
            leading,
            term,
            told: Mutex::default(),
            pending: Mutex::default(),
            writes: Mutex::default(),
            group_writes: Mutex::default(),
            events: Mutex::default(),
        }
    }

    /// Makes the cluster match `plan`, as far as each object's back-off allows: a Service or
    /// ServiceGroup whose write failed waits out its own back-off (see [`Applier::next_retry`])
    /// while the others are written; permanent errors become Events. `Err` only when
    /// leadership was lost.
    ///
    /// Service writes run [`WRITERS`] at a time; each Service's own writes stay in order
    /// (status with annotations, then its Events). Releases of addresses reused in the same
    /// pass are written (and confirmed) first, see [`rounds`].
    pub async fn apply(&self, plan: &Plan, snap: &Snapshot, observer: &Observer) -> Result<()> {
        let now = Instant::now();
        let current = snap.services_by_uid();
        self.retry_pending(&current, now).await;
        let groups: HashMap<&str, &GroupView> =
            snap.groups.iter().map(|g| (g.name.as_str(), g)).collect();
        let mut group_changes: HashMap<&str, Vec<Change>> = plan
            .groups
            .iter()
            .filter_map(|p| {
                let g = groups.get(p.name.as_str())?;
                Some((p.name.as_str(), diff::group_changes(p, g, snap.now)))
            })
            .collect();
        // A group that comes into use gets its in-use finalizer before any Service shows one of
        // its addresses: deleted in between, it would not have waited for that Service.
        for (name, changes) in &mut group_changes {
            let Some(i) = changes
                .iter()
                .position(|c| matches!(c, Change::GroupFinalizer { present: true, .. }))
            else {
                continue;
            };
            match self.write_group(&changes[i]).await {
                Ok(g) => {
                    observer.wrote_group(g);
                    changes.remove(i);
                }
                Err(Error::LeaderLost(l)) => return Err(Error::LeaderLost(l)),
                // Written again with the group's other changes, with back-off.
                Err(e) => {
                    tracing::warn!(group = %name, error = %e, "cannot set the in-use finalizer before the Services' writes")
                }
            }
        }
        let Rounds { first, second } = rounds(plan, |uid| current.get(uid).copied());
        let mut released = vec![true; plan.services.len()];
        let outcomes: Vec<(usize, Outcome)> = stream::iter(first)
            .map(|(i, release_only)| {
                let p = &plan.services[i];
                let s = current[p.uid.as_str()];
                let due = self.write_due(p, now);
                async move {
                    let o = match release_only {
                        _ if !due => Outcome::backing_off(),
                        Some(kept) => self.release(&kept, s, observer, now).await,
                        None => self.service(p, s, observer, now).await,
                    };
                    (i, o)
                }
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        for (i, o) in outcomes {
            released[i] = o.status_written;
            self.settle(&plan.services[i], o, now)?;
        }
        let outcomes: Vec<(usize, Outcome)> = stream::iter(second)
            .map(|(i, waits)| {
                let p = &plan.services[i];
                let s = current[p.uid.as_str()];
                let blocked = waits.iter().find(|w| !released[**w]).copied();
                let due = self.write_due(p, now);
                async move {
                    let o = match blocked {
                        _ if !due => Outcome::backing_off(),
                        Some(w) => Outcome::waiting(s, &plan.services[w]),
                        None => self.service(p, s, observer, now).await,
                    };
                    (i, o)
                }
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        for (i, o) in outcomes {
            self.settle(&plan.services[i], o, now)?;
        }
        let live: HashSet<&str> = plan.services.iter().map(|p| p.uid.as_str()).collect();
        if let Ok(mut told) = self.told.lock() {
            told.retain(|uid, _| live.contains(uid.as_str()));
        }
        if let Ok(mut w) = self.writes.lock() {
            w.retain(|uid| live.contains(uid.as_str()));
        }
        if let Ok(mut e) = self.events.lock() {
            e.retain(|(uid, _)| live.contains(uid.as_str()));
        }
        if let Ok(mut w) = self.group_writes.lock() {
            w.retain(|name| groups.contains_key(name.as_str()));
        }
        self.metrics.groups(&plan.groups);
        self.metrics.announced(&plan.services);
        for p in &plan.groups {
            let Some(g) = groups.get(p.name.as_str()) else {
                continue;
            };
            let changes = group_changes.remove(p.name.as_str()).unwrap_or_default();
            let due = self
                .group_writes
                .lock()
                .map_or(true, |w| w.due(&p.name, &(), now));
            if changes.is_empty() || !due {
                continue;
            }
            let mut failed = None;
            for change in changes {
                match self.write_group(&change).await {
                    Ok(written) => {
                        if matches!(change, Change::GroupStatus { .. }) {
                            for (reason, message) in group_news(g.status.as_ref(), &p.status) {
                                self.group_event(g, &reason, &message).await;
                            }
                        }
                        observer.wrote_group(written)
                    }
                    Err(Error::LeaderLost(l)) => return Err(Error::LeaderLost(l)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Ok(mut w) = self.group_writes.lock() {
                match failed {
                    None => w.succeeded(&p.name),
                    Some(e) => {
                        let (delay, _) = w.failed(p.name.clone(), (), now);
                        tracing::warn!(group = %p.name, error = %e, ?delay, "cannot write the ServiceGroup; retrying it with back-off");
                    }
                }
            }
        }
        Ok(())
    }

    /// When the next object's back-off ends (the caller passes again then), if any is backing
    /// off.
    pub fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        let writes = self.writes.lock().ok().and_then(|w| w.next_after(now));
        let groups = self
            .group_writes
            .lock()
            .ok()
            .and_then(|w| w.next_after(now));
        let events = self.events.lock().ok().and_then(|w| w.next_after(now));
        [writes, groups, events].into_iter().flatten().min()
    }

    /// Whether the Service's writes may be tried now.
    fn write_due(&self, p: &SvcPlan, now: Instant) -> bool {
        self.writes.lock().map_or(true, |w| w.due(&p.uid, p, now))
    }

    /// Books one Service's outcome in its back-off; `Err` when leadership was lost.
    fn settle(&self, p: &SvcPlan, o: Outcome, now: Instant) -> Result<()> {
        if let Some(l) = o.leader_lost {
            return Err(l);
        }
        if o.held {
            return Ok(());
        }
        let Ok(mut w) = self.writes.lock() else {
            return Ok(());
        };
        match o.failed {
            None => w.succeeded(&p.uid),
            Some(error) => {
                let (delay, _) = w.failed(p.uid.clone(), p.clone(), now);
                tracing::warn!(service = %p.key, %error, ?delay, "write failed; retrying this Service with back-off");
            }
        }
        Ok(())
    }

    /// One Service's writes, in order: status (with the annotations, see
    /// [`Change::SetIngress`]), the Events of the change, other annotation changes, then the
    /// standing problems. Events come after the write they tell of, so none tells of an address
    /// that was not written; an allocator killed between the two loses that Event (Events are
    /// best-effort in Kubernetes), never the address.
    async fn service(
        &self,
        p: &SvcPlan,
        s: &SvcView,
        observer: &Observer,
        now: Instant,
    ) -> Outcome {
        let mut out = Outcome::default();
        let mut problems = p.problems.clone();
        let (status, annotations): (Vec<Change>, Vec<Change>) = diff::service_changes(p, s)
            .into_iter()
            .partition(|c| matches!(c, Change::SetIngress { .. } | Change::ClearIngress { .. }));
        // Each write carries the version the last one left (see `SvcView::resource_version`).
        let mut version = s.resource_version.clone();
        let mut write = async |changes: Vec<Change>, out: &mut Outcome| -> bool {
            for change in changes {
                match self.write_service(&change, s, &version).await {
                    Ok(svc) => {
                        version = svc.metadata.resource_version.clone().unwrap_or_default();
                        observer.wrote_service(svc)
                    }
                    Err(e) => {
                        if let Some(note) = out.failed(e) {
                            problems.push(note);
                        }
                        return false;
                    }
                }
            }
            true
        };
        out.status_written = write(status, &mut out).await;
        if out.status_written && out.leader_lost.is_none() {
            self.metrics.holders_changed(p);
            for n in &p.news {
                if self.publish(s, n, now).await == Published::Later {
                    self.pend(&s.uid, n.clone());
                }
            }
            if write(annotations, &mut out).await {
                for a in &p.allocated {
                    if let Some(g) = &p.group {
                        self.metrics.allocated(g, *a);
                    }
                }
            }
        }
        if out.leader_lost.is_none() {
            self.tell(s, &problems, now).await;
        }
        out
    }

    /// The first half of a Service that gives up an address and takes one another Service gives
    /// up: only the status, showing the addresses it keeps.
    async fn release(
        &self,
        kept: &[IpAddr],
        s: &SvcView,
        observer: &Observer,
        now: Instant,
    ) -> Outcome {
        let mut out = Outcome::default();
        let change = if kept.is_empty() {
            Change::ClearIngress { key: s.key.clone() }
        } else {
            // The annotations it has stay as they are until its second round.
            Change::SetIngress {
                key: s.key.clone(),
                ingress: kept.to_vec(),
                annotations: s.written.clone(),
            }
        };
        match self.write_service(&change, s, &s.resource_version).await {
            Ok(svc) => {
                observer.wrote_service(svc);
                out.status_written = true;
            }
            Err(e) => {
                if let Some(note) = out.failed(e) {
                    self.tell(s, &[note], now).await;
                }
            }
        }
        out
    }

    fn check_leading(&self) -> Result<()> {
        if *self.leading.borrow() && self.term.allows_writes() {
            Ok(())
        } else {
            Err(Error::LeaderLost(
                ferrolb_api::contracts::ALLOCATOR_LEASE.into(),
            ))
        }
    }

    /// One write about `s`, with `version` (the Service's resourceVersion the decision was made
    /// from, or the one our previous write of this pass left) as a precondition: the API server
    /// refuses it (409, retried on the next pass) when the Service changed meanwhile. The
    /// leadership check just before cannot stop a write that a paused process sends after it
    /// wakes, when another replica may lead; the precondition does once that one has written.
    async fn write_service(&self, change: &Change, s: &SvcView, version: &str) -> Result<Service> {
        self.check_leading()?;
        let api: Api<Service> = Api::namespaced(self.client.clone(), &s.key.namespace);
        let name = s.key.name.as_str();
        // A body's `metadata.resourceVersion`, when the version is known.
        let precondition = |body: &mut Value, version: &str| {
            if !version.is_empty() {
                body["metadata"]["resourceVersion"] = version.into();
            }
        };
        let base = |body: Value, version: &str| {
            let mut v = json!({ "apiVersion": "v1", "kind": "Service",
                                "metadata": { "name": name, "namespace": s.key.namespace } });
            precondition(&mut v, version);
            if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), body) {
                for (k, x) in extra {
                    if k == "metadata" {
                        if let (Some(Value::Object(m)), Value::Object(x)) =
                            (v.get_mut("metadata"), x)
                        {
                            m.extend(x);
                        }
                    } else {
                        v.insert(k, x);
                    }
                }
            }
            v
        };
        let apply_annotations = async |annotations: &BTreeMap<String, String>, version: &str| {
            let body = base(
                json!({ "metadata": { "annotations": annotations } }),
                version,
            );
            api.patch(name, &apply_params(), &Patch::Apply(&body)).await
        };
        let out = match change {
            Change::SetIngress {
                ingress,
                annotations,
                ..
            } => {
                let entries: Vec<Value> = ingress
                    .iter()
                    .map(|a| json!({ "ip": a.to_string(), "ipMode": "VIP" }))
                    .collect();
                let mut body = base(
                    json!({ "status": { "loadBalancer": { "ingress": entries } } }),
                    version,
                );
                if !annotations.is_empty() {
                    body["metadata"]["annotations"] = json!(annotations);
                }
                tracing::info!(service = %s.key, addresses = ?ingress, "writing status");
                let svc = api
                    .patch_status(name, &apply_params(), &Patch::Apply(&body))
                    .await?;
                if kept_all(&svc, annotations) {
                    svc
                } else {
                    // An API server whose Service status strategy resets metadata: the
                    // annotations need a write of their own.
                    tracing::warn!(service = %s.key, "the API server dropped the annotations of a status write; writing them apart");
                    let written = svc.metadata.resource_version.clone().unwrap_or_default();
                    apply_annotations(annotations, &written).await?
                }
            }
            Change::ClearIngress { .. } => {
                tracing::info!(service = %s.key, "clearing status");
                let mut body = json!({ "status": { "loadBalancer": { "ingress": null } } });
                precondition(&mut body, version);
                api.patch_status(name, &merge_params(), &Patch::Merge(&body))
                    .await?
            }
            Change::SetAnnotations { annotations, .. } => {
                apply_annotations(annotations, version).await?
            }
            Change::RemoveAnnotations { keys, .. } => {
                let nulls: serde_json::Map<String, Value> =
                    keys.iter().map(|k| (k.clone(), Value::Null)).collect();
                let mut body = json!({ "metadata": { "annotations": nulls } });
                precondition(&mut body, version);
                api.patch(name, &merge_params(), &Patch::Merge(&body))
                    .await?
            }
            Change::GroupStatus { .. } | Change::GroupFinalizer { .. } => {
                unreachable!("group changes are written by write_group")
            }
        };
        Ok(out)
    }

    async fn write_group(&self, change: &Change) -> Result<ServiceGroup> {
        self.check_leading()?;
        let api: Api<ServiceGroup> = Api::all(self.client.clone());
        let head = |name: &str| json!({ "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup", "metadata": { "name": name } });
        Ok(match change {
            Change::GroupStatus { name, status } => {
                let mut body = head(name);
                body["status"] = serde_json::to_value(status)?;
                api.patch_status(name, &apply_params(), &Patch::Apply(&body))
                    .await?
            }
            Change::GroupFinalizer { name, present } => {
                let mut body = head(name);
                if *present {
                    body["metadata"]["finalizers"] = json!([FINALIZER_IN_USE]);
                }
                tracing::info!(group = %name, present, "setting the in-use finalizer");
                api.patch(name, &apply_params(), &Patch::Apply(&body))
                    .await?
            }
            _ => unreachable!("service changes are written by write_service"),
        })
    }
}

/// `svc` carries every one of `annotations` with its value.
fn kept_all(svc: &Service, annotations: &BTreeMap<String, String>) -> bool {
    let have = svc.metadata.annotations.as_ref();
    annotations
        .iter()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}
