//! Leader election on the `ferrolb-allocator` Lease, as client-go's leader election does it: get,
//! then replace with the resourceVersion read (optimistic concurrency).
//!
//! - Another holder's Lease is judged on this replica's clock: it stays valid for its duration
//!   from the moment this replica saw its record change. Its renewTime is another clock's
//!   reading (skewed, or unparseable) and is never compared with ours.
//! - Every request is bounded: a leader's by what is left of its renew deadline, a candidate's by
//!   the renew deadline. A hung request is abandoned, not awaited.
//! - A leader may write until one renew deadline after it *sent* its last successful renewal
//!   ([`Term`]); every writer checks that before each write, and the election stops at that
//!   instant. The deadline (10 s) is shorter than the duration (15 s) that others wait from when
//!   they saw that renewal, so the terms of two leaders never overlap.
//!
//! The Lease is read and written untyped so that a record the API server accepts but this side
//! cannot parse is still judged (by its changes) and replaced, never a crash or a stall.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::{
    ALLOCATOR_LEASE, ALLOCATOR_LEASE_DURATION, ALLOCATOR_RENEW_DEADLINE, ALLOCATOR_RETRY_PERIOD,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{Error, Result};

/// What to do with the Lease as it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew it.
    Renew,
    /// Absent, released, or unchanged for its duration: take it.
    Take,
    /// Someone else holds it.
    Follow,
}

/// The longest `leaseDurationSeconds` of another holder that is believed; a longer (or missing,
/// or nonsensical) one counts as the contract's duration, so one bad write cannot keep every
/// replica from leading for years.
pub const MAX_FOLLOWED_DURATION: Duration = Duration::from_secs(60);

/// The Lease's record as read: who holds it, for how long, and the whole spec as written (any
/// change of which is a renewal).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub holder: Option<String>,
    pub duration: Duration,
    pub raw: Value,
}

impl Record {
    pub fn of(spec: Option<&Value>) -> Self {
        let spec = spec.cloned().unwrap_or(Value::Null);
        let holder = spec
            .get("holderIdentity")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_string);
        let duration = spec
            .get("leaseDurationSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero() && *d <= MAX_FOLLOWED_DURATION)
            .unwrap_or(ALLOCATOR_LEASE_DURATION);
        Record {
            holder,
            duration,
            raw: spec,
        }
    }
}

/// Decides from the record and how long this replica has seen it unchanged (pure, for tests).
pub fn step(record: Option<&Record>, identity: &str, unchanged_for: Duration) -> Step {
    let Some(r) = record else { return Step::Take };
    match r.holder.as_deref() {
        Some(h) if h == identity => Step::Renew,
        None => Step::Take,
        Some(_) if unchanged_for >= r.duration => Step::Take,
        Some(_) => Step::Follow,
    }
}

/// Until when this replica may write: extended by each renewal, checked before every write,
/// ended when leadership goes. Without leader election a replica may always write.
#[derive(Clone, Debug, Default)]
pub struct Term {
    until: Arc<Mutex<Option<Instant>>>,
    unbounded: bool,
}

impl Term {
    /// A term that never ends (no leader election).
    pub fn unbounded() -> Self {
        Term {
            unbounded: true,
            ..Term::default()
        }
    }

    /// Whether a write may start now.
    pub fn allows_writes(&self) -> bool {
        self.unbounded || self.until().is_some_and(|t| Instant::now() < t)
    }

    fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }
}

fn lease_api(client: Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &ApiResource::erase::<Lease>(&()))
}

