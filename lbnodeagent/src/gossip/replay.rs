//! Which authenticated datagrams are fresh: within [`MAX_AGE`] of this node's clock, and not
//! seen before. Pure: the clock is passed in; memory is bounded.
//!
//! Per sender it keeps the sequence numbers (the sender's clock in microseconds) accepted
//! within the last [`MAX_AGE`], above a floor below which everything is refused. Older ones
//! fall out (they are stale anyway) and raise the floor; so do the oldest when a sender has
//! more than [`PER_SENDER`], and a whole sender when there are more than [`SENDERS`]: a new
//! sender then starts at the evicted one's floor. So a datagram is never accepted twice; the
//! price of the bounds is that a datagram overtaken by [`PER_SENDER`] newer ones is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How far a datagram's time may be from the receiver's clock (either way): nodes run NTP, and
/// the Kubernetes control plane itself breaks long before their clocks are 10 s apart.
pub const MAX_AGE: Duration = Duration::from_secs(10);
/// Sequence numbers kept per sender (a peer sends a node a few datagrams per 50 ms round).
pub const PER_SENDER: usize = 4096;
/// Senders kept.
pub const SENDERS: usize = 1024;

/// What became of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fresh,
    /// Its time is more than [`MAX_AGE`] from the receiver's clock.
    Stale,
    /// Seen before, or older than what this guard still remembers for its sender.
    Replayed,
}

#[derive(Clone, Debug, Default)]
struct Seen {
    /// Everything at or below is refused.
    floor: u64,
    recent: BTreeSet<u64>,
}

/// Fresh or not, per sender (see the module's doc).
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    senders: BTreeMap<String, Seen>,
    /// Where a sender not (or no longer) known starts.
    floor: u64,
}

impl ReplayGuard {
    /// Judges (and, when fresh, records) datagram `seq` of `node` at `now` (microseconds).
    pub fn check(&mut self, node: &str, seq: u64, now: u64) -> Verdict {
        let max_age = u64::try_from(MAX_AGE.as_micros()).expect("10 s in µs fits");
        if seq.abs_diff(now) > max_age {
            return Verdict::Stale;
        }
        if !self.senders.contains_key(node) && self.senders.len() >= SENDERS {
            self.evict();
        }
        let floor = self.floor;
        let seen = self
            .senders
            .entry(node.to_string())
            .or_insert_with(|| Seen {
                floor,
                recent: BTreeSet::new(),
            });
        // Stale entries go: refused by their time anyway.
        let oldest = now.saturating_sub(max_age);
        while let Some(&first) = seen.recent.first()
            && first < oldest
        {
            seen.recent.pop_first();
            seen.floor = seen.floor.max(first);
        }
        if seq <= seen.floor || !seen.recent.insert(seq) {
            return Verdict::Replayed;
        }
        while seen.recent.len() > PER_SENDER {
            if let Some(first) = seen.recent.pop_first() {
                seen.floor = seen.floor.max(first);
            }
        }
        Verdict::Fresh
    }

    /// Forgets the sender heard from least recently; new senders start at its last sequence.
    fn evict(&mut self) {
        let quietest = self
            .senders
            .iter()
            .min_by_key(|(_, s)| s.recent.last().copied().unwrap_or(s.floor))
            .map(|(n, s)| (n.clone(), s.recent.last().copied().unwrap_or(s.floor)));
        if let Some((node, last)) = quietest {
            self.senders.remove(&node);
            self.floor = self.floor.max(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn fresh_once_stale_never() {
        let now = 1_700_000_000 * S;
        let mut g = ReplayGuard::default();
        let cases: Vec<(&str, &str, u64, Verdict)> = vec![
            ("first datagram", "a", now, Verdict::Fresh),
            ("the same again", "a", now, Verdict::Replayed),
            ("a later one", "a", now + 10, Verdict::Fresh),
            (
                "an earlier one not seen yet (reordered)",
                "a",
                now - 5,
                Verdict::Fresh,
            ),
            (
                "the same number from another node",
                "b",
                now,
                Verdict::Fresh,
            ),
            ("11 s old", "a", now - 11 * S, Verdict::Stale),
            ("11 s ahead", "a", now + 11 * S, Verdict::Stale),
            ("9 s old, not seen", "c", now - 9 * S, Verdict::Fresh),
        ];
        for (name, node, seq, want) in cases {
            assert_eq!(g.check(node, seq, now), want, "{name}");
        }
        // Later, what aged out is still refused: by its time, or by the floor it raised.
        let later = now + 5 * S;
        assert_eq!(g.check("c", now - 9 * S, later), Verdict::Stale);
        assert_eq!(g.check("a", now, later), Verdict::Replayed);
    }

    #[test]
    fn memory_is_bounded_and_never_lets_a_replay_through() {
        let now = 1_700_000_000 * S;
        let mut g = ReplayGuard::default();
        // One sender sends more than it keeps: the oldest fall below its floor.
        for i in 0..(PER_SENDER as u64 + 10) {
            assert_eq!(g.check("a", now + i, now), Verdict::Fresh);
        }
        assert_eq!(g.senders["a"].recent.len(), PER_SENDER);
        for i in 0..(PER_SENDER as u64 + 10) {
            assert_eq!(g.check("a", now + i, now), Verdict::Replayed, "seq +{i}");
        }
        // More senders than it keeps: the quietest goes, and a datagram of it seen before is
        // still refused (new senders start at its floor).
        for n in 0..SENDERS {
            assert_eq!(
                g.check(&format!("n{n}"), now - 1000 + n as u64, now),
                Verdict::Fresh
            );
        }
        assert!(g.senders.len() <= SENDERS);
        assert!(
            !g.senders.contains_key("n0"),
            "the quietest sender was forgotten"
        );
        assert_eq!(g.check("n0", now - 1000, now), Verdict::Replayed);
    }
}
