//! The per-node Leases as the election reads them: which nodes are alive on this agent's own
//! clock, where they gossip, and what they say they hold. Pure: the clock is passed in.
//!
//! A Lease's renewTime is the writer's clock, so it is data, not a clock (`api::node_lease`):
//! a Lease counts as alive for its duration from the moment this agent saw its record change,
//! as client-go's leader election does; one seen for the first time counts only while its
//! renewTime is in the plausible recent past.
//!
//! Leases are judged as of the last moment this agent saw its own Lease renewed: the last moment
//! its view is known to have worked (the watch delivers in order, so every renewal written
//! before its own had arrived by then). When the view stops (the API server or the watch is
//! down), the others' renewals stop with it, not the others: judged as of `now`, a node whose
//! last renewal was seen a little before this agent's own would run out first and drop from the
//! election for those seconds. So an API outage takes no node out; a node that stops renewing
//! while the view works is gone at most one renewal interval later than on the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferrolb_api::node_lease::{MAX_DURATION_SECS, NodeLease, Renewal};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A node whose per-node Lease is alive, as its Lease describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedNode {
    pub node: String,
    /// Where it gossips (`ferrolb.io/gossip-addr`), when that parses.
    pub gossip_addr: Option<SocketAddr>,
    /// The local addresses it says it holds.
    pub holding: BTreeSet<IpAddr>,
    /// It holds more than the Lease lists.
    pub holding_truncated: bool,
}

impl LeasedNode {
    /// Its Lease says (or, truncated, may say) that it holds `addr`.
    pub fn may_hold(&self, addr: IpAddr) -> bool {
        self.holding_truncated || self.holding.contains(&addr)
    }
}

/// When this agent saw each Lease's renewal record change.
#[derive(Clone, Debug, Default)]
pub struct LeaseClock {
    /// Lease name → (the record, when it was seen, seen on the first sighting).
    seen: BTreeMap<String, (Renewal, Timestamp, bool)>,
    /// When this agent last saw its own renewal, and when that renewal ran out.
    own: Option<(Timestamp, Option<Timestamp>)>,
    /// (when its own renewal was seen again after it had run out, the moment the view had
    /// stopped at): a Lease alive at that moment gets one duration from the return to show a
    /// renewal (none could renew during the outage, and they come back one by one).
    resumed: Option<(Timestamp, Timestamp)>,
}

