//! Which group serves a Service that names none: candidates by autoAssign and priority, judged
//! on the pass's book, and a Service that holds addresses never moved.

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;

use super::*;

/// A group with autoAssign on, a priority and one IPv4 pool.
fn auto(name: &str, priority: Option<i32>, pool: &str) -> G {
    let g = group(name)
        .set("autoAssign", true.into())
        .v4("198.51.100.0/24", pool);
    match priority {
        Some(p) => g.set("priority", p.into()),
        None => g,
    }
}

fn news<'a>(p: &'a Plan, name: &str, why: &str) -> Vec<&'a str> {
    of(p, name)
        .news
        .iter()
        .filter(|n| n.reason == why)
        .map(|n| n.message.as_str())
        .collect()
}

#[test]
fn new_services_take_the_first_candidate_with_room() {
    let cases: Vec<(&str, Vec<G>, S, Option<&str>)> = vec![
        (
            "priority before name",
            vec![
                auto("a", Some(20), "198.51.100.1/32"),
                auto("b", Some(10), "198.51.100.2/32"),
            ],
            svc("s"),
            Some("198.51.100.2"),
        ),
        (
            "a group without priority after one with",
            vec![
                auto("a", None, "198.51.100.1/32"),
                auto("b", Some(10), "198.51.100.2/32"),
            ],
            svc("s"),
            Some("198.51.100.2"),
        ),
        (
            "ties by name",
            vec![
                auto("b", Some(1), "198.51.100.2/32"),
                auto("a", Some(1), "198.51.100.1/32"),
            ],
            svc("s"),
            Some("198.51.100.1"),
        ),
        (
            "a group not named default does not auto-assign unless told",
            vec![group("first-pool").v4("198.51.100.0/24", "198.51.100.1/32")],
            svc("s"),
            None,
        ),
        (
            "explicit false on default",
            vec![
                small("default").set("autoAssign", false.into()),
                auto("x", None, "198.51.100.1/32"),
            ],
            svc("s"),
            Some("198.51.100.1"),
        ),
        (
            "a named group is the only one used",
            vec![
                auto("a", Some(1), "198.51.100.1/32"),
                group("manual").v4("198.51.100.0/24", "198.51.100.9/32"),
            ],
            svc("s").group("manual"),
            Some("198.51.100.9"),
        ),
        (
            "RequireDualStack skips a v4-only group",
            vec![
                auto("a", Some(1), "198.51.100.1/32"),
                small("b")
                    .set("autoAssign", true.into())
                    .set("priority", 2.into()),
            ],
            svc("s").dual("RequireDualStack"),
            Some("192.0.2.10"),
        ),
        (
            "PreferDualStack prefers a group with both families",
            vec![
                auto("a", Some(1), "198.51.100.1/32"),
                small("b")
                    .set("autoAssign", true.into())
                    .set("priority", 2.into()),
            ],
            svc("s").dual("PreferDualStack"),
            Some("192.0.2.10"),
        ),
        (
            "a requested address picks the candidate whose pool has it",
            vec![
                auto("a", Some(1), "198.51.100.1/32"),
                auto("b", Some(2), "198.51.100.2/32"),
            ],
            svc("s").addresses("198.51.100.2"),
            Some("198.51.100.2"),
        ),
    ];
    for (name, groups, s, want) in cases {
        let mut w = World::new(&groups, &[s]);
        let p = w.pass();
        assert_eq!(w.ips("s").first().map(String::as_str), want, "{name}");
        assert_eq!(
            problems(&p, "s").contains(&reason::ALLOCATION_FAILED),
            want.is_none(),
            "{name}: {:?}",
            of(&p, "s").problems
        );
    }
}

#[test]
fn two_new_services_in_one_pass_do_not_both_count_the_last_address() {
    let mut w = World::new(
        &[
            auto("tiny", Some(1), "198.51.100.1/32"),
            auto("big", Some(2), "198.51.100.10-198.51.100.20"),
        ],
        &[svc("a"), svc("b").age(1)],
    );
    let p = w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.1"]);
    assert_eq!(w.ips("b"), ["198.51.100.10"]);
    assert_eq!(w.written("b", ann::ALLOCATED_FROM).as_deref(), Some("big"));
    let told = news(&p, "a", reason::ADDRESS_ALLOCATED);
    assert!(
        told[0].contains("allocated from ServiceGroup tiny") && !told[0].contains("passed over"),
        "{told:?}"
    );
    let told = news(&p, "b", reason::ADDRESS_ALLOCATED);
    assert!(
        told[0].contains("allocated from ServiceGroup big")
            && told[0].contains("passed over: tiny (no free IPv4 address)"),
        "{told:?}"
    );
}

#[test]
fn a_service_that_holds_an_address_stays_in_its_group() {
    let mut w = World::new(&[auto("second", Some(10), "198.51.100.10/32")], &[svc("a")]);
    w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.10"]);
    // A higher-priority group appears, and the one the address came from is switched off for
    // new Services: nothing moves, nothing is renumbered.
    w.set_group(auto("first", Some(1), "198.51.100.1/32"));
    w.set_group(auto("second", Some(10), "198.51.100.10/32").set("autoAssign", false.into()));
    let p = w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.10"]);
    assert!(of(&p, "a").news.is_empty(), "{:?}", of(&p, "a").news);
    assert_eq!(
        w.written("a", ann::ALLOCATED_FROM).as_deref(),
        Some("second")
    );
}

#[test]
fn a_service_that_drops_its_group_annotation_keeps_its_address() {
    let mut w = World::new(
        &[
            auto("first", Some(1), "198.51.100.1/32"),
            group("manual").v4("198.51.100.0/24", "198.51.100.9/32"),
        ],
        &[svc("a").group("manual")],
    );
    w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.9"]);
    w.edit(svc("a"));
    let p = w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.9"]);
    assert!(of(&p, "a").news.is_empty(), "{:?}", of(&p, "a").news);
}

#[test]
fn a_failure_says_why_every_group_was_refused() {
    let mut w = World::new(
        &[
            group("first-pool").v4("198.51.100.0/24", "198.51.100.1/32"),
            auto("team", Some(1), "198.51.100.5/32")
                .set("namespaces", serde_json::json!(["other"])),
        ],
        &[svc("a")],
    );
    let p = w.pass();
    assert!(w.ips("a").is_empty());
    let msg = &of(&p, "a").problems[0].message;
    assert!(
        msg.contains("team (namespace ns is not in its spec.namespaces)")
            && msg.contains("first-pool (autoAssign is off)"),
        "{msg}"
    );
}
