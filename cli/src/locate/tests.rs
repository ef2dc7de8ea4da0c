use ferrolb_api::election::holder;
use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::testkit::*;

const ADDR: &str = "192.0.2.100";

fn role<'a>(r: &'a AddressReport, node: &str) -> &'a NodeRole {
    r.nodes
        .iter()
        .find(|n| n.node == node)
        .unwrap_or_else(|| panic!("no row for {node}"))
}

#[test]
fn the_holder_is_the_lowest_hash_among_candidates_and_the_others_say_why() {
    let addr: IpAddr = ADDR.parse().expect("an address");
    let winner = holder(addr, ["a", "b", "c"]).expect("a holder").to_string();
    let mut nodes: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|n| node(n, "true", if n == winner { &[ADDR] } else { &[] }))
        .collect();
    nodes.push(node("d", "false,carrier-down", &[]));
    let mut no_subnet = node("e", "true", &[]);
    no_subnet.1.subnets = vec!["198.51.100.0/24".parse().expect("a CIDR")];
    nodes.push(no_subnet);
    let mut dead = node("f", "true", &[]);
    dead.1.expires = Some(now() - SignedDuration::from_secs(30));
    nodes.push(dead);
    let c = cluster(vec![local_group("lan")], nodes);
    let r = explain(&c, &service("lan", "local", &[ADDR]));
    let a = &r.addresses[0];
    assert_eq!(a.kind, "local");
    assert_eq!(a.elected.as_deref(), Some(winner.as_str()));
    assert_eq!(
        a.held_by,
        vec![Placement {
            node: winner.clone(),
            interface: "eth0".into()
        }]
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(role(a, &winner).role, "holder");
    assert!(role(a, &winner).why.contains("of 3 candidates"));
    let loser = ["a", "b", "c"]
        .into_iter()
        .find(|n| *n != winner)
        .expect("a loser");
    assert_eq!(role(a, loser).role, "candidate");
    assert!(role(a, loser).why.contains("lower election hash"));
    assert!(
        role(a, "d").why.contains("carrier-down"),
        "{:?}",
        role(a, "d")
    );
    assert!(
        role(a, "e").why.starts_with("no subnet"),
        "{:?}",
        role(a, "e")
    );
    assert!(
        role(a, "f").why.contains("expired 30s ago"),
        "{:?}",
        role(a, "f")
    );
    let text = render(&r);
    assert!(
        text.contains(&format!("held by {winner} on eth0")),
        "{text}"
    );
}

#[test]
fn etp_local_elects_only_among_nodes_with_a_ready_endpoint() {
    let c = cluster(
        vec![local_group("lan")],
        vec![node("a", "true", &[]), node("b", "true", &[])],
    );
    let mut svc = service("lan", "local", &[ADDR]);
    svc.etp_local = true;
    svc.endpoint_nodes.insert("b".into());
    let a = &explain(&c, &svc).addresses[0];
    assert_eq!(a.elected.as_deref(), Some("b"));
    assert!(role(a, "a").why.contains("no ready endpoint"));
    assert!(a.held_by.is_empty());
    assert!(role(a, "b").why.contains("does not list the address yet"));
}

#[test]
fn no_candidate_and_disagreeing_leases_are_warned_about() {
    let cases = [
        (
            "nobody eligible",
            vec![node("a", "false,not-ready", &[])],
            "no candidate",
        ),
        (
            "two holders",
            vec![node("a", "true", &[ADDR]), node("b", "true", &[ADDR])],
            "disagree",
        ),
    ];
    for (name, nodes, warning) in cases {
        let c = cluster(vec![local_group("lan")], nodes);
        let report = explain(&c, &service("lan", "local", &[ADDR]));
        let a = &report.addresses[0];
        assert!(
            a.warnings.iter().any(|w| w.contains(warning)),
            "{name}: {:?}",
            a.warnings
        );
        // Without the allocator's annotation: nothing to write when no node may announce it.
        let text = render(&report);
        let announcing = if warning == "no candidate" {
            "announcing:  none: no node can announce it"
        } else {
            "announcing:  (not written by the allocator yet)"
        };
        assert!(text.contains(announcing), "{name}: {text}");
    }
}

#[test]
fn a_virtual_address_is_on_kube_lb0_of_every_node_that_may_carry_it() {
    let mut nodes = vec![
        node("a", "true", &[]),
        node("b", "false,carrier-down", &[]),
        node("c", "false,excluded-label", &[]),
    ];
    nodes.push(node("d", "true", &[]));
    let mut c = cluster(vec![virtual_group("routed")], nodes);
    c.nodes.remove("d");
    c.nodes.insert(
        "e".into(),
        crate::cluster::NodeInfo {
            name: "e".into(),
            ..Default::default()
        },
    );
    let r = explain(&c, &service("routed", "virtual", &["203.0.113.1"]));
    let a = &r.addresses[0];
    assert_eq!(a.kind, "virtual");
    let carriers: Vec<&str> = a.carried_by.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(carriers, ["a", "b"]);
    assert_eq!(a.carried_by[0].interface, "kube-lb0 /28");
    assert!(role(a, "c").why.contains("excluded-label"));
    assert!(role(a, "d").why.contains("Node object does not exist"));
    assert!(role(a, "e").why.contains("no per-node Lease"));
    assert!(render(&r).contains("on kube-lb0 /28 of 2 nodes: a, b"));
}

