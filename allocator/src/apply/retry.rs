//! Back-off per object, not per pass: which keys (a Service, a ServiceGroup, a Service's Event
//! reason) failed, and when each may be tried again. Pure: the caller passes the time in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::Backoff;

/// One key's failures: how many in a row, when it may be tried again, and what was being
/// written (a different write is not held back by the failure of the earlier one).
#[derive(Clone, Debug)]
struct Entry<W> {
    failures: u32,
    due: Instant,
    what: W,
}

/// A keyed back-off table: each key doubles its own delay from [`Backoff::FIRST`] to
/// [`Backoff::MAX`] while it keeps failing, and forgets it on its first success. Keys that never
/// failed are always due, so one bad object never holds back another.
#[derive(Clone, Debug)]
pub struct Retries<K, W = ()> {
    entries: BTreeMap<K, Entry<W>>,
}

impl<K, W> Default for Retries<K, W> {
    fn default() -> Self {
        Retries {
            entries: BTreeMap::new(),
        }
    }
}

/// The delay after `failures` failures in a row (1 → [`Backoff::FIRST`]).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    Backoff::FIRST
        .checked_mul(1u32 << doublings)
        .unwrap_or(Backoff::MAX)
        .min(Backoff::MAX)
}

impl<K: Ord + Clone, W: PartialEq> Retries<K, W> {
    /// Whether `key` may be tried now for `what`: it never failed, its delay has passed, or what
    /// it should write changed since it failed.
    pub fn due(&self, key: &K, what: &W, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_none_or(|e| e.due <= now || e.what != *what)
    }

    /// Records a failure of `key` writing `what`; returns the delay before its next try and
    /// whether this is the first failure in a row (what a caller logs loudly, once).
    pub fn failed(&mut self, key: K, what: W, now: Instant) -> (Duration, bool) {
        let failures = self.entries.get(&key).map_or(0, |e| e.failures) + 1;
        let d = delay(failures);
        self.entries.insert(
            key,
            Entry {
                failures,
                due: now + d,
                what,
            },
        );
        (d, failures == 1)
    }

    /// Forgets `key`'s failures.
    pub fn succeeded(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// The earliest time after `now` at which a key becomes due.
    pub fn next_after(&self, now: Instant) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| e.due)
            .filter(|d| *d > now)
            .min()
    }

    /// Keeps only the keys `keep` says still exist.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn delays_double_from_250ms_to_five_minutes() {
        let cases = [
            ("first failure", 1, 250),
            ("second", 2, 500),
            ("third", 3, 1000),
            ("eleventh reaches the cap", 11, 256_000),
            ("twelfth is capped", 12, 300_000),
            ("many is capped", 40, 300_000),
            ("u32::MAX is capped", u32::MAX, 300_000),
        ];
        for (name, failures, want) in cases {
            assert_eq!(delay(failures), MS(want), "{name}");
        }
    }

    #[test]
    fn one_failing_key_holds_back_only_itself() {
        let t0 = Instant::now();
        let mut r: Retries<&str> = Retries::default();
        for _ in 0..6 {
            r.failed("bad", (), t0);
        }
        let cases = [
            ("the failing key waits", "bad", t0 + MS(1000), false),
            ("until its delay has passed", "bad", t0 + MS(8000), true),
            ("another key goes at once", "new", t0, true),
        ];
        for (name, key, at, want) in cases {
            assert_eq!(r.due(&key, &(), at), want, "{name}");
        }
        assert_eq!(r.next_after(t0), Some(t0 + MS(8000)));
        assert_eq!(r.next_after(t0 + MS(8000)), None, "nothing due later");
    }

    #[test]
    fn a_success_forgets_and_the_next_failure_starts_over() {
        let t0 = Instant::now();
        let mut r: Retries<&str> = Retries::default();
        assert_eq!(r.failed("a", (), t0), (MS(250), true));
        assert_eq!(r.failed("a", (), t0), (MS(500), false));
        r.succeeded(&"a");
        assert!(r.due(&"a", &(), t0));
        assert!(r.is_empty());
        assert_eq!(r.failed("a", (), t0), (MS(250), true));
    }

    #[test]
    fn a_different_write_is_not_held_back() {
        let t0 = Instant::now();
        let mut r: Retries<&str, u8> = Retries::default();
        r.failed("a", 1, t0);
        assert!(!r.due(&"a", &1, t0), "the same write waits");
        assert!(r.due(&"a", &2, t0), "a changed write goes at once");
    }

    #[test]
    fn forgets_keys_that_are_gone() {
        let t0 = Instant::now();
        let mut r: Retries<&str> = Retries::default();
        r.failed("gone", (), t0);
        r.failed("kept", (), t0);
        r.retain(|k| *k == "kept");
        assert_eq!(r.len(), 1);
        assert!(r.due(&"gone", &(), t0));
    }
}
