//! Per-node Leases as this allocator sees them: read without a typed schema (one Lease the API
//! server accepts but this side cannot parse must not stop the watch of the others), and judged
//! alive on this allocator's clock, from when a renewal was seen (see
//! [`ferrolb_api::node_lease`]). Bad Leases are ignored with a warning that names them.

use std::collections::HashMap;
use std::sync::Arc;

use ferrolb_api::node_lease::{NodeLease, Renewal};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DynamicObject;

/// When this allocator saw a Lease's current renewal record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sighting {
    renewal: Renewal,
    seen: Timestamp,
    /// Nothing earlier to compare with: `seen` is when it was first read, not a renewal.
    first: bool,
}

/// Per Lease name, the renewal last seen and when; per bad Lease, why (told once).
#[derive(Debug, Default)]
pub struct Sightings {
    seen: HashMap<String, Sighting>,
    bad: HashMap<String, String>,
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
        });
        if sighting.renewal != renewal {
            // A change is a renewal, whatever the writer's clock says about it.
            *sighting = Sighting {
                renewal,
                seen: now,
                first: false,
            };
        }
        lease.expires = sighting.renewal.expiry(sighting.seen, sighting.first);
        if sighting.first
            && let Some(ahead) = sighting.renewal.ahead(now)
        {
            tracing::debug!(node = %lease.node, ?ahead, "per-node Lease renewed ahead of this clock; alive once a renewal is seen");
        }
        Some(lease)
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

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
}
