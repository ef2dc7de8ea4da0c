//! Per-node Leases as this allocator sees them: read without a typed schema (one Lease the API
//! server accepts but this side cannot parse must not stop the watch of the others), and judged
//! alive on this allocator's clock, from when a renewal was seen (see
//! [`ferrolb_api::node_lease`]). Bad Leases are ignored with a warning that names them.

use std::collections::HashMap;
use std::sync::Arc;

use ferrolb_api::node_lease::{NodeLease, Renewal};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::core::DynamicObject;

/// What a Lease watch event says about this reader's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A list is about to be asked for (kube's `Event::Init`).
    ListStarts,
    /// The API server answered: an object, a deletion, or the end of a list.
    Answered,
    /// The watch or list failed.
    Failed,
}

/// When this allocator saw a Lease's current renewal record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sighting {
    renewal: Renewal,
    seen: Timestamp,
    /// Nothing earlier to compare with: `seen` is when it was first read, not a renewal.
    first: bool,
    /// Time since `seen` during which the watch was broken: it does not count against the
    /// Lease (a renewal made then could not have been seen).
    blind: SignedDuration,
}

/// Per Lease name, the renewal last seen and when; per bad Lease, why (told once).
#[derive(Debug, Default)]
pub struct Sightings {
    seen: HashMap<String, Sighting>,
    bad: HashMap<String, String>,
    /// Since when the watch has been broken, while it is.
    blind_since: Option<Timestamp>,
    /// When the watch first delivered: a Lease first seen gives its node until one duration
    /// after that to show a renewal.
    started: Option<Timestamp>,
}

impl Sightings {
    /// Records what a watch event (or a pass) shows of `o` at `now`; returns the per-node Lease
    /// with its expiry judged on this clock. `None` for other Leases and for bad ones (warned
    /// about once per reason).
    pub fn observe(&mut self, o: &DynamicObject, now: Timestamp) -> Option<NodeLease> {
        let name = o.name_any();
        let (mut lease, renewal) = match NodeLease::from_object(o)? {
            Ok(read) => read,
            Err(bad) => {
                self.seen.remove(&name);
                if self.bad.get(&name) != Some(&bad.why) {
                    tracing::warn!(
                        lease = %name,
                        namespace = o.namespace().unwrap_or_default(),
                        why = %bad.why,
                        "ignoring a per-node Lease: its node counts as not alive until the Lease is fixed"
                    );
                    self.bad.insert(name, bad.why);
                }
                return None;
            }
        };
        self.bad.remove(&name);
        let sighting = self.seen.entry(name).or_insert_with(|| Sighting {
            renewal: renewal.clone(),
            seen: now,
            first: true,
            blind: SignedDuration::ZERO,
        });
        if sighting.renewal != renewal {
            // A change is a renewal, whatever the writer's clock says about it.
            *sighting = Sighting {
                renewal,
                seen: now,
                first: false,
                blind: SignedDuration::ZERO,
            };
        }
        let blind = sighting.blind + gap(self.blind_since, now);
        let mut expires = sighting.renewal.expiry(sighting.seen, sighting.first);
        // A reader that has just started cannot tell a dead node from one whose renewals it has
        // not had the time to see (an allocator restarted in an API-server outage meets every
        // Lease as last written before it): a first sighting is alive for one duration from the
        // start. A renewTime that is not believed (far ahead) stays not alive.
        if sighting.first
            && let (Some(e), Some(start)) = (expires, self.started)
        {
            expires = sighting.renewal.expiry(start, false).map(|s| s.max(e));
        }
        lease.expires = expires.and_then(|e| e.checked_add(blind).ok());
        if sighting.first
            && let Some(ahead) = sighting.renewal.ahead(now)
        {
            tracing::debug!(node = %lease.node, ?ahead, "per-node Lease renewed ahead of this clock; alive once a renewal is seen");
        }
        Some(lease)
    }

    /// What the Lease watch said at `now`, as far as being able to see renewals goes.
    pub fn heard(&mut self, what: Heard, now: Timestamp) {
        match what {
            // kube's watcher announces a (re)list before it asks the API server: no proof the
            // server answers. An allocator started in an outage took that for its start, so
            // every Lease it first read after the return had been "dead" for a while.
            Heard::ListStarts => {}
            Heard::Answered => self.watching(now),
            Heard::Failed => self.blind(now),
        }
    }