impl LeaseClock {
    /// The nodes whose per-node Lease is alive at `now` (this agent's clock; see the module's
    /// doc for `me`, this node). Other Leases of the namespace (the allocator's) and Leases that
    /// cannot be believed are no nodes.
    pub fn alive(&mut self, leases: &[Arc<Lease>], me: &str, now: Timestamp) -> Vec<LeasedNode> {
        let mut judged = Vec::new();
        let mut listed = BTreeSet::new();
        for l in leases {
            let Some(name) = l.metadata.name.clone() else {
                continue;
            };
            let Some(lease) = NodeLease::from_lease(l) else {
                continue;
            };
            let spec = l.spec.as_ref();
            let renewal = Renewal {
                holder: spec.and_then(|s| s.holder_identity.clone()),
                renewed: lease.renewed,
                duration: spec
                    .and_then(|s| s.lease_duration_seconds)
                    .map(i64::from)
                    .filter(|d| (1..=MAX_DURATION_SECS).contains(d))
                    .map(SignedDuration::from_secs),
            };
            listed.insert(name.clone());
            let (record, seen, first) = self
                .seen
                .entry(name)
                .and_modify(|(r, seen, first)| {
                    if *r != renewal {
                        *r = renewal.clone();
                        *seen = now;
                        *first = false;
                    }
                })
                .or_insert_with(|| (renewal.clone(), now, true));
            let expiry = record.expiry(*seen, *first);
            let duration = record.duration;
            judged.push((
                expiry.map(|e| (e, duration)),
                (lease.node == me).then_some(*seen),
                LeasedNode {
                    node: lease.node,
                    gossip_addr: lease.gossip_addr.as_deref().and_then(|a| a.parse().ok()),
                    holding: lease.holding,
                    holding_truncated: lease.holding_truncated,
                },
            ));
        }
        self.seen.retain(|name, _| listed.contains(name));
        let own = judged
            .iter()
            .find_map(|(e, own, _)| own.map(|seen| (seen, e.map(|(e, _)| e))));
        if let (Some((seen, _)), Some((before, ran_out))) = (own, self.own)
            && seen != before
            && ran_out.is_some_and(|r| seen > r)
        {
            self.resumed = Some((seen, before));
        }
        self.own = own;
        let horizon = own.map_or(now, |(seen, _)| seen.min(now));
        let resumed = self.resumed;
        judged
            .into_iter()
            .filter(|(e, _, _)| {
                e.is_some_and(|(e, duration)| {
                    let grace = resumed
                        .filter(|(_, frozen)| e > *frozen)
                        .and_then(|(r, _)| duration.and_then(|d| r.checked_add(d).ok()));
                    e > horizon || grace.is_some_and(|g| g > now)
                })
            })
            .map(|(_, _, n)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::contracts::lease;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn lease(name: &str, renewed: Timestamp, holding: &str) -> Arc<Lease> {
        Arc::new(Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    [
                        (lease::GOSSIP_ADDR.to_string(), "192.0.2.1:7947".to_string()),
                        (lease::HOLDING.to_string(), holding.to_string()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: name.strip_prefix("ferrolb-node-").map(Into::into),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        })
    }

    fn names(nodes: &[LeasedNode]) -> Vec<&str> {
        nodes.iter().map(|n| n.node.as_str()).collect()
    }

    #[test]
    fn only_fresh_per_node_leases_are_nodes() {
        let now = Timestamp::now();
        let secs = SignedDuration::from_secs;
        let leases = [
            lease("ferrolb-node-a", now, "192.0.2.100"),
            lease("ferrolb-node-b", now - secs(20), ""),
            lease("ferrolb-allocator", now, ""),
            lease("ferrolb-node-future", now + secs(3600 * 24 * 365), ""),
        ];
        let nodes = LeaseClock::default().alive(&leases, "me", now);
        assert_eq!(
            names(&nodes),
            ["a"],
            "stale, foreign and far-future Leases are no nodes"
        );
        assert_eq!(
            nodes[0].gossip_addr,
            Some("192.0.2.1:7947".parse().expect("addr"))
        );
        assert!(nodes[0].may_hold("192.0.2.100".parse().expect("ip")));
        assert!(!nodes[0].may_hold("192.0.2.101".parse().expect("ip")));
    }

    #[test]
    fn liveness_runs_on_the_readers_clock() {
        let t0 = Timestamp::now();
        let secs = SignedDuration::from_secs;
        let mut clock = LeaseClock::default();
        // A writer whose clock is 10 min behind: its renewals still count once seen to change.
        let behind = t0 - secs(600);
        assert!(
            clock
                .alive(&[lease("ferrolb-node-a", behind, "")], "me", t0)
                .is_empty()
        );
        let renewed = [lease("ferrolb-node-a", behind + secs(5), "")];
        assert_eq!(names(&clock.alive(&renewed, "me", t0 + secs(5))), ["a"]);
        assert_eq!(names(&clock.alive(&renewed, "me", t0 + secs(19))), ["a"]);
        // No renewal seen for its duration: gone, whatever its renewTime says.
        assert!(clock.alive(&renewed, "me", t0 + secs(20)).is_empty());
    }

    /// With the API server down, no Lease is seen renewed, this agent's own neither: the
    /// others stay as they were at the last renewal of its own it saw, so an outage takes no
    /// node out of the election. A node whose Lease stops while its own goes on is gone.
    #[test]
    fn an_api_outage_takes_no_node_out() {
        let t0 = Timestamp::now();
        let secs = SignedDuration::from_secs;
        let mut clock = LeaseClock::default();
        // c stopped renewing at t0, long before the outage.
        let dead = lease("ferrolb-node-c", t0, "");
        let at = |t: Timestamp| {
            [
                lease("ferrolb-node-me", t, ""),
                lease("ferrolb-node-b", t, ""),
                dead.clone(),
            ]
        };
        assert_eq!(names(&clock.alive(&at(t0), "me", t0)), ["me", "b", "c"]);
        // me and b renew every 5 s; c does not.
        for t in [5, 10, 15] {
            clock.alive(&at(t0 + secs(t)), "me", t0 + secs(t));
        }
        let before = at(t0 + secs(20));
        assert_eq!(
            names(&clock.alive(&before, "me", t0 + secs(20))),
            ["me", "b"]
        );
        clock.alive(&at(t0 + secs(25)), "me", t0 + secs(25));
        // Renewals seen until t0 + 30 s, then nothing more (the watch is down).
        let last = at(t0 + secs(30));
        assert_eq!(names(&clock.alive(&last, "me", t0 + secs(30))), ["me", "b"]);
        for later in [30, 60, 600] {
            assert_eq!(
                names(&clock.alive(&last, "me", t0 + secs(later))),
                ["me", "b"],
                "{later} s"
            );
        }
        // Its own Lease renewed again, b's not yet: b renews after the outage too, one by one,
        // so it has one duration (15 s) from the return to show it.
        let back = [
            lease("ferrolb-node-me", t0 + secs(600), ""),
            lease("ferrolb-node-b", t0 + secs(30), ""),
            dead.clone(),
        ];
        let mut at = |s: i64| names(&clock.alive(&back, "me", t0 + secs(s))).join(",");
        assert_eq!(
            at(600),
            "me,b",
            "just back: b's renewal may not be through yet; c was gone before the outage"
        );
        assert_eq!(at(614), "me,b");
        // b never renewed after the return: gone one duration after it.
        assert_eq!(at(616), "me");
    }

    /// The outage starts between two renewals: b's last renewal was seen 4 s before this
    /// agent's own. b's Lease runs out 4 s before its own does; in those 4 s b must not count as
    /// gone (its renewals stopped because the view did, not because b did), or this agent
    /// elects itself for what b holds and gives it back 4 s later.
    #[test]
    fn a_renewal_seen_just_before_the_outage_keeps_the_node_in() {
        let t0 = Timestamp::now();
        let secs = SignedDuration::from_secs;
        let mut clock = LeaseClock::default();
        let view = |me: i64, b: i64| {
            [
                lease("ferrolb-node-me", t0 + secs(me), ""),
                lease("ferrolb-node-b", t0 + secs(b), ""),
            ]
        };
        assert_eq!(names(&clock.alive(&view(0, 0), "me", t0)), ["me", "b"]);
        // b renews at 1, 6, 11, ...; this agent at 0, 5, 10, ...: the last ones seen before the
        // outage are b's at 1 and its own at 5.
        assert_eq!(
            names(&clock.alive(&view(0, 1), "me", t0 + secs(1))),
            ["me", "b"]
        );
        let last = view(5, 1);
        assert_eq!(names(&clock.alive(&last, "me", t0 + secs(5))), ["me", "b"]);
        for later in 6..=40 {
            assert_eq!(
                names(&clock.alive(&last, "me", t0 + secs(later))),
                ["me", "b"],
                "{later} s"
            );
        }
        // A node that does stop renewing while this agent's view works is gone one duration
        // after its last renewal was seen, give or take one of this agent's own renewals.
        let mut clock = LeaseClock::default();
        let mut at =
            |s: i64| names(&clock.alive(&view(s / 5 * 5, 1), "me", t0 + secs(s))).join(",");
        assert_eq!(at(1), "me,b");
        assert_eq!(at(15), "me,b");
        assert_eq!(at(22), "me", "b last renewed at 1");
    }
}
