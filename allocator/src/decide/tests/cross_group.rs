//! Addresses across ServiceGroups: one owner cluster-wide, whatever group an address came from;
//! a held family survives pool edits; unusable groups block nobody.

use ferrolb_api::contracts::reason;

use super::*;

/// Group `a` (older) has 192.0.2.10-11, group `b` (newer) 192.0.2.20-21; Service `x` has `b`'s
/// first address.
fn two_groups() -> World {
    let a = group("a")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .age(1);
    let b = group("b")
        .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
        .age(2);
    let mut w = World::new(&[a, b], &[svc("x").group("b").age(1)]);
    w.pass();
    assert_eq!(w.ips("x"), vec!["192.0.2.20"]);
    w
}

#[test]
fn a_group_never_hands_out_an_address_another_groups_service_holds() {
    let edits: Vec<(&str, Vec<G>)> = vec![
        (
            // `b` now overlaps `a` and stops giving out addresses; x keeps its own.
            "older group's range moved over it",
            vec![
                group("a")
                    .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
                    .age(1),
            ],
        ),
        (
            "range moved from the newer group to the older",
            vec![
                group("a")
                    .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
                    .age(1),
                group("b")
                    .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
                    .age(2),
            ],
        ),
    ];
    for (name, groups) in edits {
        let mut w = two_groups();
        for g in groups {
            w.set_group(g);
        }
        w.edit(svc("y").group("a").age(2));
        w.pass();
        assert_eq!(w.ips("x"), vec!["192.0.2.20"], "{name}: x keeps it");
        assert_eq!(w.ips("y"), vec!["192.0.2.21"], "{name}: y gets another");
        // After a restart (a plan from what the cluster shows) nothing changes either.
        w.pass();
        assert_eq!(w.ips("x"), vec!["192.0.2.20"], "{name}");
        assert_eq!(w.ips("y"), vec!["192.0.2.21"], "{name}");
    }
}

#[test]
fn a_request_for_an_address_another_group_holds_is_refused() {
    let mut w = two_groups();
    w.set_group(group("a").v4("192.0.2.0/24", "192.0.2.20/32").age(1));
    w.edit(svc("y").group("a").addresses("192.0.2.20").age(2));
    let p = w.pass();
    assert!(w.ips("y").is_empty());
    assert_eq!(
        problems(&p, "y"),
        vec![reason::REQUESTED_ADDRESS_UNAVAILABLE]
    );
    let msg = &of(&p, "y").problems[0].message;
    assert!(msg.contains("ns/x"), "{msg}");
    assert_eq!(w.ips("x"), vec!["192.0.2.20"]);
}

#[test]
fn two_groups_claiming_one_address_resolve_oldest_first() {
    // What the bug left behind: two Services of two groups show one address.
    let a = group("a")
        .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
        .age(1);
    let b = group("b")
        .v4("192.0.2.0/24", "192.0.2.30-192.0.2.31")
        .age(2);
    let older = svc("x")
        .group("b")
        .ann(ferrolb_api::annotations::ALLOCATED_FROM, "b")
        .ingress(&["192.0.2.20"])
        .age(1);
    let newer = svc("y")
        .group("a")
        .ann(ferrolb_api::annotations::ALLOCATED_FROM, "a")
        .ingress(&["192.0.2.20"])
        .age(2);
    let mut w = World::new(&[a, b], &[newer, older]);
    let p = w.pass();
    assert_eq!(w.ips("x"), vec!["192.0.2.20"]);
    assert_eq!(problems(&p, "y"), vec![reason::SHARING_CONFLICT]);
    assert_eq!(w.ips("y"), vec!["192.0.2.21"]);
}

