//! Families, requested addresses, adoption, release and never renumbering.

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;

use super::*;

#[test]
fn allocates_by_family_policy() {
    let v4only = group("v4").v4("198.51.100.0/24", "198.51.100.10-198.51.100.12");
    let cases: Vec<(&str, S, &[&str], Option<&str>)> = vec![
        ("single v4", svc("a").group("g"), &["192.0.2.10"], None),
        (
            "single v6",
            svc("a").group("g").families(&["IPv6"], "SingleStack"),
            &["2001:db8::10"],
            None,
        ),
        (
            "prefer dual",
            svc("a").group("g").dual("PreferDualStack"),
            &["192.0.2.10", "2001:db8::10"],
            None,
        ),
        (
            "require dual",
            svc("a").group("g").dual("RequireDualStack"),
            &["192.0.2.10", "2001:db8::10"],
            None,
        ),
        (
            "v6 first",
            svc("a")
                .group("g")
                .families(&["IPv6", "IPv4"], "RequireDualStack"),
            &["2001:db8::10", "192.0.2.10"],
            None,
        ),
        (
            "prefer dual from v4 group",
            svc("a").group("v4").dual("PreferDualStack"),
            &["198.51.100.10"],
            None,
        ),
        (
            "require dual from v4 group",
            svc("a").group("v4").dual("RequireDualStack"),
            &[],
            Some(reason::ALLOCATION_FAILED),
        ),
        (
            "single v6 from v4 group",
            svc("a").group("v4").families(&["IPv6"], "SingleStack"),
            &[],
            Some(reason::ALLOCATION_FAILED),
        ),
        (
            "missing group",
            svc("a").group("nope"),
            &[],
            Some(reason::ALLOCATION_FAILED),
        ),
        (
            "no default group",
            svc("a"),
            &[],
            Some(reason::ALLOCATION_FAILED),
        ),
    ];
    for (name, s, want, problem) in cases {
        let mut w = World::new(&[small("g"), v4only.clone()], &[s]);
        let p = w.pass();
        assert_eq!(w.ips("a"), want, "{name}");
        assert_eq!(problems(&p, "a").first().copied(), problem, "{name}");
    }
}

#[test]
fn require_dual_stack_is_rolled_back_when_one_family_is_exhausted() {
    let g = group("g")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .v6("2001:db8::/64", "2001:db8::10/128");
    let mut w = World::new(
        &[g],
        &[svc("a")
            .group("g")
            .families(&["IPv6"], "SingleStack")
            .age(1)],
    );
    w.pass();
    w.edit(svc("b").group("g").dual("RequireDualStack").age(2));
    let p = w.pass();
    assert_eq!(w.ips("b"), Vec::<String>::new());
    assert_eq!(problems(&p, "b"), vec![reason::ALLOCATION_FAILED]);
    // The IPv4 address it would have taken is still free for the next one.
    w.edit(svc("c").group("g").age(3));
    w.pass();
    assert_eq!(w.ips("c"), vec!["192.0.2.10"]);
}

#[test]
fn a_family_change_keeps_the_existing_address() {
    let mut w = World::new(
        &[small("g")],
        &[svc("x").group("g").age(1), svc("a").group("g").age(2)],
    );
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.11"]);
    w.edit(svc("a").group("g").age(2).dual("PreferDualStack"));
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.11", "2001:db8::10"]);
    w.edit(
        svc("a")
            .group("g")
            .age(2)
            .families(&["IPv6"], "SingleStack"),
    );
    w.pass();
    assert_eq!(w.ips("a"), vec!["2001:db8::10"]);
}

