//! The metrics' pure functions and the series they leave, table-tested.

use super::*;
use crate::decide::Note;
use crate::observe::ObjKey;
use ferrolb_api::ServiceGroupStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

#[test]
fn every_name_starts_with_ferrolb_allocator() {
    let m = Metrics::new();
    m.allocated("default", "192.0.2.1".parse().expect("ip"));
    m.failed("AllocationFailed");
    m.event_failed("AllocationFailed");
    m.usages([("default", AddrFamily::V4, 51, 1)]);
    m.holders_changed(&svc("a", Some("default"), &[], &[reason::HOLDER_CHANGED]));
    m.announced(&[svc("a", Some("default"), &["192.0.2.1"], &[])]);
    m.reconciled(0.01);
    let text = m.render();
    for want in [
        "ferrolb_allocator_allocations_total{group=\"default\",family=\"ipv4\"} 1",
        "ferrolb_allocator_allocation_failures_total{reason=\"AllocationFailed\"} 1",
        "ferrolb_allocator_event_failures_total{reason=\"AllocationFailed\"} 1",
        "ferrolb_allocator_pool_capacity_addresses{group=\"default\",family=\"ipv4\"} 51",
        "ferrolb_allocator_pool_allocated_addresses{group=\"default\",family=\"ipv4\"} 1",
        "ferrolb_allocator_holder_changes_total{group=\"default\"} 1",
        "ferrolb_allocator_groups_invalid{reason=\"InvalidRange\"} 0",
        "ferrolb_allocator_groups_invalid{reason=\"Overlapping\"} 0",
        "ferrolb_allocator_address_announcers{service_namespace=\"ns\",service_name=\"a\",group=\"default\",address=\"192.0.2.1\"} 0",
        "ferrolb_allocator_reconcile_duration_seconds_count 1",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("ferrolb_allocator_"), "{line}");
    }
}

#[test]
fn the_specimen_has_every_family() {
    let text = specimen();
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families, 9, "{text}");
}

/// Issue 20: a deleted group's pool series stayed at their last value forever.
#[test]
fn the_pool_series_of_a_group_that_is_gone_go() {
    let m = Metrics::new();
    m.groups(&[
        group(
            "a",
            &[(AddrFamily::V4, 10, 1), (AddrFamily::V6, 10, 1)],
            &[],
        ),
        group("b", &[(AddrFamily::V4, 5, 0)], &[]),
    ]);
    let text = m.render();
    assert!(
        text.contains("ferrolb_allocator_pool_capacity_addresses{group=\"b\",family=\"ipv4\"} 5"),
        "{text}"
    );
    m.groups(&[group("a", &[(AddrFamily::V4, 10, 2)], &[])]);
    let text = m.render();
    assert!(
        text.contains("ferrolb_allocator_pool_allocated_addresses{group=\"a\",family=\"ipv4\"} 2"),
        "{text}"
    );
    for gone in ["group=\"b\"", "family=\"ipv6\""] {
        assert!(!text.contains(gone), "{gone} still in\n{text}");
    }
}

#[test]
fn counts_the_groups_that_give_out_nothing_by_condition() {
    let cases: [(&str, Vec<GroupPlan>, [usize; 2]); 4] = [
        ("no group", vec![], [0, 0]),
        ("a valid group", vec![group("a", &[], &[])], [0, 0]),
        (
            "one invalid, one overlapping, one both",
            vec![
                group("a", &[], &[condition::INVALID_RANGE]),
                group("b", &[], &[condition::OVERLAPPING]),
                group(
                    "c",
                    &[],
                    &[condition::INVALID_RANGE, condition::OVERLAPPING],
                ),
            ],
            [2, 2],
        ),
        (
            "other conditions do not count",
            vec![group("a", &[], &[condition::EXHAUSTED])],
            [0, 0],
        ),
    ];
    for (name, groups, [invalid, overlapping]) in cases {
        let got = invalid_groups(&groups);
        assert_eq!(got[condition::INVALID_RANGE], invalid, "{name}");
        assert_eq!(got[condition::OVERLAPPING], overlapping, "{name}");
    }
}

#[test]
fn counts_the_nodes_an_announcing_annotation_names() {
    let cases = [
        ("no annotation", None, 0),
        ("one holder", Some("n1,eth0,192.0.2.1"), 1),
        (
            "two holders",
            Some("n1,eth0,192.0.2.1 n2,eth0,192.0.2.1"),
            2,
        ),
        ("virtual, three nodes", Some("3 nodes,kube-lb0"), 3),
        ("virtual, no node", Some("0 nodes,kube-lb0"), 0),
    ];
    for (name, value, want) in cases {
        let mut p = svc("a", Some("g"), &["192.0.2.1"], &[]);
        if let Some(v) = value {
            p.annotations.insert(ann::ANNOUNCING_IPV4.into(), v.into());
        }
        let got = announcers(&[p]);
        assert_eq!(got.values().copied().collect::<Vec<_>>(), [want], "{name}");
    }
}

#[test]
fn an_address_no_longer_allocated_loses_its_announcer_series() {
    let m = Metrics::new();
    m.announced(&[svc("a", Some("g"), &["192.0.2.1", "2001:db8::1"], &[])]);
    assert!(m.render().contains("address=\"2001:db8::1\""));
    m.announced(&[svc("a", Some("g"), &["192.0.2.1"], &[])]);
    let text = m.render();
    assert!(text.contains("address=\"192.0.2.1\""), "{text}");
    assert!(!text.contains("2001:db8::1"), "{text}");
}

#[test]
fn counts_only_holder_changes_among_the_news() {
    let p = svc(
        "a",
        Some("g"),
        &[],
        &[
            reason::HOLDER_CHANGED,
            reason::HOLDER_CHANGED,
            "AddressAllocated",
        ],
    );
    assert_eq!(holder_changes(&p), 2);
}

fn svc(name: &str, group: Option<&str>, ingress: &[&str], news: &[&'static str]) -> SvcPlan {
    SvcPlan {
        key: ObjKey::new("ns", name),
        group: group.map(Into::into),
        ingress: ingress.iter().map(|a| a.parse().expect("ip")).collect(),
        news: news.iter().map(|r| Note::normal(r, "m")).collect(),
        ..Default::default()
    }
}

fn group(name: &str, usage: &[(AddrFamily, u128, u64)], true_conditions: &[&str]) -> GroupPlan {
    GroupPlan {
        name: name.into(),
        status: ServiceGroupStatus {
            conditions: true_conditions
                .iter()
                .map(|t| Condition {
                    type_: (*t).into(),
                    status: "True".into(),
                    reason: "R".into(),
                    message: String::new(),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                    observed_generation: None,
                })
                .collect(),
            ..Default::default()
        },
        finalizer: false,
        usage: usage.to_vec(),
    }
}
