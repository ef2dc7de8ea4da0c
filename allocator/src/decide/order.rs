//! The order of a pass's Service writes. Writes run concurrently, but an address given up by
//! one Service in a pass and taken by another must leave the first Service's status before it
//! shows up in the second's: no two Services ever show an address they do not share.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::Plan;
use crate::observe::SvcView;

/// The Service writes of one pass in two rounds. Indices are into `Plan::services`; plans of
/// Services not in the snapshot appear in neither round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rounds {
    /// Written first, all at once. `None`: the whole plan (the Service takes no address another
    /// Service gives up in this pass). `Some(kept)`: only the release, the status showing the
    /// addresses it keeps; the whole plan follows in the second round.
    pub first: Vec<(usize, Option<Vec<IpAddr>>)>,
    /// Written after the first round: Services taking an address given up by the Services
    /// listed. Skipped (and retried) when one of those releases was not written.
    pub second: Vec<(usize, Vec<usize>)>,
}

/// Splits the pass's writes so that every release is written before the address is reused.
/// `current` finds a plan's Service in the snapshot.
pub fn rounds<'a>(plan: &Plan, current: impl Fn(&str) -> Option<&'a SvcView>) -> Rounds {
    let shown: Vec<Option<&SvcView>> = plan.services.iter().map(|p| current(&p.uid)).collect();
    // Who gives up which address in this pass.
    let mut releasers: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (i, (p, s)) in plan.services.iter().zip(&shown).enumerate() {
        let Some(s) = s else { continue };
        for a in s.ingress.iter().filter(|a| !p.ingress.contains(a)) {
            releasers.entry(*a).or_default().push(i);
        }
    }
    let mut out = Rounds::default();
    for (i, (p, s)) in plan.services.iter().zip(&shown).enumerate() {
        let Some(s) = s else { continue };
        let waits: BTreeSet<usize> = p
            .ingress
            .iter()
            .filter(|a| !s.ingress.contains(a))
            .filter_map(|a| releasers.get(a))
            .flatten()
            .copied()
            .filter(|r| *r != i)
            .collect();
        if waits.is_empty() {
            out.first.push((i, None));
            continue;
        }
        let kept: Vec<IpAddr> = s
            .ingress
            .iter()
            .filter(|a| p.ingress.contains(a))
            .copied()
            .collect();
        if kept.len() < s.ingress.len() {
            out.first.push((i, Some(kept)));
        }
        out.second.push((i, waits.into_iter().collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::SvcPlan;

    fn view(uid: &str, ingress: &[&str]) -> SvcView {
        SvcView {
            uid: uid.into(),
            ingress: ingress
                .iter()
                .map(|a| a.parse().expect("an address"))
                .collect(),
            ..Default::default()
        }
    }

    fn planned(uid: &str, ingress: &[&str]) -> SvcPlan {
        SvcPlan {
            uid: uid.into(),
            ingress: ingress
                .iter()
                .map(|a| a.parse().expect("an address"))
                .collect(),
            ..Default::default()
        }
    }

    fn run(services: &[SvcView], plan: Vec<SvcPlan>) -> Rounds {
        let plan = Plan {
            services: plan,
            groups: Vec::new(),
        };
        rounds(&plan, |uid| services.iter().find(|s| s.uid == uid))
    }

    #[test]
    fn without_reuse_everything_is_one_round() {
        let services = [view("a", &["192.0.2.1"]), view("b", &[]), view("c", &[])];
        let r = run(
            &services,
            vec![
                planned("a", &["192.0.2.1"]),
                planned("b", &["192.0.2.2"]),
                planned("c", &["192.0.2.3"]),
                planned("gone", &["192.0.2.4"]),
            ],
        );
        assert_eq!(r.first, vec![(0, None), (1, None), (2, None)]);
        assert!(r.second.is_empty());
    }

    #[test]
    fn a_reused_address_waits_for_its_release() {
        // a goes from dual- to single-stack; b gets a's IPv6 address in the same pass.
        let services = [view("a", &["192.0.2.1", "2001:db8::1"]), view("b", &[])];
        let r = run(
            &services,
            vec![planned("a", &["192.0.2.1"]), planned("b", &["2001:db8::1"])],
        );
        assert_eq!(r.first, vec![(0, None)]);
        assert_eq!(r.second, vec![(1, vec![0])]);
    }

    #[test]
    fn a_swap_releases_both_first() {
        // Both change groups and each gets the other's address.
        let services = [view("a", &["192.0.2.1"]), view("b", &["192.0.2.2"])];
        let r = run(
            &services,
            vec![planned("a", &["192.0.2.2"]), planned("b", &["192.0.2.1"])],
        );
        assert_eq!(r.first, vec![(0, Some(vec![])), (1, Some(vec![]))]);
        assert_eq!(r.second, vec![(0, vec![1]), (1, vec![0])]);
    }

    #[test]
    fn a_release_only_write_keeps_the_other_family() {
        // c gives up 192.0.2.5; a moves from 192.0.2.1 to it and keeps its IPv6 address.
        let services = [
            view("a", &["192.0.2.1", "2001:db8::1"]),
            view("c", &["192.0.2.5"]),
        ];
        let r = run(
            &services,
            vec![
                planned("a", &["192.0.2.5", "2001:db8::1"]),
                planned("c", &[]),
            ],
        );
        let kept: Vec<IpAddr> = vec!["2001:db8::1".parse().expect("an address")];
        assert_eq!(r.first, vec![(0, Some(kept)), (1, None)]);
        assert_eq!(r.second, vec![(0, vec![1])]);
    }
}