#[test]
fn honours_requested_addresses() {
    let cases: Vec<(&str, S, &[&str], Option<&str>)> = vec![
        (
            "in pool",
            svc("a").group("g").addresses("192.0.2.12"),
            &["192.0.2.12"],
            None,
        ),
        (
            "dual",
            svc("a")
                .group("g")
                .dual("RequireDualStack")
                .addresses("2001:db8::11,192.0.2.11"),
            &["192.0.2.11", "2001:db8::11"],
            None,
        ),
        (
            "outside the group",
            svc("a").group("g").addresses("192.0.2.99"),
            &[],
            Some(reason::REQUESTED_ADDRESS_UNAVAILABLE),
        ),
        (
            "network address",
            svc("a").group("g").addresses("192.0.2.0"),
            &[],
            Some(reason::REQUESTED_ADDRESS_UNAVAILABLE),
        ),
        (
            "taken",
            svc("a").group("g").addresses("192.0.2.10"),
            &[],
            Some(reason::REQUESTED_ADDRESS_UNAVAILABLE),
        ),
        (
            "wrong family",
            svc("a").group("g").addresses("2001:db8::11"),
            &[],
            Some(reason::REQUESTED_ADDRESS_UNAVAILABLE),
        ),
        (
            "garbage",
            svc("a").group("g").addresses("nope"),
            &[],
            Some(reason::REQUESTED_ADDRESS_UNAVAILABLE),
        ),
        (
            "metallb alias",
            svc("a")
                .group("g")
                .ann("metallb.io/loadBalancerIPs", "192.0.2.12"),
            &["192.0.2.12"],
            None,
        ),
        (
            "purelb alias",
            svc("a").group("g").ann("purelb.io/addresses", "192.0.2.11"),
            &["192.0.2.11"],
            None,
        ),
        (
            "deprecated field",
            svc("a")
                .group("g")
                .spec("loadBalancerIP", "192.0.2.12".into()),
            &["192.0.2.12"],
            Some(reason::DEPRECATED_FIELD),
        ),
        (
            "conflicting alias",
            svc("a")
                .group("g")
                .addresses("192.0.2.12")
                .ann("purelb.io/addresses", "192.0.2.11"),
            &["192.0.2.12"],
            Some(reason::ANNOTATION_CONFLICT),
        ),
    ];
    for (name, s, want, problem) in cases {
        let older = svc("old").group("g").addresses("192.0.2.10").age(0);
        let mut w = World::new(&[small("g")], &[older, s.age(5)]);
        let p = w.pass();
        assert_eq!(w.ips("a"), want, "{name}");
        assert_eq!(problems(&p, "a").first().copied(), problem, "{name}");
    }
}

#[test]
fn a_changed_request_moves_only_when_the_new_address_is_free() {
    let mut w = World::new(
        &[small("g")],
        &[
            svc("a").group("g").addresses("192.0.2.10"),
            svc("b").group("g").age(1),
        ],
    );
    w.pass();
    assert_eq!(w.ips("b"), vec!["192.0.2.11"]);
    w.edit(svc("a").group("g").addresses("192.0.2.11"));
    let p = w.pass();
    assert_eq!(
        w.ips("a"),
        vec!["192.0.2.10"],
        "keeps its address while the new one is taken"
    );
    assert_eq!(
        problems(&p, "a"),
        vec![reason::REQUESTED_ADDRESS_UNAVAILABLE]
    );
    w.edit(svc("a").group("g").addresses("192.0.2.12"));
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.12"]);
}

#[test]
fn adopts_oldest_first_and_the_newer_claimant_loses() {
    let a = svc("a").group("g").ingress(&["192.0.2.11"]).age(1);
    let b = svc("b").group("g").ingress(&["192.0.2.11"]).age(2);
    let fresh = svc("c").group("g").age(0);
    let mut w = World::new(&[small("g")], &[b, a, fresh]);
    let p = w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.11"]);
    assert_eq!(problems(&p, "b"), vec![reason::SHARING_CONFLICT]);
    assert_eq!(
        w.ips("c"),
        vec!["192.0.2.10"],
        "allocation comes after adoption"
    );
    assert_eq!(w.ips("b"), vec!["192.0.2.12"]);
}

#[test]
fn renumbers_nothing_when_the_pool_shrinks() {
    let mut w = World::new(
        &[small("g")],
        &[svc("a").group("g"), svc("b").group("g").age(1)],
    );
    w.pass();
    assert_eq!(w.ips("b"), vec!["192.0.2.11"]);
    w.set_group(
        group("g")
            .v4("192.0.2.0/24", "192.0.2.10/32")
            .v6("2001:db8::/64", "2001:db8::10/128"),
    );
    w.pass();
    assert_eq!(w.ips("b"), vec!["192.0.2.11"]);
    let (status, msg) = w.condition("g", "OutOfPoolAllocations").expect("condition");
    assert_eq!(status, "True");
    assert!(msg.contains("192.0.2.11 (ns/b)"), "{msg}");
    w.edit(svc("c").group("g").age(2));
    let p = w.pass();
    assert_eq!(problems(&p, "c"), vec![reason::ALLOCATION_FAILED]);
    assert_eq!(
        w.condition("g", "Exhausted").map(|c| c.0).as_deref(),
        Some("True")
    );
}