#[test]
fn a_service_without_address_or_group_says_so() {
    let c = cluster(vec![], vec![node("a", "true", &[])]);
    let r = explain(&c, &service("gone", "", &[]));
    assert!(
        r.notes.iter().any(|n| n.contains("no address")),
        "{:?}",
        r.notes
    );
    assert!(r.notes.iter().any(|n| n.contains("gone does not exist")));
}

#[test]
fn a_service_that_names_no_group_is_told_which_group_would_serve_it_and_why() {
    use ferrolb_api::ServiceGroupStatus;
    use ferrolb_api::servicegroup::{FamilyCounts, FamilyStrings};
    let mut full = local_group("a-full");
    full.spec.auto_assign = Some(true);
    full.spec.priority = Some(1);
    full.status = Some(ServiceGroupStatus {
        capacity: Some(FamilyStrings {
            ipv4: "1".into(),
            ipv6: "0".into(),
        }),
        allocated: Some(FamilyCounts { ipv4: 1, ipv6: 0 }),
        ..Default::default()
    });
    let mut next = virtual_group("b-next");
    next.spec.auto_assign = Some(true);
    next.spec.priority = Some(2);
    let manual = local_group("c-manual");
    let c = cluster(vec![manual, next, full], vec![]);
    let mut s = service("-", "local", &[]);
    s.annotations.clear();
    let r = explain(&c, &s);
    assert!(
        r.notes.iter().any(|n| n.contains("b-next would serve it")
            && n.contains("passed over: a-full (no free IPv4 address)")),
        "{:?}",
        r.notes
    );
    let rows: Vec<(&str, &str)> = r
        .selection
        .iter()
        .map(|v| (v.group.as_str(), v.verdict.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("a-full", "passed over: no free IPv4 address"),
            ("b-next", "serves it (IPv4)"),
            ("c-manual", "passed over: autoAssign is off"),
        ]
    );
    let text = render(&r);
    assert!(text.contains("FOR THIS SERVICE"), "{text}");
    // With an address, it keeps the group it came from.
    let held = explain(&c, &service("c-manual", "local", &[ADDR]));
    assert!(held.selection.is_empty());
    assert!(
        held.notes.iter().any(|n| n.contains("keeps c-manual")),
        "{:?}",
        held.notes
    );
}

#[test]
fn a_group_that_does_not_admit_the_service_is_named_with_its_rule() {
    let mut fenced = local_group("lan");
    fenced.spec.namespaces = vec!["other".into()];
    let mut selecting = local_group("sel");
    selecting.spec.namespace_selector = Some(Default::default());
    let c = cluster(vec![fenced, selecting], Vec::new());
    let r = explain(&c, &service("lan", "local", &[ADDR]));
    assert!(
        r.notes.iter().any(|n| n.contains(
            "ServiceGroup lan: namespace demo is not in its spec.namespaces; the Service keeps the addresses it has"
        )),
        "{:?}",
        r.notes
    );
    // The CLI reads no labels: a selector says it cannot tell.
    let r = explain(&c, &service("sel", "local", &[]));
    assert!(
        r.notes.iter().any(|n| n.contains(
            "ServiceGroup sel: its spec.namespaceSelector needs labels that were not read"
        )),
        "{:?}",
        r.notes
    );
    let r = explain(&c, &service("other", "local", &[]));
    assert!(
        !r.notes.iter().any(|n| n.starts_with("ServiceGroup other:")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_multi_pool_service_shows_each_address_with_its_own_subnet_nodes() {
    let mut g = local_group("wide");
    if let Some(l) = g.spec.local.as_mut() {
        l.v4pools
            .push(pool("198.51.100.0/24", "198.51.100.10-198.51.100.20", None));
        l.multi_pool = true;
    }
    let mut far = node("far", "true", &["198.51.100.10"]);
    far.1.subnets = vec!["198.51.100.0/24".parse().expect("a CIDR")];
    far.1.interface_v4 = Some("eth1".into());
    let c = cluster(vec![g], vec![node("near", "true", &[ADDR]), far]);
    let mut svc = service("wide", "local", &[ADDR, "198.51.100.10"]);
    svc.annotations.insert(
        ann::ANNOUNCING_IPV4.into(),
        format!("near,eth0,{ADDR} far,eth1,198.51.100.10"),
    );
    let r = explain(&c, &svc);
    assert_eq!(r.addresses.len(), 2);
    let (lan, other) = (&r.addresses[0], &r.addresses[1]);
    assert_eq!(lan.elected.as_deref(), Some("near"));
    assert_eq!(
        lan.announcing.as_deref(),
        Some(format!("near,eth0,{ADDR}").as_str())
    );
    assert!(
        role(lan, "far").why.starts_with("no subnet"),
        "{:?}",
        role(lan, "far")
    );
    assert_eq!(other.elected.as_deref(), Some("far"));
    assert_eq!(other.announcing.as_deref(), Some("far,eth1,198.51.100.10"));
    assert!(
        role(other, "near").why.starts_with("no subnet"),
        "{:?}",
        role(other, "near")
    );
    assert!(
        lan.warnings.is_empty() && other.warnings.is_empty(),
        "{r:?}"
    );
}
