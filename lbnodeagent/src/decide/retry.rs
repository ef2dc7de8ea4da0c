//! Back-off per change, not per round: a change that failed is tried again no sooner than its
//! back-off (250 ms doubling to 5 min), while every other change, and every renewal whatever
//! failed, goes out on time. A failing IPv6 address must not let the local addresses expire.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::diff::Change;

pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Failing {
    /// Back-off after the latest failure.
    backoff: Duration,
    not_before: Instant,
}

/// The changes that failed and when each may be tried again. Time is data (`now`), so the
/// rules are tested without a clock.
#[derive(Clone, Debug, Default)]
pub struct Retries {
    failing: BTreeMap<String, Failing>,
}

/// The text of a change names it: `add eth0 192.0.2.10/24`.
fn key(change: &Change) -> String {
    change.to_string()
}

impl Retries {
    /// Splits this round's `changes` into the ones to apply now and the ones still backing off.
    /// Renewals are never held back. Changes no longer wanted are forgotten.
    pub fn due(&mut self, changes: Vec<Change>, now: Instant) -> (Vec<Change>, Vec<Change>) {
        let wanted: Vec<String> = changes.iter().map(key).collect();
        self.failing.retain(|k, _| wanted.contains(k));
        changes.into_iter().partition(|c| {
            matches!(c, Change::Renew(_))
                || self
                    .failing
                    .get(&key(c))
                    .is_none_or(|f| now >= f.not_before)
        })
    }

    /// Records how `change` went: a failure doubles its back-off, a success forgets it.
    pub fn record(&mut self, change: &Change, failed: bool, now: Instant) {
        if matches!(change, Change::Renew(_)) {
            return;
        }
        let k = key(change);
        if !failed {
            self.failing.remove(&k);
            return;
        }
        let backoff = self
            .failing
            .get(&k)
            .map_or(BACKOFF_MIN, |f| (f.backoff * 2).min(BACKOFF_MAX));
        self.failing.insert(
            k,
            Failing {
                backoff,
                not_before: now + backoff,
            },
        );
    }

    /// When the next held-back change is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.failing.values().map(|f| f.not_before).min()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::decide::{AddressKind, DesiredAddress, IFA_F_NOPREFIXROUTE};
    use crate::snapshot::Lifetime;

    fn local(address: &str) -> DesiredAddress {
        DesiredAddress {
            interface: "eth0".into(),
            address: address.parse::<IpAddr>().expect("ip"),
            prefix_len: 24,
            kind: AddressKind::Local,
            flags: IFA_F_NOPREFIXROUTE,
            valid: Lifetime::Seconds(5),
            preferred: Lifetime::Seconds(0),
        }
    }

    #[test]
    fn a_failing_add_backs_off_alone_and_renewals_never_wait() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let bad = Change::Add(local("192.0.2.9"));
        let renew = Change::Renew(local("192.0.2.1"));
        let other = Change::Add(local("192.0.2.2"));
        let round = || vec![bad.clone(), renew.clone(), other.clone()];
        let mut r = Retries::default();

        // Steps: (name, now, applied now, held back); after each the round's outcome is
        // recorded with `bad` failing and everything else succeeding.
        let steps: Vec<(&str, Instant, Vec<&Change>, Vec<&Change>)> = vec![
            ("first try", t0, vec![&bad, &renew, &other], vec![]),
            (
                "inside 250 ms",
                t0 + ms(100),
                vec![&renew, &other],
                vec![&bad],
            ),
            (
                "after 250 ms",
                t0 + ms(250),
                vec![&bad, &renew, &other],
                vec![],
            ),
            (
                "inside 500 ms",
                t0 + ms(700),
                vec![&renew, &other],
                vec![&bad],
            ),
            (
                "after 500 ms",
                t0 + ms(750),
                vec![&bad, &renew, &other],
                vec![],
            ),
        ];
        for (name, now, want_now, want_held) in steps {
            let (now_changes, held) = r.due(round(), now);
            assert_eq!(now_changes.iter().collect::<Vec<_>>(), want_now, "{name}");
            assert_eq!(held.iter().collect::<Vec<_>>(), want_held, "{name}");
            for c in &now_changes {
                r.record(c, c == &bad, now);
            }
        }
        assert_eq!(r.next_due(), Some(t0 + ms(750) + ms(1000)));

        // The back-off stops growing at 5 minutes.
        let mut now = t0;
        for _ in 0..20 {
            r.record(&bad, true, now);
            now += BACKOFF_MAX;
        }
        assert_eq!(r.next_due(), Some(now));

        // Success forgets it; so does a change that is no longer wanted.
        r.record(&bad, false, now);
        assert_eq!(r.next_due(), None);
        r.record(&other, true, now);
        let (_, held) = r.due(vec![bad.clone()], now);
        assert!(held.is_empty());
        assert_eq!(r.next_due(), None, "other is no longer wanted");

        // A failing renewal is not held back either.
        r.record(&renew, true, now);
        assert_eq!(r.due(vec![renew.clone()], now).0, vec![renew]);
    }
}