#[test]
fn releases_when_the_service_stops_being_ours() {
    let edits: Vec<(&str, S)> = vec![
        (
            "type changed",
            svc("a").group("g").spec("type", "ClusterIP".into()),
        ),
        (
            "class changed",
            svc("a")
                .group("g")
                .spec("loadBalancerClass", "other.io/lb".into()),
        ),
    ];
    for (name, edit) in edits {
        let mut w = World::new(&[small("g")], &[svc("a").group("g")]);
        w.pass();
        w.edit(edit);
        let p = w.pass();
        assert!(w.ips("a").is_empty(), "{name}");
        assert_eq!(w.written("a", ann::ALLOCATED_BY), None, "{name}");
        assert_eq!(
            of(&p, "a").news[0].reason,
            reason::ADDRESS_RELEASED,
            "{name}"
        );
        w.edit(svc("b").group("g").age(3));
        w.pass();
        assert_eq!(
            w.ips("b"),
            vec!["192.0.2.10"],
            "{name}: the address is free again"
        );
    }
}

#[test]
fn a_group_change_releases_then_allocates_from_the_new_group() {
    let other = group("h").v4("198.51.100.0/24", "198.51.100.5-198.51.100.6");
    let mut w = World::new(&[small("g"), other], &[svc("a").group("g")]);
    w.pass();
    w.edit(svc("a").group("h"));
    w.pass();
    assert_eq!(w.ips("a"), vec!["198.51.100.5"]);
    assert_eq!(w.written("a", ann::ALLOCATED_FROM).as_deref(), Some("h"));
    w.delete("a");
    w.pass();
    assert_eq!(
        w.condition("h", "InUse").map(|c| c.0).as_deref(),
        Some("False")
    );
}

#[test]
fn unclassed_services_are_left_alone_when_told() {
    let mut w = World::new(
        &[small("default")],
        &[
            svc("a"),
            svc("b").spec("loadBalancerClass", "ferrolb.io/ferrolb".into()),
        ],
    );
    w.settings.handle_unclassed = false;
    w.pass();
    assert!(w.ips("a").is_empty());
    assert_eq!(w.ips("b"), vec!["192.0.2.10"]);
}

#[test]
fn an_address_shown_without_our_annotations_is_told_again() {
    let mut w = World::new(&[small("g")], &[svc("a").group("g")]);
    let p = w.pass();
    let reasons = |p: &Plan| -> Vec<&str> { of(p, "a").news.iter().map(|n| n.reason).collect() };
    assert_eq!(reasons(&p), vec![reason::ADDRESS_ALLOCATED]);
    // An address without our annotations: an older allocator (status and annotations written
    // apart) killed in between, or annotations removed by hand.
    Arc::make_mut(&mut w.snap.services[0]).written.clear();
    let p = plan(&w.snap, &w.settings);
    assert_eq!(reasons(&p), vec![reason::ADDRESS_ALLOCATED]);
    assert!(of(&p, "a").allocated.is_empty(), "nothing new is allocated");
    assert_eq!(of(&p, "a").ingress, w.snap.services[0].ingress);
    w.pass();
    assert!(reasons(&plan(&w.snap, &w.settings)).is_empty());
}

#[test]
fn an_allocation_is_one_write_carrying_status_and_annotations() {
    let mut w = World::new(&[small("g")], &[svc("a").group("g")]);
    let p = plan(&w.snap, &w.settings);
    let changes = crate::decide::diff::service_changes(&p.services[0], &w.snap.services[0]);
    let [crate::decide::Change::SetIngress { annotations, .. }] = changes.as_slice() else {
        panic!("one status write expected, got {changes:#?}");
    };
    assert_eq!(
        annotations.get(ann::ALLOCATED_FROM).map(String::as_str),
        Some("g")
    );
    w.pass();
    assert_eq!(w.written("a", ann::ALLOCATED_FROM).as_deref(), Some("g"));

    // Annotations alone (the group's type changed under it) are a write of their own.
    let mut stale = w.snap.services[0].written.clone();
    stale.insert(ann::POOL_TYPE.into(), "something-else".into());
    Arc::make_mut(&mut w.snap.services[0]).written = stale;
    let p = plan(&w.snap, &w.settings);
    let changes = crate::decide::diff::service_changes(&p.services[0], &w.snap.services[0]);
    assert!(
        matches!(
            changes.as_slice(),
            [crate::decide::Change::SetAnnotations { .. }]
        ),
        "{changes:#?}"
    );
}
