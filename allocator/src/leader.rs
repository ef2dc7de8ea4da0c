//! Leader election on the `ferrolb-allocator` Lease: get, then replace with the resourceVersion
//! read (optimistic concurrency). Only the leader writes; a leader that cannot renew within the
//! renew deadline, or sees another holder, stops.

use std::time::{Duration, Instant};

use ferrolb_api::contracts::{
    ALLOCATOR_LEASE, ALLOCATOR_LEASE_DURATION, ALLOCATOR_RENEW_DEADLINE, ALLOCATOR_RETRY_PERIOD,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::{Error, Result};

/// What to do with the Lease as it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds it.
    Follow,
}

/// Decides from the Lease's spec (pure, for tests).
pub fn step(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else { return Step::Take };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(ALLOCATOR_LEASE_DURATION.as_secs() as i32),
    );
    let expired = spec
        .renew_time
        .as_ref()
        .is_none_or(|t| t.0 + SignedDuration::from_secs(duration) < now);
    if holder.is_empty() || expired {
        Step::Take
    } else {
        Step::Follow
    }
}

/// Runs the election until leadership is lost (returns the error) or forever while following.
/// `leading` turns true when this replica leads.
pub async fn run(
    client: Client,
    namespace: String,
    identity: String,
    leading: watch::Sender<bool>,
) -> Error {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut last_renew: Option<Instant> = None;
    loop {
        match try_once(&api, &identity).await {
            Ok(true) => {
                last_renew = Some(Instant::now());
                if !*leading.borrow() {
                    tracing::info!(%identity, "leading: this replica allocates now");
                    let _ = leading.send(true);
                }
            }
            Ok(false) if last_renew.is_some() => return Error::LeaderLost(ALLOCATOR_LEASE.into()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read or renew the leader Lease"),
        }
        if last_renew.is_some_and(|t| t.elapsed() > ALLOCATOR_RENEW_DEADLINE) {
            return Error::LeaderLost(ALLOCATOR_LEASE.into());
        }
        tokio::time::sleep(ALLOCATOR_RETRY_PERIOD).await;
    }
}

/// One round: `Ok(true)` when this replica holds the Lease afterwards.
async fn try_once(api: &Api<Lease>, identity: &str) -> Result<bool> {
    let now = Timestamp::now();
    let current = api.get_opt(ALLOCATOR_LEASE).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let what = step(spec, identity, now);
    if what == Step::Follow {
        return Ok(false);
    }
    let mut new_spec = spec.cloned().unwrap_or_default();
    if what == Step::Take {
        new_spec.holder_identity = Some(identity.to_string());
        new_spec.acquire_time = Some(MicroTime(now));
        new_spec.lease_transitions = Some(new_spec.lease_transitions.unwrap_or(0) + 1);
    }
    new_spec.renew_time = Some(MicroTime(now));
    new_spec.lease_duration_seconds = Some(ALLOCATOR_LEASE_DURATION.as_secs() as i32);
    let result = match current {
        Some(mut lease) => {
            lease.spec = Some(new_spec);
            api.replace(ALLOCATOR_LEASE, &PostParams::default(), &lease)
                .await
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(ALLOCATOR_LEASE.into()),
                    ..Default::default()
                },
                spec: Some(new_spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        // Someone else wrote first: they hold it.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the Lease up on a graceful stop, so that the other replica takes over at once.
pub async fn release(client: Client, namespace: &str, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    if let Ok(Some(mut lease)) = api.get_opt(ALLOCATOR_LEASE).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(identity)
    {
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let _ = api
            .replace(ALLOCATOR_LEASE, &PostParams::default(), &lease)
            .await;
    }
}

/// How long a follower may have to wait for a dead leader's Lease to expire.
pub const TAKEOVER_BOUND: Duration =
    Duration::from_secs(ALLOCATOR_LEASE_DURATION.as_secs() + ALLOCATOR_RETRY_PERIOD.as_secs());

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1000 - renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn decides_renew_take_or_follow() {
        let now = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1000);
        let cases = [
            ("no lease", None, Step::Take),
            ("ours", Some(spec(Some("me"), 3)), Step::Renew),
            ("ours and stale", Some(spec(Some("me"), 30)), Step::Renew),
            ("fresh other", Some(spec(Some("other"), 3)), Step::Follow),
            ("expired other", Some(spec(Some("other"), 16)), Step::Take),
            ("released", Some(spec(None, 1)), Step::Take),
        ];
        for (name, s, want) in cases {
            assert_eq!(step(s.as_ref(), "me", now), want, "{name}");
        }
    }
}
