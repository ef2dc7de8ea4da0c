//! The only code that writes: server-side apply of Service status and annotations and of
//! ServiceGroup status and finalizer (field manager `ferrolb-allocator`), and Events.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::{FIELD_MANAGER_ALLOCATOR, FINALIZER_IN_USE, reason};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::decide::{Change, Note, Plan, diff};
use crate::metrics::Metrics;
use crate::observe::{Observer, Snapshot, SvcView};
use crate::{Error, Result};

/// Writes plans, tells each standing problem once, and stops writing when leadership goes.
pub struct Applier {
    client: Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    leading: watch::Receiver<bool>,
    /// Per Service uid, the problems already told.
    told: Mutex<HashMap<String, BTreeSet<Note>>>,
}

/// Reasons of standing problems (Warning Events about a Service).
const PROBLEMS: [&str; 6] = [
    reason::ALLOCATION_FAILED,
    reason::REQUESTED_ADDRESS_UNAVAILABLE,
    reason::SHARING_CONFLICT,
    reason::DEPRECATED_FIELD,
    reason::ANNOTATION_CONFLICT,
    reason::NO_CANDIDATE,
];

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
            told: Mutex::default(),
        }
    }

    /// Makes the cluster match `plan`. Returns the first transient error (the caller retries
    /// with back-off); permanent errors become Events.
    pub async fn apply(&self, plan: &Plan, snap: &Snapshot, observer: &Observer) -> Result<()> {
        let mut transient: Option<Error> = None;
        for p in &plan.services {
            let Some(s) = snap.services.iter().find(|s| s.uid == p.uid) else {
                continue;
            };
            let mut problems = p.problems.clone();
            let mut ok = true;
            for change in diff::service_changes(p, s) {
                match self.write_service(&change, s).await {
                    Ok(svc) => observer.wrote_service(svc),
                    Err(e) if e.is_transient() => {
                        tracing::warn!(service = %s.key, error = %e, "write failed; retrying with back-off");
                        ok = false;
                        transient.get_or_insert(e);
                    }
                    Err(Error::LeaderLost(l)) => return Err(Error::LeaderLost(l)),
                    Err(e) => {
                        ok = false;
                        problems.push(Note::warning(
                            reason::ALLOCATION_FAILED,
                            format!("the allocator cannot write this Service: {e}; check its RBAC and the Service's validity"),
                        ));
                    }
                }
            }
            if ok {
                for n in &p.news {
                    self.event(s, n).await;
                }
                for a in &p.allocated {
                    if let Some(g) = &p.group {
                        self.metrics.allocated(g, *a);
                    }
                }
            }
            self.tell(s, &problems).await;
        }
        let live: BTreeSet<&str> = plan.services.iter().map(|p| p.uid.as_str()).collect();
        if let Ok(mut told) = self.told.lock() {
            told.retain(|uid, _| live.contains(uid.as_str()));
        }
        for p in &plan.groups {
            for (family, capacity, allocated) in &p.usage {
                self.metrics.usage(&p.name, *family, *capacity, *allocated);
            }
            let Some(g) = snap.groups.iter().find(|g| g.name == p.name) else {
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
        transient.map_or(Ok(()), Err)
    }

    /// Remembers the standing problems already told (as Events) by an earlier allocator, so
    /// that a restart or failover does not tell them again.
    pub async fn remember_told(&self, namespace: Option<&str>) -> Result<()> {
        let api: Api<K8sEvent> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let events = api.list(&ListParams::default()).await?;
        let Ok(mut told) = self.told.lock() else {
            return Ok(());
        };
        for e in events.items {
            if e.reporting_controller.as_deref() != Some(FIELD_MANAGER_ALLOCATOR)
                || e.type_.as_deref() != Some("Warning")
            {
                continue;
            }
            let uid = e.regarding.and_then(|r| r.uid);
            let known = e
                .reason
                .as_deref()
                .and_then(|r| PROBLEMS.iter().find(|p| **p == r));
            if let (Some(uid), Some(reason), Some(note)) = (uid, known, e.note) {
                told.entry(uid)
                    .or_default()
                    .insert(Note::warning(reason, note));
            }
        }
        Ok(())
    }

    fn check_leading(&self) -> Result<()> {
        if *self.leading.borrow() {
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
        let out = match change {
            Change::SetIngress { ingress, .. } => {
                let entries: Vec<Value> = ingress
                    .iter()
                    .map(|a| json!({ "ip": a.to_string(), "ipMode": "VIP" }))
                    .collect();
                let body = base(json!({ "status": { "loadBalancer": { "ingress": entries } } }));
                tracing::info!(service = %s.key, addresses = ?ingress, "writing status");
                api.patch_status(name, &apply_params(), &Patch::Apply(&body))
                    .await?
            }
            Change::ClearIngress { .. } => {
                tracing::info!(service = %s.key, "clearing status");
                let body = json!({ "status": { "loadBalancer": { "ingress": null } } });
                api.patch_status(name, &merge_params(), &Patch::Merge(&body))
                    .await?
            }
            Change::SetAnnotations { annotations, .. } => {
                let body = base(json!({ "metadata": { "annotations": annotations } }));
                api.patch(name, &apply_params(), &Patch::Apply(&body))
                    .await?
            }
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

    /// Tells the problems not told before; forgets those that went away.
    async fn tell(&self, s: &SvcView, problems: &[Note]) {
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
        for n in fresh {
            if matches!(
                n.reason,
                reason::ALLOCATION_FAILED
                    | reason::REQUESTED_ADDRESS_UNAVAILABLE
                    | reason::SHARING_CONFLICT
            ) {
                self.metrics.failed(n.reason);
            }
            self.event(s, &n).await;
        }
    }

    async fn event(&self, s: &SvcView, n: &Note) {
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
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(service = %s.key, error = %e, "cannot publish an Event");
        }
    }
}
