//! The only code that writes: server-side apply of Service status and annotations and of
//! ServiceGroup status and finalizer (field manager `ferrolb-allocator`), and Events.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::{FIELD_MANAGER_ALLOCATOR, FINALIZER_IN_USE, reason};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::decide::{Change, Note, Plan, Rounds, SvcPlan, diff, rounds};
use crate::leader::Term;
use crate::metrics::Metrics;
use crate::observe::{GroupView, Observer, Snapshot, SvcView};
use crate::{Error, Result};

mod told;

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
    /// Per Service uid, Events whose publication failed: retried on the next pass.
    pending: Mutex<HashMap<String, Vec<Note>>>,
}

/// Services written at once.
pub const WRITERS: usize = 64;

/// How one Service's writes went.
#[derive(Default)]
struct Outcome {
    /// Its status change (if any) was written.
    status_written: bool,
    transient: Option<Error>,
    leader_lost: Option<Error>,
}

impl Outcome {
    /// Records a failed write; a permanent failure becomes a problem to tell.
    fn failed(&mut self, s: &SvcView, e: Error) -> Option<Note> {
        match e {
            Error::LeaderLost(_) => {
                self.leader_lost = Some(e);
                None
            }
            e if e.is_transient() => {
                tracing::warn!(service = %s.key, error = %e, "write failed; retrying with back-off");
                self.transient.get_or_insert(e);
                None
            }
            e => Some(Note::warning(
                reason::ALLOCATION_FAILED,
                format!(
                    "the allocator cannot write this Service: {e}; check its RBAC and the Service's validity"
                ),
            )),
        }
    }

    /// Not written because the release of an address it takes was not written.
    fn waiting(s: &SvcView, releaser: &SvcPlan) -> Outcome {
        tracing::info!(service = %s.key, waiting_for = %releaser.key, "waiting for a release before reusing its address");
        Outcome {
            transient: Some(Error::Waiting(releaser.key.to_string())),
            ..Default::default()
        }
    }