#[test]
fn a_held_family_survives_its_pools_going_away() {
    let edits: Vec<(&str, G)> = vec![
        (
            "v6 pools removed",
            group("g").v4("192.0.2.0/24", "192.0.2.10-192.0.2.12"),
        ),
        (
            "v6 range reversed",
            group("g")
                .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
                .v6("2001:db8::/64", "2001:db8::12-2001:db8::10"),
        ),
        (
            "v6 range moved",
            group("g")
                .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
                .v6("2001:db8::/64", "2001:db8::20-2001:db8::22"),
        ),
    ];
    for policy in ["PreferDualStack", "RequireDualStack"] {
        for (name, edit) in &edits {
            let name = format!("{policy}, {name}");
            // x is older and gets the first addresses; a the second.
            let s = svc("a").group("g").dual(policy).age(1);
            let mut w = World::new(&[small("g")], &[svc("x").group("g").dual(policy), s]);
            w.pass();
            assert_eq!(w.ips("a"), vec!["192.0.2.11", "2001:db8::11"], "{name}");
            w.set_group(edit.clone());
            w.pass();
            assert_eq!(w.ips("a"), vec!["192.0.2.11", "2001:db8::11"], "{name}");
            let (status, msg) = w.condition("g", "OutOfPoolAllocations").expect("condition");
            assert_eq!(status, "True", "{name}");
            assert!(msg.contains("2001:db8::11 (ns/a)"), "{name}: {msg}");
            w.set_group(small("g"));
            w.pass();
            assert_eq!(w.ips("a"), vec!["192.0.2.11", "2001:db8::11"], "{name}");
        }
    }
}

#[test]
fn a_single_stack_edit_still_gives_up_the_other_family() {
    let mut w = World::new(
        &[small("g")],
        &[svc("a").group("g").dual("PreferDualStack")],
    );
    w.pass();
    w.set_group(group("g").v4("192.0.2.0/24", "192.0.2.10-192.0.2.12"));
    w.edit(svc("a").group("g").families(&["IPv4"], "SingleStack"));
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.10"]);
}

#[test]
fn a_group_that_gives_out_nothing_blocks_nobody() {
    // `mid` overlaps `old` and is unused; `new` overlaps only `mid`.
    let old = group("old")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
        .age(1);
    let mid = group("mid")
        .v4("192.0.2.0/24", "192.0.2.12-192.0.2.20")
        .age(2);
    let new = group("new").v4("192.0.2.0/24", "192.0.2.20/32").age(3);
    let bad = group("bad")
        .v4("192.0.2.0/24", "192.0.2.40-192.0.2.30")
        .v4("192.0.2.0/24", "192.0.2.50/32")
        .age(0);
    let after_bad = group("afterbad").v4("192.0.2.0/24", "192.0.2.50/32").age(4);
    let mut w = World::new(
        &[old, mid, new, bad, after_bad],
        &[svc("a").group("new"), svc("b").group("afterbad")],
    );
    w.pass();
    let ready = |w: &World, g: &str| w.condition(g, "Ready").map(|c| c.0);
    assert_eq!(ready(&w, "mid").as_deref(), Some("False"));
    assert_eq!(ready(&w, "new").as_deref(), Some("True"));
    assert_eq!(ready(&w, "afterbad").as_deref(), Some("True"));
    assert_eq!(w.ips("a"), vec!["192.0.2.20"]);
    assert_eq!(w.ips("b"), vec!["192.0.2.50"]);
    assert_eq!(
        w.condition("new", "Overlapping").map(|c| c.0).as_deref(),
        Some("False")
    );
}

#[test]
fn a_group_being_deleted_blocks_nobody_and_keeps_its_services_addresses() {
    let old = group("old")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .age(1);
    let mut w = World::new(&[old], &[svc("x").group("old")]);
    w.pass();
    assert_eq!(w.ips("x"), vec!["192.0.2.10"]);
    // `old` is being deleted (its finalizer holds it while x uses it); `new` overlaps it.
    w.snap.groups[0].deleting = true;
    w.set_group(
        group("new")
            .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
            .age(2),
    );
    w.edit(svc("y").group("new").age(1));
    w.pass();
    assert_eq!(
        w.condition("new", "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(w.ips("x"), vec!["192.0.2.10"]);
    assert_eq!(w.ips("y"), vec!["192.0.2.11"]);
}