    /// The watch broke at `now`: until it is back, no renewal can be seen, so the time does not
    /// count against any Lease (an API-server outage is not every node's death).
    pub fn blind(&mut self, now: Timestamp) {
        self.blind_since.get_or_insert(now);
    }

    /// The watch delivers again at `now`: every Lease is credited with the time it was broken.
    pub fn watching(&mut self, now: Timestamp) {
        self.started.get_or_insert(now);
        if let Some(since) = self.blind_since.take() {
            let gap = gap(Some(since), now);
            for s in self.seen.values_mut() {
                s.blind += gap;
            }
        }
    }

    /// Forgets a deleted Lease.
    pub fn forget(&mut self, o: &DynamicObject) {
        let name = o.name_any();
        self.seen.remove(&name);
        self.bad.remove(&name);
    }

    /// The per-node Leases among `objects` (the whole cache), judged at `now`, sorted by node;
    /// what is no longer cached is forgotten.
    pub fn leases(&mut self, objects: &[Arc<DynamicObject>], now: Timestamp) -> Vec<NodeLease> {
        let mut out: Vec<NodeLease> = objects
            .iter()
            .filter_map(|o| self.observe(o, now))
            .collect();
        if self.seen.len() + self.bad.len() > out.len() {
            let cached: std::collections::HashSet<String> =
                objects.iter().map(|o| o.name_any()).collect();
            self.seen.retain(|n, _| cached.contains(n));
            self.bad.retain(|n, _| cached.contains(n));
        }
        // A stable order keeps messages that list nodes stable.
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }
}

