//! What `/healthz` and `/readyz` mean. Live: the reconcile loop has made progress recently
//! (a stuck loop is worth a restart; an unreachable API server is not). Ready: the last round
//! applied and renewed every address it wanted, recently, and the per-node Lease was written
//! within its duration (so the other agents and the allocator still see this node).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrolb_api::contracts::NODE_LEASE_DURATION;

/// A loop that has not beaten for this long is stuck. The loop wakes at least every
/// [`crate::run::MAX_IDLE`] and a round takes milliseconds, so this is a wide margin; it is
/// also longer than a Lease write may take.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);
/// Readiness needs a round this recent.
pub const ROUND_FRESH: Duration = Duration::from_secs(30);
/// Readiness needs a Lease written this recently: after it the others may take this node
/// for dead.
pub const LEASE_FRESH: Duration = NODE_LEASE_DURATION;

/// The facts behind both answers, as plain data.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// When the loop last made progress; `None` until it runs (waiting for the caches is no
    /// stuck loop).
    pub beat: Option<Instant>,
    /// When the last round ended, and what was wrong with it, if anything.
    pub round: Option<(Instant, Option<String>)>,
    /// When the per-node Lease was last written.
    pub lease_written: Option<Instant>,
    /// SIGTERM came: not ready, and no longer expected to beat at the usual pace.
    pub stopping: bool,
}

/// `Ok`, or why the agent is stuck.
pub fn liveness(s: &State, now: Instant) -> Result<(), String> {
    match s.beat {
        Some(beat) if !s.stopping => {
            let quiet = now.saturating_duration_since(beat);
            if quiet > STALL_LIMIT {
                return Err(format!(
                    "stuck: the reconcile loop made no progress for {}s (limit {}s)",
                    quiet.as_secs(),
                    STALL_LIMIT.as_secs()
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `Ok`, or why the agent is not ready.
pub fn readiness(s: &State, now: Instant) -> Result<(), String> {
    if s.stopping {
        return Err("stopping".into());
    }
    let ago = |t: Instant| now.saturating_duration_since(t);
    match &s.round {
        None => return Err("no reconcile round has finished yet".into()),
        Some((_, Some(problem))) => return Err(format!("the last round failed: {problem}")),
        Some((at, None)) if ago(*at) > ROUND_FRESH => {
            return Err(format!("the last round ended {}s ago", ago(*at).as_secs()));
        }
        Some(_) => {}
    }
    match s.lease_written {
        None => Err("the per-node Lease has not been written yet".into()),
        Some(at) if ago(at) > LEASE_FRESH => Err(format!(
            "the per-node Lease was last written {}s ago; is the API server reachable?",
            ago(at).as_secs()
        )),
        Some(_) => Ok(()),
    }
}

/// The shared state the loop, the Lease task and the HTTP handlers use.
#[derive(Debug, Default)]
pub struct Health(Mutex<State>);

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Plain values only: a panic elsewhere cannot leave them half-written.
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The loop made progress.
    pub fn beat(&self) {
        self.with(|s| s.beat = Some(Instant::now()));
    }

    /// A round ended: `None` when it applied everything, else what went wrong.
    pub fn round(&self, problem: Option<String>) {
        self.with(|s| s.round = Some((Instant::now(), problem)));
    }

    pub fn lease_written(&self) {
        self.with(|s| s.lease_written = Some(Instant::now()));
    }

    pub fn stopping(&self) {
        self.with(|s| s.stopping = true);
    }

    pub fn liveness(&self) -> Result<(), String> {
        self.with(|s| liveness(s, Instant::now()))
    }

    pub fn readiness(&self) -> Result<(), String> {
        self.with(|s| readiness(s, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_unless_the_loop_is_stuck() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let state = |beat: Option<Instant>, stopping| State {
            beat,
            stopping,
            ..State::default()
        };
        let cases = [
            (
                "still waiting for the caches",
                state(None, false),
                t0 + s(600),
                true,
            ),
            ("just beat", state(Some(t0), false), t0, true),
            (
                "at the limit",
                state(Some(t0), false),
                t0 + STALL_LIMIT,
                true,
            ),
            (
                "past the limit",
                state(Some(t0), false),
                t0 + STALL_LIMIT + s(1),
                false,
            ),
            ("stopping", state(Some(t0), true), t0 + s(600), true),
        ];
        for (name, state, now, want) in cases {
            assert_eq!(liveness(&state, now).is_ok(), want, "{name}");
        }
    }

    #[test]
    fn ready_when_the_last_round_applied_everything_and_the_lease_is_fresh() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let state = |round: Option<(Instant, Option<String>)>, lease, stopping| State {
            beat: Some(t0),
            round,
            lease_written: lease,
            stopping,
        };
        let ok = Some((t0, None));
        let failed = Some((t0, Some("add eth0 192.0.2.1/24 failed".to_string())));
        let cases = [
            ("all good", state(ok.clone(), Some(t0), false), t0, Ok(())),
            (
                "no round yet",
                state(None, Some(t0), false),
                t0,
                Err("no reconcile round"),
            ),
            (
                "the last round failed",
                state(failed, Some(t0), false),
                t0,
                Err("add eth0 192.0.2.1/24 failed"),
            ),
            (
                "the last round is old",
                state(ok.clone(), Some(t0 + s(31)), false),
                t0 + s(31),
                Err("the last round ended 31s ago"),
            ),
            (
                "no Lease yet",
                state(ok.clone(), None, false),
                t0,
                Err("not been written yet"),
            ),
            (
                "the Lease is stale (API server away)",
                state(Some((t0 + s(20), None)), Some(t0), false),
                t0 + s(20),
                Err("last written 20s ago"),
            ),
            ("stopping", state(ok, Some(t0), true), t0, Err("stopping")),
        ];
        for (name, state, now, want) in cases {
            match (readiness(&state, now), want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
