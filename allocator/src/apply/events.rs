//! The Events the applier publishes: each standing problem told once, news after the write it
//! tells of, notes cut to what the API server takes, and failures backed off per (Service,
//! reason) so that an Event the API server will not take neither floods the log nor is retried on
//! every pass.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use ferrolb_api::contracts::reason;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use super::{Applier, EVENT_PAGE, note, told_before};
use crate::decide::Note;
use crate::observe::{GroupView, SvcView};
use crate::{Backoff, Error, Result};

/// What became of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Published {
    Done,
    /// Not taken now (a transient failure, or backing off): try again when due.
    Later,
    /// The API server refuses it: not tried again.
    Refused,
}

impl Applier {
    pub(super) fn pend(&self, uid: &str, n: Note) {
        if let Ok(mut p) = self.pending.lock() {
            p.entry(uid.to_string()).or_default().push(n);
        }
    }

    /// Publishes the Events whose publication failed in an earlier pass (when due), of
    /// Services still there.
    pub(super) async fn retry_pending(&self, current: &HashMap<&str, &SvcView>, now: Instant) {
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        for (uid, notes) in pending {
            let Some(s) = current.get(uid.as_str()) else {
                continue;
            };
            for n in notes {
                if self.publish(s, &n, now).await == Published::Later {
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

    /// Tells the problems not told before; forgets those that went away. A problem whose
    /// Event was not taken for now is forgotten too, so that it is told again when due; one the
    /// API server refuses stays told (it would be refused again).
    pub(super) async fn tell(&self, s: &SvcView, problems: &[Note], now: Instant) {
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
            if self.publish(s, &n, now).await == Published::Later
                && let Ok(mut told) = self.told.lock()
                && let Some(t) = told.get_mut(&s.uid)
            {
                t.remove(&n);
            }
        }
    }

    /// Publishes an Event unless its (Service, reason) is backing off. A failure is logged
    /// once, when a row of failures starts, then backs off: an Event the API server refuses
    /// neither floods the log nor is retried on every pass.
    pub(super) async fn publish(&self, s: &SvcView, n: &Note, now: Instant) -> Published {
        let key = (s.uid.clone(), n.reason);
        if !self.events.lock().map_or(true, |e| e.due(&key, &(), now)) {
            return Published::Later;
        }
        match self.event(s, n).await {
            Ok(()) => {
                if let Ok(mut e) = self.events.lock() {
                    e.succeeded(&key);
                }
                Published::Done
            }
            Err(Error::LeaderLost(_)) => Published::Later,
            Err(e) => {
                let transient = e.is_transient();
                let (delay, first) = self
                    .events
                    .lock()
                    .map_or((Backoff::FIRST, true), |mut t| t.failed(key, (), now));
                if first {
                    if transient {
                        tracing::warn!(service = %s.key, reason = n.reason, error = %e, ?delay, "cannot publish an Event; retrying it with back-off");
                    } else {
                        tracing::warn!(service = %s.key, reason = n.reason, error = %e, "the API server refuses this Event; not retrying it");
                    }
                } else {
                    tracing::debug!(service = %s.key, reason = n.reason, error = %e, ?delay, "still cannot publish an Event");
                }
                self.metrics.event_failed(n.reason);
                if transient {
                    Published::Later
                } else {
                    Published::Refused
                }
            }
        }
    }

    async fn event(&self, s: &SvcView, n: &Note) -> Result<()> {
        self.check_leading()?;
        let note = note(&n.message);
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
            note: Some(note.clone()),
            action: "Allocate".into(),
            secondary: None,
        };
        tracing::info!(service = %s.key, reason = n.reason, message = %note, "event");
        // A Recorder of its own per Event: kube's Recorder folds Events that differ only in
        // their note into one series and keeps the first note, which would hide e.g. the second
        // HolderChanged. Repeats are already suppressed by `told`.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        Ok(recorder.publish(&ev, &reference).await?)
    }

    /// A Warning Event on a ServiceGroup (in namespace `default`, as Events of cluster-scoped
    /// objects are) telling of a problem its status shows from now on. Told once: the status
    /// written just before is what the next pass compares with; an Event the API server does
    /// not take is logged, and the condition stays.
    pub(super) async fn group_event(&self, g: &GroupView, reason: &str, message: &str) {
        if self.check_leading().is_err() {
            return;
        }
        let reference = ObjectReference {
            api_version: Some("ferrolb.io/v1".into()),
            kind: Some("ServiceGroup".into()),
            name: Some(g.name.clone()),
            uid: g.uid.clone(),
            ..Default::default()
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note(message)),
            action: "Validate".into(),
            secondary: None,
        };
        tracing::warn!(group = %g.name, reason, message, "event");
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(group = %g.name, reason, error = %e, "cannot publish an Event about the group; its condition says the same");
        }
    }
}
