//! How soon a broken watch of any ferrolb component tries again: exponential from [`FIRST`] to
//! [`MAX`], jittered, reset by the first event that gets through.
//!
//! kube-runtime's default (800 ms doubling to 30 s, forgotten only after 120 s without errors)
//! has grown to 30 s after a minute without the API server, and a return costs two of its
//! steps (the watch resumes, then the API server says its resourceVersion expired and it
//! lists again): up to a minute before a new Service is seen, or an agent sees its peers'
//! Leases again. A few retries per watch every few seconds cost the API server little.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first delay after an error.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest delay: what a return of the API server may cost each watch, twice.
pub const MAX: Duration = Duration::from_secs(4);

/// The delays of one watch; between half and all of each step (so replicas do not retry in
/// step with each other).
#[derive(Debug, Default)]
pub struct WatchBackoff {
    failures: u32,
}

impl WatchBackoff {
    /// The undelayed step after `failures` errors in a row (1 → [`FIRST`]), at most [`MAX`].
    pub fn step(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        FIRST.checked_mul(1u32 << doublings).unwrap_or(MAX).min(MAX)
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        let step = Self::step(self.failures);
        Some(step / 2 + step.mul_f64(jitter() / 2.0))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in [0, 1) that differs between calls and processes (std's per-process random
/// hash keys, fed a counter).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_delay_to_the_cap_and_starts_over_after_an_event() {
        let ms = Duration::from_millis;
        let cases = [
            (1, ms(250)),
            (2, ms(500)),
            (4, ms(2000)),
            (5, MAX),
            (40, MAX),
        ];
        for (failures, want) in cases {
            assert_eq!(
                WatchBackoff::step(failures),
                want,
                "after {failures} errors"
            );
        }
        let mut b = WatchBackoff::default();
        // A minute of errors (the API server away) never waits longer than the cap.
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(60) {
            let d = b.next().expect("never gives up");
            assert!(d <= MAX && d >= FIRST / 2, "{d:?}");
            waited += d;
        }
        assert!(b.next().expect("a delay") >= MAX / 2, "capped, not reset");
        b.reset();
        assert!(b.next().expect("a delay") <= FIRST, "an event starts over");
    }
}