    /// Folds into the pass's first transient error; `Err` when leadership was lost.
    fn merge_into(self, transient: &mut Option<Error>) -> Result<()> {
        if let Some(l) = self.leader_lost {
            return Err(l);
        }
        if let Some(e) = self.transient {
            transient.get_or_insert(e);
        }
        Ok(())
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
        }
    }

    /// Makes the cluster match `plan`. Returns the first transient error (the caller retries
    /// with back-off); permanent errors become Events.
    ///
    /// Service writes run [`WRITERS`] at a time; each Service's own writes stay in order
    /// (status with annotations, then its Events). Releases of addresses reused in the same
    /// pass are written (and confirmed) first, see [`rounds`].
    pub async fn apply(&self, plan: &Plan, snap: &Snapshot, observer: &Observer) -> Result<()> {
        let mut transient: Option<Error> = None;
        let current = snap.services_by_uid();
        self.retry_pending(&current).await;
        let Rounds { first, second } = rounds(plan, |uid| current.get(uid).copied());
        let mut released = vec![true; plan.services.len()];
        let outcomes: Vec<(usize, Outcome)> = stream::iter(first)
            .map(|(i, release_only)| {
                let p = &plan.services[i];
                let s = current[p.uid.as_str()];
                async move {
                    let o = match release_only {
                        Some(kept) => self.release(&kept, s, observer).await,
                        None => self.service(p, s, observer).await,
                    };
                    (i, o)
                }
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        for (i, o) in outcomes {
            released[i] = o.status_written;
            o.merge_into(&mut transient)?;
        }
        let outcomes: Vec<Outcome> = stream::iter(second)
            .map(|(i, waits)| {
                let p = &plan.services[i];
                let s = current[p.uid.as_str()];
                let blocked = waits.iter().find(|w| !released[**w]).copied();
                async move {
                    match blocked {
                        Some(w) => Outcome::waiting(s, &plan.services[w]),
                        None => self.service(p, s, observer).await,
                    }
                }
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        for o in outcomes {
            o.merge_into(&mut transient)?;
        }
        let live: HashSet<&str> = plan.services.iter().map(|p| p.uid.as_str()).collect();
        if let Ok(mut told) = self.told.lock() {
            told.retain(|uid, _| live.contains(uid.as_str()));
        }
        let groups: HashMap<&str, &GroupView> =
            snap.groups.iter().map(|g| (g.name.as_str(), g)).collect();
        for p in &plan.groups {
            for (family, capacity, allocated) in &p.usage {
                self.metrics.usage(&p.name, *family, *capacity, *allocated);
            }
            let Some(g) = groups.get(p.name.as_str()) else {
                continue;
            };
            for change in diff::group_changes(p, g, snap.now) {
                match self.write_group(&change).await {
                    Ok(g) => observer.wrote_group(g),
                    Err(Error::LeaderLost(l)) => return Err(Error::LeaderLost(l)),
                    Err(e) => {
                        tracing::warn!(group = %p.name, error = %e, "cannot write the ServiceGroup");
                        if e.is_transient() {
                            transient.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if let Some(e) = transient {
            return Err(e);
        }
        if self.pending_count() > 0 {
            return Err(Error::EventsPending);
        }
        Ok(())
    }

    /// One Service's writes, in order: status (with the annotations, see
    /// [`Change::SetIngress`]), the Events of the change, other annotation changes, then the
    /// standing problems. Events come after the write they tell of, so none tells of an address
    /// that was not written; an allocator killed between the two loses that Event (Events are
    /// best-effort in Kubernetes), never the address.
    async fn service(&self, p: &SvcPlan, s: &SvcView, observer: &Observer) -> Outcome {
        let mut out = Outcome::default();
        let mut problems = p.problems.clone();
        let (status, annotations): (Vec<Change>, Vec<Change>) = diff::service_changes(p, s)
            .into_iter()
            .partition(|c| matches!(c, Change::SetIngress { .. } | Change::ClearIngress { .. }));
        let mut write = async |changes: Vec<Change>, out: &mut Outcome| -> bool {
            for change in changes {
                match self.write_service(&change, s).await {
                    Ok(svc) => observer.wrote_service(svc),
                    Err(e) => {
                        if let Some(note) = out.failed(s, e) {
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
            for n in &p.news {
                if let Err(e) = self.event(s, n).await {
                    tracing::warn!(service = %s.key, error = %e, "cannot publish an Event; retrying");
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
        if out.leader_lost.is_none()
            && let Err(e) = self.tell(s, &problems).await
        {
            out.transient.get_or_insert(e);
        }
        out
    }

    /// The first half of a Service that gives up an address and takes one another Service gives
    /// up: only the status, showing the addresses it keeps.
    async fn release(&self, kept: &[IpAddr], s: &SvcView, observer: &Observer) -> Outcome {
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
        match self.write_service(&change, s).await {
            Ok(svc) => {
                observer.wrote_service(svc);
                out.status_written = true;
            }
            Err(e) => {
                if let Some(note) = out.failed(s, e)
                    && let Err(e) = self.tell(s, &[note]).await
                {
                    out.transient.get_or_insert(e);
                }
            }
        }
        out
    }

    fn pend(&self, uid: &str, n: Note) {
        if let Ok(mut p) = self.pending.lock() {
            p.entry(uid.to_string()).or_default().push(n);
        }
    }

    fn pending_count(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }

    /// Publishes the Events whose publication failed in an earlier pass, of Services still
    /// there.
    async fn retry_pending(&self, current: &HashMap<&str, &SvcView>) {
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        for (uid, notes) in pending {
            let Some(s) = current.get(uid.as_str()) else {
                continue;
            };
            for n in notes {
                if let Err(e) = self.event(s, &n).await {
                    tracing::warn!(service = %s.key, error = %e, "cannot publish an Event; retrying");
                    self.pend(&uid, n);
                }
            }
        }
    }

    /// Remembers the standing problems already told (as Events) by an earlier allocator, so
    /// that a restart or failover does not tell them again.
    pub async fn remember_told(&self, namespace: Option<&str>) -> Result<()> {
        let earlier = told_before(&self.client, namespace, EVENT_PAGE).await?;
        if let Ok(mut told) = self.told.lock() {
            for (uid, notes) in earlier {
                told.entry(uid).or_default().extend(notes);
            }
        }
        Ok(())
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

    async fn write_service(&self, change: &Change, s: &SvcView) -> Result<Service> {
        self.check_leading()?;
        let api: Api<Service> = Api::namespaced(self.client.clone(), &s.key.namespace);
        let name = s.key.name.as_str();
        let base = |body: Value| {
            let mut v = json!({ "apiVersion": "v1", "kind": "Service",
                                "metadata": { "name": name, "namespace": s.key.namespace } });
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
        let apply_annotations = async |annotations: &BTreeMap<String, String>| {
            let body = base(json!({ "metadata": { "annotations": annotations } }));
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
                let mut body =
                    base(json!({ "status": { "loadBalancer": { "ingress": entries } } }));
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
                    apply_annotations(annotations).await?
                }
            }
            Change::ClearIngress { .. } => {
                tracing::info!(service = %s.key, "clearing status");
                let body = json!({ "status": { "loadBalancer": { "ingress": null } } });
                api.patch_status(name, &merge_params(), &Patch::Merge(&body))
                    .await?
            }
            Change::SetAnnotations { annotations, .. } => apply_annotations(annotations).await?,
            Change::RemoveAnnotations { keys, .. } => {
                let nulls: serde_json::Map<String, Value> =
                    keys.iter().map(|k| (k.clone(), Value::Null)).collect();
                let body = json!({ "metadata": { "annotations": nulls } });
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

    /// Tells the problems not told before; forgets those that went away. A problem whose
    /// Event cannot be published is forgotten too, so the next pass tells it again.
    async fn tell(&self, s: &SvcView, problems: &[Note]) -> Result<()> {
        let fresh: Vec<Note> = match self.told.lock() {
            Ok(mut told) => {
                let before = told.remove(&s.uid).unwrap_or_default();
                let now: BTreeSet<Note> = problems.iter().cloned().collect();
                let fresh = now.difference(&before).cloned().collect();
                if !now.is_empty() {
                    told.insert(s.uid.clone(), now);
                }
                fresh
            }
            Err(_) => Vec::new(),
        };
        let mut failed = None;
        for n in fresh {
            if matches!(
                n.reason,
                reason::ALLOCATION_FAILED
                    | reason::REQUESTED_ADDRESS_UNAVAILABLE
                    | reason::SHARING_CONFLICT
            ) {
                self.metrics.failed(n.reason);
            }
            if let Err(e) = self.event(s, &n).await {
                tracing::warn!(service = %s.key, error = %e, "cannot publish an Event; retrying");
                if let Ok(mut told) = self.told.lock()
                    && let Some(t) = told.get_mut(&s.uid)
                {
                    t.remove(&n);
                }
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn event(&self, s: &SvcView, n: &Note) -> Result<()> {
        self.check_leading()?;
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(s.key.name.clone()),
            namespace: Some(s.key.namespace.clone()),
            uid: Some(s.uid.clone()),
            ..Default::default()
        };
        let ev = Event {
            type_: if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: n.reason.into(),
            note: Some(n.message.chars().take(1000).collect()),
            action: "Allocate".into(),
            secondary: None,
        };
        tracing::info!(service = %s.key, reason = n.reason, message = %n.message, "event");
        // A Recorder of its own per Event: kube's Recorder folds Events that differ only in
        // their note into one series and keeps the first note, which would hide e.g. the second
        // HolderChanged. Repeats are already suppressed by `told`.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        Ok(recorder.publish(&ev, &reference).await?)
    }
}

/// `svc` carries every one of `annotations` with its value.
fn kept_all(svc: &Service, annotations: &BTreeMap<String, String>) -> bool {
    let have = svc.metadata.annotations.as_ref();
    annotations
        .iter()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}
