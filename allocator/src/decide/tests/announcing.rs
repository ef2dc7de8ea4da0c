//! The announcing annotations from the per-node Leases, HolderChanged and NoCandidate.

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{lease as l, reason};

use super::*;

fn holding(node: &str, ago: i64, addrs: &str) -> NodeLease {
    lease(
        node,
        ago,
        &[
            (l::HOLDING, addrs),
            (l::INTERFACE_V4, "eth0"),
            (l::INTERFACE_V6, "eth1"),
            (l::SUBNETS, "192.0.2.0/24 2001:db8::/64"),
            (l::ELIGIBLE, "true"),
        ],
    )
}

fn world(leases: Vec<NodeLease>) -> World {
    let mut w = World::new(
        &[small("g")],
        &[svc("a").group("g").dual("RequireDualStack")],
    );
    w.snap.nodes = leases.iter().map(|l| l.node.clone()).collect();
    w.snap.leases = leases;
    w
}

#[test]
fn mirrors_the_holders_of_local_addresses() {
    let mut w = world(vec![
        holding("n1", 1, "192.0.2.10"),
        holding("n2", 1, "192.0.2.10 2001:db8::10"),
        holding("n3", 60, "2001:db8::10"),
    ]);
    let p = w.pass();
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV4).as_deref(),
        Some("n1,eth0,192.0.2.10 n2,eth0,192.0.2.10")
    );
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV6).as_deref(),
        Some("n2,eth1,2001:db8::10")
    );
    assert_eq!(w.written("a", ann::POOL_TYPE).as_deref(), Some("local"));
    assert!(
        all_problems(&p, "a").is_empty(),
        "{:?}",
        of(&p, "a").problems
    );
    w.snap.leases = vec![holding("n3", 1, "192.0.2.10")];
    w.snap.nodes.insert("n3".into());
    let p = w.pass();
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV4).as_deref(),
        Some("n3,eth0,192.0.2.10")
    );
    assert_eq!(w.written("a", ann::ANNOUNCING_IPV6), None);
    let news: Vec<&str> = of(&p, "a").news.iter().map(|n| n.reason).collect();
    assert_eq!(news, vec![reason::HOLDER_CHANGED, reason::HOLDER_CHANGED]);
}

#[test]
fn says_why_an_address_is_no_longer_announced() {
    let cases: Vec<(&str, Vec<NodeLease>, bool, &str)> = vec![
        ("lease gone", vec![], true, "n1 has no per-node Lease"),
        (
            "lease expired",
            vec![holding("n1", 60, "192.0.2.10")],
            true,
            "n1's per-node Lease expired at ",
        ),
        (
            "node gone",
            vec![holding("n1", 1, "192.0.2.10")],
            false,
            "n1's Node is gone",
        ),
        (
            "address dropped",
            vec![holding("n1", 1, "")],
            true,
            "n1's per-node Lease no longer lists it",
        ),
    ];
    for (name, leases, node_exists, want) in cases {
        let mut w = world(vec![holding("n1", 1, "192.0.2.10")]);
        w.pass();
        w.snap.leases = leases;
        if !node_exists {
            w.snap.nodes.clear();
        }
        let p = w.pass();
        let told: Vec<&str> = of(&p, "a")
            .news
            .iter()
            .filter(|n| n.reason == reason::HOLDER_CHANGED)
            .map(|n| n.message.as_str())
            .collect();
        assert!(
            told.len() == 1
                && told[0].contains("is no longer announced (was n1): ")
                && told[0].contains(want),
            "{name}: {told:?}"
        );
    }
}

#[test]
fn tells_when_no_node_can_announce() {
    let cases: Vec<(&str, Vec<NodeLease>, bool)> = vec![
        ("no agents", vec![], true),
        ("expired lease", vec![holding("n1", 60, "")], true),
        (
            "ineligible",
            vec![lease(
                "n1",
                1,
                &[
                    (l::ELIGIBLE, "false,not-ready"),
                    (l::SUBNETS, "192.0.2.0/24 2001:db8::/64"),
                ],
            )],
            true,
        ),
        (
            "no subnet",
            vec![lease("n1", 1, &[(l::SUBNETS, "198.51.100.0/24")])],
            true,
        ),
        ("a candidate", vec![holding("n1", 1, "")], false),
    ];
    for (name, leases, none) in cases {
        let mut w = world(leases);
        let p = w.pass();
        assert_eq!(
            all_problems(&p, "a").contains(&reason::NO_CANDIDATE),
            none,
            "{name}: {:?}",
            of(&p, "a").problems
        );
    }
}

#[test]
fn local_traffic_policy_needs_a_ready_endpoint_on_the_candidate() {
    let mut w = World::new(&[small("g")], &[svc("a").group("g").local("web")]);
    w.snap.leases = vec![holding("n1", 1, "")];
    w.snap.nodes = ["n1".to_string()].into();
    let p = w.pass();
    assert!(all_problems(&p, "a").contains(&reason::NO_CANDIDATE));
    w.snap
        .endpoints
        .insert(ObjKey::new("ns", "a"), ["n1".to_string()].into());
    let p = w.pass();
    assert!(!all_problems(&p, "a").contains(&reason::NO_CANDIDATE));
}

#[test]
fn counts_the_nodes_of_virtual_addresses() {
    let g = group("g").v4("203.0.113.0/24", "203.0.113.0/28").virtual_();
    let mut w = World::new(&[g], &[svc("a").group("g")]);
    w.snap.leases = vec![
        lease("n1", 1, &[(l::VIRTUAL_COUNT, "3")]),
        lease("n2", 1, &[(l::VIRTUAL_COUNT, "0")]),
        lease("n3", 1, &[(l::VIRTUAL_COUNT, "3")]),
        lease("n4", 99, &[(l::VIRTUAL_COUNT, "3")]),
    ];
    w.snap.nodes = ["n1", "n2", "n3", "n4"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    w.pass();
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV4).as_deref(),
        Some("2 nodes,kube-lb0")
    );
    assert_eq!(w.written("a", ann::POOL_TYPE).as_deref(), Some("virtual"));
}
