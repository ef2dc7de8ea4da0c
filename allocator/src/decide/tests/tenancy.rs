//! Admission by namespace and by Service: namespaceSelector, serviceSelector, namespaceDefault
//! and enforceNamespaces, for Services that name a group and for those that get one by
//! auto-assign; and a Service a group stops admitting keeps what it holds.

use ferrolb_api::contracts::reason;
use serde_json::json;

use super::*;

/// An auto-assigning group with one IPv4 address.
fn lan(name: &str, last: u8) -> G {
    group(name)
        .set("autoAssign", true.into())
        .v4("198.51.100.0/24", &format!("198.51.100.{last}/32"))
}

fn team(t: &str) -> Value {
    json!({ "matchLabels": { "team": t } })
}

/// A Service in namespace `ns`.
fn svc_in(name: &str, ns: &str) -> S {
    let mut s = svc(name);
    s.0["metadata"]["namespace"] = ns.into();
    s.0["metadata"]["uid"] = format!("uid-{ns}-{name}").into();
    s
}

fn label_ns(w: &mut World, ns: &str, pairs: &[(&str, &str)]) {
    let labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    w.snap.namespaces.insert(ns.into(), labels);
}

fn messages(p: &Plan, name: &str) -> Vec<String> {
    of(p, name)
        .problems
        .iter()
        .filter(|n| n.reason == reason::ALLOCATION_FAILED)
        .map(|n| n.message.clone())
        .collect()
}

/// A world with namespaces team-a (team=a) and team-b (team=b).
fn world(groups: &[G], services: &[S]) -> World {
    let mut w = World::new(groups, services);
    label_ns(&mut w, "team-a", &[("team", "a")]);
    label_ns(&mut w, "team-b", &[("team", "b")]);
    w
}

#[test]
fn selectors_admit_services_by_namespace_and_by_labels() {
    let groups = || {
        vec![
            lan("lan", 1).set("namespaceSelector", team("b")),
            lan("web", 2).set(
                "serviceSelector",
                json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web"] }] }),
            ),
        ]
    };
    // (case, Service, address or the text of its AllocationFailed)
    let cases: Vec<(&str, S, Result<&str, &str>)> = vec![
        (
            "an admitted namespace by auto-assign",
            svc_in("s", "team-b"),
            Ok("198.51.100.1"),
        ),
        (
            "an admitted namespace by name",
            svc_in("s", "team-b").group("lan"),
            Ok("198.51.100.1"),
        ),
        (
            "another namespace by auto-assign",
            svc_in("s", "team-a"),
            Err("lan (namespace team-a does not match its spec.namespaceSelector (team=b))"),
        ),
        (
            "another namespace by name",
            svc_in("s", "team-a").group("lan"),
            Err(
                "ServiceGroup lan: namespace team-a does not match its spec.namespaceSelector (team=b); label namespace team-a",
            ),
        ),
        (
            "matching Service labels",
            svc_in("s", "team-a").group("web").label("app", "web"),
            Ok("198.51.100.2"),
        ),
        (
            "other Service labels",
            svc_in("s", "team-a").group("web").label("app", "db"),
            Err(
                "ServiceGroup web: the Service's labels do not match its spec.serviceSelector (app in (web))",
            ),
        ),
        (
            "a namespace never seen",
            svc_in("s", "team-z").group("lan"),
            Err("its spec.namespaceSelector needs labels that were not read"),
        ),
    ];
    for (name, s, want) in cases {
        let mut w = world(&groups(), &[s]);
        let p = w.pass();
        match want {
            Ok(ip) => assert_eq!(w.ips("s"), [ip], "{name}"),
            Err(text) => {
                assert!(w.ips("s").is_empty(), "{name}");
                let m = messages(&p, "s");
                assert!(m.iter().any(|m| m.contains(text)), "{name}: {m:?}");
            }
        }
    }
}

#[test]
fn an_invalid_selector_admits_nobody_and_says_why() {
    let bad =
        json!({ "matchExpressions": [{ "key": "team", "operator": "Like", "values": ["b"] }] });
    let mut w = world(
        &[lan("lan", 1).set("namespaceSelector", bad)],
        &[svc_in("s", "team-b")],
    );
    let p = w.pass();
    assert!(w.ips("s").is_empty());
    let m = messages(&p, "s");
    assert!(
        m[0].contains(
            "lan (its spec.namespaceSelector is invalid and admits no Service: matchExpressions[0]: unknown operator \"Like\""
        ),
        "{m:?}"
    );
}