/// How long the watch has been broken at `now` (zero when it is not).
fn gap(since: Option<Timestamp>, now: Timestamp) -> SignedDuration {
    since.map_or(SignedDuration::ZERO, |s| {
        now.duration_since(s).max(SignedDuration::ZERO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, renew: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": name, "namespace": "ferrolb-system" },
            "spec": { "holderIdentity": "n", "leaseDurationSeconds": 15, "renewTime": renew },
        }))
        .expect("an object")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn liveness_follows_this_clock_from_the_seen_renewal() {
        let t0 = at("2026-11-30T10:00:00Z");
        let far = "3000-01-01T00:00:00.000000Z";
        let old = "2026-11-30T09:00:00.000000Z";
        // (name, renewTime written at each step, when it is seen, alive until)
        type Step<'a> = (&'a str, i64, Option<Timestamp>);
        let cases: Vec<(&str, Vec<Step>)> = vec![
            (
                "an honest agent first seen is alive for what is left of its duration",
                vec![("2026-11-30T09:59:55.000000Z", 0, Some(t0 + secs(10)))],
            ),
            (
                "a renewTime millennia ahead is not alive when first seen",
                vec![(far, 0, None)],
            ),
            (
                "each seen change of a renewTime millennia ahead lasts one duration from when it was seen",
                vec![
                    (far, 0, None),
                    ("3000-01-01T00:00:05.000000Z", 5, Some(t0 + secs(20))),
                    ("3000-01-01T00:00:05.000000Z", 30, Some(t0 + secs(20))),
                ],
            ),
            (
                "a clock an hour behind counts once its renewals are seen",
                vec![
                    (old, 0, Some(t0 - secs(3585))),
                    ("2026-11-30T09:00:05.000000Z", 5, Some(t0 + secs(20))),
                ],
            ),
        ];
        for (name, steps) in cases {
            let mut s = Sightings::default();
            for (renew, after, want) in steps {
                let got = s
                    .observe(&lease("ferrolb-node-n", renew), t0 + secs(after))
                    .expect("a per-node Lease");
                assert_eq!(got.expires, want, "{name}: {renew} seen after {after}s");
            }
        }
    }

    #[test]
    fn bad_and_foreign_leases_are_skipped_and_forgotten_when_gone() {
        let now = at("2026-11-30T10:00:00Z");
        let objects: Vec<Arc<DynamicObject>> = [
            lease("ferrolb-node-b", "2026-11-30T09:59:59.000000Z"),
            lease("ferrolb-node-bad", "9999-12-31T23:59:59.999999Z"),
            lease("ferrolb-node-edge", "9999-12-30T21:59:59.000000Z"),
            lease("ferrolb-node-a", "not a time"),
            lease("ferrolb-allocator", "9999-12-31T23:59:59.999999Z"),
            lease("ferrolb-node-c", "2026-11-30T09:59:59.000000Z"),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let mut s = Sightings::default();
        let nodes = |l: Vec<NodeLease>| l.into_iter().map(|l| l.node).collect::<Vec<_>>();
        assert_eq!(nodes(s.leases(&objects, now)), ["b", "c"]);
        assert_eq!(s.bad.len(), 3);
        assert_eq!(nodes(s.leases(&objects[..1], now)), ["b"]);
        assert!(s.bad.is_empty() && s.seen.len() == 1, "{s:?}");
    }

    #[test]
    fn time_without_the_watch_does_not_count_against_a_lease() {
        let t0 = at("2026-11-30T10:00:00Z");
        let s = secs;
        let (r0, r1) = ("2026-11-30T09:59:59.000000Z", "2026-11-30T10:01:20.000000Z");
        let mut sightings = Sightings::default();
        // Seen at t0, renewed at t0+3; then the API server goes away at t0+5 for 60 s.
        sightings.observe(&lease("ferrolb-node-n", r0), t0);
        let renewed = "2026-11-30T10:00:03.000000Z";
        let expires = |sightings: &mut Sightings, renew: &str, at: i64| {
            sightings
                .observe(&lease("ferrolb-node-n", renew), t0 + s(at))
                .expect("a per-node Lease")
                .expires
        };
        assert_eq!(expires(&mut sightings, renewed, 3), Some(t0 + s(18)));
        sightings.blind(t0 + s(5));
        // While blind, the Lease keeps what it had left when the watch broke.
        let during = expires(&mut sightings, renewed, 40).expect("alive");
        assert!(
            during > t0 + s(40),
            "alive while nothing can be seen: {during}"
        );
        // Back at t0+65: the 60 s do not count; 13 s were left, so alive until t0+78.
        sightings.watching(t0 + s(65));
        assert_eq!(expires(&mut sightings, renewed, 70), Some(t0 + s(78)));
        // A node that really died stays dead once that time has passed too.
        assert_eq!(expires(&mut sightings, renewed, 80), Some(t0 + s(78)));
        // A renewal seen after the return counts from when it is seen, credit gone.
        assert_eq!(expires(&mut sightings, r1, 81), Some(t0 + s(96)));
    }

    /// A fresh-clone run: an allocator restarted 11 s into a 60 s outage reported a node's
    /// address "no longer announced", its Lease "expired" 15 s after the restart: the watcher's
    /// announcements of a list (before each failed attempt) counted as the reader's start.
    #[test]
    fn a_reader_started_in_an_outage_starts_when_the_api_server_answers() {
        let t0 = at("2026-11-30T10:00:00Z");
        let mut s = Sightings::default();
        for at in [0, 1, 5, 9] {
            s.heard(Heard::ListStarts, t0 + secs(at));
            s.heard(Heard::Failed, t0 + secs(at));
        }
        s.heard(Heard::ListStarts, t0 + secs(50));
        s.heard(Heard::Answered, t0 + secs(50));
        let old = lease("ferrolb-node-n", "2026-11-30T09:59:48.000000Z");
        let expires = s
            .observe(&old, t0 + secs(50))
            .expect("a per-node Lease")
            .expires;
        assert_eq!(expires, Some(t0 + secs(65)), "one duration from the answer");
    }

    #[test]
    fn a_lease_first_seen_by_a_starting_reader_is_alive_for_one_duration_from_the_start() {
        let t0 = at("2026-11-30T10:00:00Z");
        let mut s = Sightings::default();
        // Started (first list) at t0, in or right after an outage: the last renewal is 70 s old.
        s.watching(t0);
        let old = lease("ferrolb-node-n", "2026-11-30T09:58:50.000000Z");
        let expires = |s: &mut Sightings, l: &DynamicObject, at: i64| {
            s.observe(l, t0 + secs(at))
                .expect("a per-node Lease")
                .expires
        };
        assert_eq!(expires(&mut s, &old, 0), Some(t0 + secs(15)));
        // Not renewed within that duration: dead from then on.
        assert_eq!(expires(&mut s, &old, 20), Some(t0 + secs(15)));
        // One renewed recently keeps what its own renewal gives, if that is later.
        let fresh = lease("ferrolb-node-m", "2026-11-30T10:00:09.000000Z");
        assert_eq!(expires(&mut s, &fresh, 10), Some(t0 + secs(24)));
        // A renewTime far ahead is still not believed.
        let far = lease("ferrolb-node-f", "3000-01-01T00:00:00.000000Z");
        assert_eq!(expires(&mut s, &far, 0), None);
    }
}
