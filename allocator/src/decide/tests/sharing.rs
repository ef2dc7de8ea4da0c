//! Sharing one address between Services by key.

use ferrolb_api::contracts::reason;

use super::*;

#[test]
fn shares_by_key_when_the_rules_hold() {
    let cases: Vec<(&str, S, bool, Option<&str>)> = vec![
        (
            "same key, other port",
            svc("b").group("g").key("k").ports(&[("TCP", 443)]),
            true,
            None,
        ),
        (
            "same port, other protocol",
            svc("b").group("g").key("k").ports(&[("UDP", 80)]),
            true,
            None,
        ),
        (
            "port collision",
            svc("b").group("g").key("k"),
            false,
            Some(reason::SHARING_CONFLICT),
        ),
        (
            "other key",
            svc("b").group("g").key("other").ports(&[("TCP", 443)]),
            false,
            None,
        ),
        (
            "no key",
            svc("b").group("g").ports(&[("TCP", 443)]),
            false,
            None,
        ),
        (
            "etp differs",
            svc("b")
                .group("g")
                .key("k")
                .ports(&[("TCP", 443)])
                .local("web"),
            false,
            Some(reason::SHARING_CONFLICT),
        ),
    ];
    for (name, b, shared, problem) in cases {
        let mut w = World::new(&[small("g")], &[svc("a").group("g").key("k"), b.age(1)]);
        let p = w.pass();
        assert_eq!(
            w.ips("b") == w.ips("a"),
            shared,
            "{name}: {:?} {:?}",
            w.ips("a"),
            w.ips("b")
        );
        assert_eq!(problems(&p, "b").first().copied(), problem, "{name}");
    }
}

#[test]
fn local_traffic_policy_shares_only_with_the_same_selector() {
    let a = svc("a").group("g").key("k").local("web");
    for (name, b, shared) in [
        (
            "same selector",
            svc("b")
                .group("g")
                .key("k")
                .ports(&[("TCP", 443)])
                .local("web"),
            true,
        ),
        (
            "other selector",
            svc("b")
                .group("g")
                .key("k")
                .ports(&[("TCP", 443)])
                .local("db"),
            false,
        ),
    ] {
        let mut w = World::new(&[small("g")], &[a.clone(), b.age(1)]);
        w.pass();
        assert_eq!(w.ips("b") == w.ips("a"), shared, "{name}");
    }
}

#[test]
fn a_key_binds_one_address_per_family_and_frees_it_with_the_last_user() {
    let mut w = World::new(
        &[small("g")],
        &[
            svc("a").group("g").key("k").dual("RequireDualStack"),
            svc("b")
                .group("g")
                .key("k")
                .ports(&[("TCP", 443)])
                .dual("PreferDualStack")
                .age(1),
            svc("c")
                .group("g")
                .key("k")
                .ports(&[("TCP", 8080)])
                .families(&["IPv6"], "SingleStack")
                .age(2),
        ],
    );
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.10", "2001:db8::10"]);
    assert_eq!(w.ips("b"), w.ips("a"));
    assert_eq!(w.ips("c"), vec!["2001:db8::10"]);
    w.delete("a");
    w.pass();
    assert_eq!(
        w.ips("b"),
        vec!["192.0.2.10", "2001:db8::10"],
        "still used by b and c"
    );
    w.delete("b");
    w.delete("c");
    w.pass();
    w.edit(svc("d").group("g").age(3));
    w.pass();
    assert_eq!(w.ips("d"), vec!["192.0.2.10"], "freed with its last user");
}

#[test]
fn a_key_added_later_binds_to_the_address_the_service_has() {
    let mut w = World::new(
        &[small("g")],
        &[svc("x").group("g"), svc("a").group("g").age(1)],
    );
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.11"]);
    w.edit(svc("a").group("g").age(1).key("k"));
    w.edit(svc("b").group("g").key("k").ports(&[("TCP", 443)]).age(2));
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.11"], "nothing moves");
    assert_eq!(w.ips("b"), vec!["192.0.2.11"]);
}

#[test]
fn an_edit_that_breaks_sharing_releases_nothing() {
    let mut w = World::new(
        &[small("g")],
        &[
            svc("a").group("g").key("k"),
            svc("b").group("g").key("k").ports(&[("TCP", 443)]).age(1),
        ],
    );
    w.pass();
    w.edit(svc("b").group("g").key("k").age(1));
    let p = w.pass();
    assert_eq!(w.ips("b"), vec!["192.0.2.10"]);
    assert_eq!(w.ips("a"), vec!["192.0.2.10"]);
    assert_eq!(problems(&p, "b"), vec![reason::SHARING_CONFLICT]);
}