#[test]
fn a_namespace_default_goes_before_every_other_candidate() {
    let groups = [
        lan("shared", 1).set("priority", 1.into()),
        group("b-default")
            .v4("198.51.100.0/24", "198.51.100.2/32")
            .set("namespaceDefault", true.into())
            .set("namespaceSelector", team("b")),
    ];
    let mut w = world(&groups, &[svc_in("b", "team-b"), svc_in("a", "team-a")]);
    let p = w.pass();
    assert_eq!(w.ips("b"), ["198.51.100.2"], "its namespace default");
    assert_eq!(w.ips("a"), ["198.51.100.1"], "not a default of team-a");
    let told = &of(&p, "b").news[0].message;
    assert!(
        told.contains("the default ServiceGroup of its namespace (namespaceDefault)"),
        "{told}"
    );
}

#[test]
fn enforced_namespaces_use_only_their_groups_and_others_never_theirs() {
    let groups = || {
        vec![
            lan("shared", 1).set("priority", 1.into()),
            lan("tenant-b", 2)
                .set("namespaceSelector", team("b"))
                .set("enforceNamespaces", true.into()),
        ]
    };
    // (case, Service, address or the text of its AllocationFailed)
    let cases: Vec<(&str, S, Result<&str, &str>)> = vec![
        (
            "a tenant by auto-assign gets its group, not the better-ranked shared one",
            svc_in("s", "team-b"),
            Ok("198.51.100.2"),
        ),
        (
            "a tenant cannot name a group outside its tenancy",
            svc_in("s", "team-b").group("shared"),
            Err(
                "ServiceGroup shared: namespace team-b is a tenant of ServiceGroup tenant-b (enforceNamespaces) and may use only it",
            ),
        ),
        (
            "another namespace cannot name the tenant group",
            svc_in("s", "team-a").group("tenant-b"),
            Err("ServiceGroup tenant-b: namespace team-a does not match"),
        ),
        (
            "another namespace uses the shared group",
            svc_in("s", "team-a"),
            Ok("198.51.100.1"),
        ),
    ];
    for (name, s, want) in cases {
        let mut w = world(&groups(), &[s]);
        let p = w.pass();
        match want {
            Ok(ip) => assert_eq!(w.ips("s"), [ip], "{name}"),
            Err(text) => {
                assert!(w.ips("s").is_empty(), "{name}");
                let m = messages(&p, "s");
                assert!(m.iter().any(|m| m.contains(text)), "{name}: {m:?}");
            }
        }
    }
}

#[test]
fn a_service_a_group_stops_admitting_keeps_its_address() {
    for named in [false, true] {
        let s = svc_in("s", "team-b");
        let s = if named { s.group("lan") } else { s };
        let lan = || lan("lan", 1).set("namespaceSelector", team("b"));
        let mut w = world(&[lan()], &[s]);
        w.pass();
        assert_eq!(w.ips("s"), ["198.51.100.1"], "named {named}");
        // The namespace is relabelled, then the group's selector edited: nothing moves.
        label_ns(&mut w, "team-b", &[("team", "c")]);
        let p = w.pass();
        assert_eq!(w.ips("s"), ["198.51.100.1"], "named {named}: kept");
        assert!(
            of(&p, "s").news.is_empty(),
            "named {named}: nothing released: {:?}",
            of(&p, "s").news
        );
        let m = messages(&p, "s");
        assert!(
            m.iter().any(|m| m.contains(
                "ServiceGroup lan: namespace team-b does not match its spec.namespaceSelector (team=b); the Service keeps the addresses it has"
            )),
            "named {named}: {m:?}"
        );
        w.set_group(lan().set("namespaceSelector", team("x")));
        w.pass();
        assert_eq!(w.ips("s"), ["198.51.100.1"], "named {named}: still kept");
        // Admitted again: the Warning goes, the address stays.
        label_ns(&mut w, "team-b", &[("team", "x")]);
        let p = w.pass();
        assert_eq!(w.ips("s"), ["198.51.100.1"]);
        assert!(messages(&p, "s").is_empty(), "named {named}");
    }
}
