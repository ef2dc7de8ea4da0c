//! ServiceGroup choice, status, conditions and the in-use finalizer.

use ferrolb_api::contracts::reason;

use super::*;

#[test]
fn reports_capacity_usage_and_conditions() {
    let mut w = World::new(
        &[small("g")],
        &[
            svc("a").group("g").dual("RequireDualStack"),
            svc("b").group("g").age(1),
        ],
    );
    let p = w.pass();
    let g = &p.groups[0];
    let s = &g.status;
    assert_eq!(s.type_.as_deref(), Some("local"));
    assert_eq!(
        s.pools.as_deref(),
        Some("192.0.2.10-192.0.2.12,2001:db8::10-2001:db8::12")
    );
    assert_eq!(s.usage.as_deref(), Some("v4 2/3, v6 1/3"));
    assert_eq!(
        s.capacity
            .as_ref()
            .map(|c| (c.ipv4.as_str(), c.ipv6.as_str())),
        Some(("3", "3"))
    );
    assert_eq!(s.allocated.as_ref().map(|c| (c.ipv4, c.ipv6)), Some((2, 1)));
    assert!(g.finalizer);
    let get = |t: &str| w.condition("g", t).map(|c| c.0);
    assert_eq!(get("Ready").as_deref(), Some("True"));
    assert_eq!(get("Exhausted").as_deref(), Some("False"));
    let (in_use, msg) = w.condition("g", "InUse").expect("InUse");
    assert_eq!(in_use, "True");
    assert!(msg.contains("ns/a, ns/b"), "{msg}");
}

#[test]
fn the_newer_of_overlapping_groups_is_not_used() {
    let old = group("old")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
        .age(1);
    let new = group("new").v4("192.0.2.0/24", "192.0.2.12/32").age(2);
    let mut w = World::new(
        &[old, new],
        &[svc("a").group("new"), svc("b").group("old").age(1)],
    );
    let p = w.pass();
    assert!(w.ips("a").is_empty());
    assert_eq!(problems(&p, "a"), vec![reason::ALLOCATION_FAILED]);
    assert_eq!(w.ips("b"), vec!["192.0.2.10"]);
    let (s, msg) = w.condition("new", "Overlapping").expect("condition");
    assert_eq!(s, "True");
    assert!(msg.contains("overlaps ServiceGroup old"), "{msg}");
    assert_eq!(
        w.condition("new", "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(
        w.condition("old", "Overlapping").map(|c| c.0).as_deref(),
        Some("False")
    );
}

#[test]
fn a_reversed_range_is_reported_and_not_used() {
    let bad = group("g").v4("192.0.2.0/24", "192.0.2.20-192.0.2.10");
    let mut w = World::new(&[bad], &[svc("a").group("g")]);
    w.pass();
    assert!(w.ips("a").is_empty());
    let (s, msg) = w.condition("g", "InvalidRange").expect("condition");
    assert_eq!(s, "True");
    assert!(msg.contains("spec.local.v4pools[0].pool"), "{msg}");
}

#[test]
fn chooses_default_auto_assign_and_namespaces() {
    let cases: Vec<(&str, G, S, bool)> = vec![
        ("default group", small("default"), svc("a"), true),
        (
            "default without autoAssign",
            small("default").set("autoAssign", false.into()),
            svc("a"),
            false,
        ),
        (
            "named without autoAssign",
            small("default").set("autoAssign", false.into()),
            svc("a").group("default"),
            true,
        ),
        (
            "namespace allowed",
            small("g").set("namespaces", serde_json::json!(["ns"])),
            svc("a").group("g"),
            true,
        ),
        (
            "namespace refused",
            small("g").set("namespaces", serde_json::json!(["other"])),
            svc("a").group("g"),
            false,
        ),
    ];
    for (name, g, s, allocated) in cases {
        let mut w = World::new(&[g], &[s]);
        let p = w.pass();
        assert_eq!(!w.ips("a").is_empty(), allocated, "{name}");
        assert_eq!(
            problems(&p, "a").contains(&reason::ALLOCATION_FAILED),
            !allocated,
            "{name}"
        );
    }
}

#[test]
fn the_finalizer_follows_use_and_a_deleting_group_gives_nothing_new() {
    let mut w = World::new(&[small("g")], &[svc("a").group("g")]);
    w.pass();
    assert!(w.snap.groups[0].has_finalizer);
    w.snap.groups[0].deleting = true;
    w.edit(svc("b").group("g").age(1));
    let p = w.pass();
    assert!(w.ips("b").is_empty());
    assert_eq!(problems(&p, "b"), vec![reason::ALLOCATION_FAILED]);
    assert!(w.snap.groups[0].has_finalizer, "held while a is there");
    w.delete("a");
    w.pass();
    assert!(
        !w.snap.groups[0].has_finalizer,
        "released with the last Service"
    );
}

#[test]
fn a_settled_world_writes_nothing() {
    let mut w = World::new(
        &[small("g")],
        &[svc("a").group("g"), svc("b").group("g").key("k").age(1)],
    );
    w.pass();
    let p = plan(&w.snap, &w.settings);
    assert!(diff(&p, &w.snap).is_empty());
    assert!(
        p.services.iter().all(|s| s.news.is_empty()),
        "no news when nothing changes"
    );
}

/// ServiceGroups got no Events although their problems "come as a condition and an Event":
/// each problem condition that comes into force (or changes its reason) is news, once.
#[test]
fn a_problem_condition_that_comes_into_force_is_news_once() {
    use crate::decide::group_news;
    use ferrolb_api::ServiceGroupStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let cond = |type_: &str, status: &str, reason: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{type_} {reason}"),
        observed_generation: None,
        last_transition_time: Time(now()),
    };
    let status = |conditions: Vec<Condition>| ServiceGroupStatus {
        conditions,
        ..Default::default()
    };
    let ok = status(vec![
        cond("Ready", "True", "Ready"),
        cond("Overlapping", "False", "NoOverlap"),
        cond("Exhausted", "False", "AddressesFree"),
    ]);
    let bad = status(vec![
        cond("Ready", "False", "Overlapping"),
        cond("Overlapping", "True", "Overlapping"),
        cond("Exhausted", "True", "Exhausted"),
    ]);
    let reasons = |n: Vec<(String, String)>| n.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
    assert_eq!(
        reasons(group_news(None, &ok)),
        Vec::<String>::new(),
        "nothing wrong"
    );
    assert_eq!(
        reasons(group_news(Some(&ok), &bad)),
        ["Overlapping", "Exhausted"],
        "problems, not Ready's reason"
    );
    assert_eq!(
        reasons(group_news(None, &bad)),
        ["Overlapping", "Exhausted"],
        "a new group's first status"
    );
    assert!(
        group_news(Some(&bad), &bad).is_empty(),
        "told already: the status shows it"
    );
    assert!(group_news(Some(&bad), &ok).is_empty(), "gone: no Warning");
}