/// Runs the election until leadership is lost (returns the error) or forever while following.
/// `leading` turns true when this replica leads; `term` says until when it may write.
pub async fn run(
    client: Client,
    namespace: String,
    identity: String,
    leading: watch::Sender<bool>,
    term: Term,
) -> Error {
    let api = lease_api(client, &namespace);
    let mut seen: Option<Seen> = None;
    // When the last successful renewal was sent.
    let mut renewed: Option<Instant> = None;
    let lost = |term: &Term| {
        term.set(None);
        tracing::warn!(%identity, "leader Lease not renewed within the renew deadline; stopping");
        Error::LeaderLost(ALLOCATOR_LEASE.into())
    };
    loop {
        let started = Instant::now();
        let deadline = renewed.map_or(started + ALLOCATOR_RENEW_DEADLINE, |r| {
            r + ALLOCATOR_RENEW_DEADLINE
        });
        if started >= deadline {
            return lost(&term);
        }
        let attempt = try_once(&api, &identity, &mut seen);
        match tokio::time::timeout_at(deadline.into(), attempt).await {
            Ok(Ok(true)) => {
                renewed = Some(started);
                term.set(Some(started + ALLOCATOR_RENEW_DEADLINE));
                if !*leading.borrow() {
                    tracing::info!(%identity, "leading: this replica allocates now");
                    let _ = leading.send(true);
                }
            }
            Ok(Ok(false)) if renewed.is_some() => {
                term.set(None);
                tracing::warn!(%identity, "another replica holds the leader Lease; stopping");
                return Error::LeaderLost(ALLOCATOR_LEASE.into());
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read or renew the leader Lease"),
            Err(_) => tracing::warn!(
                timeout = ?deadline.saturating_duration_since(started),
                "a leader Lease request did not answer within the renew deadline; abandoned"
            ),
        }
        let mut next = started + ALLOCATOR_RETRY_PERIOD;
        if let Some(r) = renewed {
            next = next.min(r + ALLOCATOR_RENEW_DEADLINE);
        }
        tokio::time::sleep_until(next.into()).await;
    }
}

/// The record last seen and when this replica saw it change.
struct Seen {
    raw: Value,
    at: Instant,
}

/// A renewTime as the API server writes a MicroTime.
fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One round: `Ok(true)` when this replica holds the Lease afterwards.
async fn try_once(
    api: &Api<DynamicObject>,
    identity: &str,
    seen: &mut Option<Seen>,
) -> Result<bool> {
    let current = api.get_opt(ALLOCATOR_LEASE).await?;
    let now = Instant::now();
    let record = current.as_ref().map(|o| Record::of(o.data.get("spec")));
    if let Some(r) = &record
        && seen.as_ref().is_none_or(|s| s.raw != r.raw)
    {
        *seen = Some(Seen {
            raw: r.raw.clone(),
            at: now,
        });
    }
    let unchanged_for = seen
        .as_ref()
        .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.at));
    let what = step(record.as_ref(), identity, unchanged_for);
    if what == Step::Follow {
        return Ok(false);
    }
    let mut spec = match record.map(|r| r.raw) {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let stamp = micro_time(Timestamp::now());
    if what == Step::Take {
        let transitions = spec
            .get("leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        spec.insert("holderIdentity".into(), identity.into());
        spec.insert("acquireTime".into(), stamp.clone().into());
        spec.insert(
            "leaseTransitions".into(),
            transitions
                .saturating_add(1)
                .clamp(0, i64::from(i32::MAX))
                .into(),
        );
    }
    spec.insert("renewTime".into(), stamp.into());
    spec.insert(
        "leaseDurationSeconds".into(),
        ALLOCATOR_LEASE_DURATION.as_secs().into(),
    );
    let spec = Value::Object(spec);
    let result = match current {
        Some(mut lease) => {
            lease.data["spec"] = spec.clone();
            api.replace(ALLOCATOR_LEASE, &PostParams::default(), &lease)
                .await
        }
        None => {
            let lease = DynamicObject::new(ALLOCATOR_LEASE, &ApiResource::erase::<Lease>(&()))
                .data(json!({ "spec": spec }));
            api.create(&PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => {
            *seen = Some(Seen {
                raw: spec,
                at: Instant::now(),
            });
            Ok(true)
        }
        // Someone else wrote first: they hold it.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the Lease up on a graceful stop, so that the other replica takes over at once. Bounded
/// by the retry period: a stop does not wait on a hung API server.
pub async fn release(client: Client, namespace: &str, identity: &str) {
    let api = lease_api(client, namespace);
    let give_up = async {
        if let Ok(Some(mut lease)) = api.get_opt(ALLOCATOR_LEASE).await
            && Record::of(lease.data.get("spec")).holder.as_deref() == Some(identity)
            && let Some(spec) = lease.data.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("holderIdentity".into(), Value::Null);
            spec.insert("leaseDurationSeconds".into(), 1.into());
            let _ = api
                .replace(ALLOCATOR_LEASE, &PostParams::default(), &lease)
                .await;
        }
    };
    let _ = tokio::time::timeout(ALLOCATOR_RETRY_PERIOD, give_up).await;
}

/// How long a follower may have to wait for a dead leader's Lease to expire: the duration from
/// the last change it saw, plus one retry period to notice.
pub const TAKEOVER_BOUND: Duration =
    Duration::from_secs(ALLOCATOR_LEASE_DURATION.as_secs() + ALLOCATOR_RETRY_PERIOD.as_secs());

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: Value) -> Record {
        Record::of(Some(&spec))
    }

    #[test]
    fn decides_renew_take_or_follow_by_how_long_the_record_is_unchanged() {
        let held = |holder: &str, renew: &str| {
            record(
                json!({ "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew }),
            )
        };
        let now = "2026-11-30T10:00:00.000000Z";
        let secs = Duration::from_secs;
        // (name, record, seen unchanged for, want)
        let cases: Vec<(&str, Option<Record>, Duration, Step)> = vec![
            ("no lease", None, secs(0), Step::Take),
            ("ours", Some(held("me", now)), secs(0), Step::Renew),
            (
                "ours, unchanged long",
                Some(held("me", now)),
                secs(60),
                Step::Renew,
            ),
            (
                "another's, just changed",
                Some(held("other", now)),
                secs(3),
                Step::Follow,
            ),
            (
                "another's, unchanged for its duration",
                Some(held("other", now)),
                secs(15),
                Step::Take,
            ),
            (
                "another's renewTime an hour behind our clock, just changed: it is renewing",
                Some(held("other", "2026-11-30T09:00:00.000000Z")),
                secs(1),
                Step::Follow,
            ),
            (
                "another's renewTime in the year 3000, unchanged for its duration: it is dead",
                Some(held("other", "3000-01-01T00:00:00.000000Z")),
                secs(15),
                Step::Take,
            ),
            (
                "a renewTime this side cannot parse is judged by its changes too",
                Some(held("other", "9999-12-31T23:59:59.999999Z")),
                secs(14),
                Step::Follow,
            ),
            (
                "released",
                Some(record(json!({ "leaseDurationSeconds": 1 }))),
                secs(0),
                Step::Take,
            ),
            (
                "a duration of 68 years counts as the contract's",
                Some(record(
                    json!({ "holderIdentity": "other", "leaseDurationSeconds": 2147483647 }),
                )),
                secs(15),
                Step::Take,
            ),
        ];
        for (name, r, unchanged_for, want) in cases {
            assert_eq!(step(r.as_ref(), "me", unchanged_for), want, "{name}");
        }
    }

    #[test]
    fn a_term_allows_writes_only_until_it_ends() {
        assert!(Term::unbounded().allows_writes());
        let t = Term::default();
        assert!(!t.allows_writes(), "not leading yet");
        t.set(Some(Instant::now() + Duration::from_secs(10)));
        assert!(t.clone().allows_writes(), "shared by its clones");
        t.set(Some(Instant::now()));
        assert!(!t.allows_writes(), "the deadline passed");
    }
}
