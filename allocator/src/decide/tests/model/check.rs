//! The invariants checked after every step of the model.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::contracts::reason;
use ferrolb_api::pool::Family;

use super::{GROUPS, Model, Plan, Shown, addr};

/// Notes of `reason` that the plan tells Service `name`, by address.
fn told(p: &Plan, name_: &str, why: &str) -> Vec<IpAddr> {
    p.services
        .iter()
        .filter(|s| s.key.name == name_)
        .flat_map(|s| s.news.iter())
        .filter(|n| n.reason == why)
        .filter_map(|n| n.message.split(' ').next()?.parse().ok())
        .collect()
}

pub(super) fn check_step(before: &BTreeMap<String, Shown>, model: &Model, p: &Plan) {
    let after = model.shown();
    // One holder per address, unless shared by key within one group.
    let mut users: BTreeMap<IpAddr, Vec<&String>> = BTreeMap::new();
    for (n, s) in &after {
        for a in s.addrs.values() {
            users.entry(*a).or_default().push(n);
        }
    }
    for (a, names) in &users {
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                let (sx, sy) = (&after[*x], &after[*y]);
                assert!(
                    sx.key.is_some() && sx.key == sy.key && sx.from == sy.from,
                    "{a} shown by {x} and {y}, which do not share it legally: {sx:?} {sy:?}"
                );
                let shared_before = [x, y].iter().all(|n| {
                    before.get(**n).is_some_and(|b| {
                        b.uid == after[**n].uid && b.addrs.values().any(|b| b == a)
                    })
                });
                if !shared_before {
                    assert!(
                        sx.ports.is_disjoint(&sy.ports),
                        "{a} newly shared by {x} and {y} whose ports collide"
                    );
                }
            }
        }
    }
    for (n, s) in &after {
        let old = before.get(n).filter(|b| b.uid == s.uid);
        // Stability: a held family keeps its address unless the user asked otherwise.
        if let Some(old) = old {
            for (f, a) in &old.addrs {
                if let Some(b) = s.addrs.get(f) {
                    // A request that could not be met before may be met now.
                    let requested = model
                        .user
                        .services
                        .iter()
                        .flatten()
                        .find(|u| u.uid == s.uid)
                        .and_then(|u| u.spec.requested(*f == Family::V6))
                        .is_some_and(|r| addr(*f == Family::V6, r) == *b);
                    // Another group (asked for now or before, when it did not exist yet).
                    let regrouped = old.from != s.from;
                    // It dropped or changed the key it shared the address under; or a
                    // Service it shared with switched to another key: the state alone does not
                    // tell which of the two changed, and the older keeps the address.
                    let rekeyed = old.key != s.key
                        || before.iter().any(|(m, o)| {
                            m != n
                                && o.addrs.values().any(|x| x == a)
                                && after.get(m).is_some_and(|now| {
                                    now.uid == o.uid && now.key.is_some() && now.key != o.key
                                })
                        });
                    assert!(
                        a == b || requested || regrouped || rekeyed,
                        "{n} moved from {a} to {b} without being asked"
                    );
                }
            }
        }
        let had: BTreeSet<IpAddr> = old
            .map(|o| o.addrs.values().copied().collect())
            .unwrap_or_default();
        let has: BTreeSet<IpAddr> = s.addrs.values().copied().collect();
        // Told exactly once.
        let mut released = told(p, n, reason::ADDRESS_RELEASED);
        released.sort();
        let want: Vec<IpAddr> = had.difference(&has).copied().collect();
        assert_eq!(
            released, want,
            "{n}: release told for {released:?}, released {want:?}"
        );
        let mut allocated = told(p, n, reason::ADDRESS_ALLOCATED);
        allocated.sort();
        // A Service that moved to another group got all it shows from there, even an address
        // it asked to keep.
        let moved = old.is_some_and(|o| o.from.is_some() && o.from != s.from);
        let want: Vec<IpAddr> = if moved {
            has.iter().copied().collect()
        } else {
            has.difference(&had).copied().collect()
        };
        assert_eq!(
            allocated, want,
            "{n}: allocation told for {allocated:?}, got {want:?}"
        );
        // A new address comes from its group's current pools.
        for a in has.difference(&had) {
            let g = s
                .from
                .as_deref()
                .and_then(|f| GROUPS.iter().position(|n| *n == f))
                .and_then(|g| model.user.groups[g].as_ref());
            let Some((spec, _)) = g else {
                panic!("{n} got {a} from no group we know: {:?}", s.from);
            };
            // Or it joins an address its sharing key is bound to, in the pool or not.
            let joined = before.iter().any(|(m, b)| {
                m != n
                    && b.addrs.values().any(|b| b == a)
                    && after.get(m).is_some_and(|now| {
                        now.uid == b.uid
                            && now.key.is_some()
                            && now.key == s.key
                            && now.from == s.from
                            && now.addrs.values().any(|x| x == a)
                    })
            });
            assert!(
                spec.may_hand_out(*a) || joined,
                "{n} got {a}, which {spec:?} does not hand out"
            );
        }
    }
}
