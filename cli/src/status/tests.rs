use std::net::IpAddr;

use ferrolb_api::ServiceGroupStatus;
use ferrolb_api::annotations as ann;
use ferrolb_api::election::holder;
use ferrolb_api::servicegroup::{FamilyCounts, FamilyStrings};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::cluster::Group;
use crate::testkit::*;

fn cond(type_: &str, status: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        message: message.into(),
        reason: "Test".into(),
        last_transition_time: Time(now()),
        observed_generation: None,
    }
}

fn with_status(mut g: Group, allocated_v4: u64, conditions: Vec<Condition>) -> Group {
    g.status = Some(ServiceGroupStatus {
        capacity: Some(FamilyStrings {
            ipv4: "51".into(),
            ipv6: "256".into(),
        }),
        allocated: Some(FamilyCounts {
            ipv4: allocated_v4,
            ipv6: 0,
        }),
        conditions,
        ..Default::default()
    });
    g
}

fn ready(g: Group) -> Group {
    with_status(
        g,
        1,
        vec![cond("Ready", "True", ""), cond("InUse", "True", "x")],
    )
}

fn svc(name: &str, group: &str, kind: &str, addresses: &[&str]) -> ServiceInfo {
    let mut s = service(group, kind, addresses);
    s.name = name.into();
    s
}

/// A healthy world: a local and a virtual group, three live nodes, one Service each, the local
/// address held by its elected node.
fn healthy() -> (Cluster, Vec<ServiceInfo>) {
    let addr: IpAddr = "192.0.2.100".parse().expect("an address");
    let winner = holder(addr, ["a", "b", "c"]).expect("a holder").to_string();
    let nodes = ["a", "b", "c"]
        .into_iter()
        .map(|n| node(n, "true", if n == winner { &["192.0.2.100"] } else { &[] }))
        .collect();
    let c = cluster(
        vec![ready(local_group("lan")), ready(virtual_group("routed"))],
        nodes,
    );
    let services = vec![
        svc("web", "lan", "local", &["192.0.2.100"]),
        svc("api", "routed", "virtual", &["203.0.113.1"]),
    ];
    (c, services)
}

#[test]
fn a_healthy_cluster_has_no_problems_and_a_summary() {
    let (c, services) = healthy();
    let r = report(&c, &services, &BTreeMap::new());
    assert!(r.healthy(), "{:?}", r.problems);
    assert_eq!(
        r.summary,
        Summary {
            service_groups: 2,
            service_groups_ready: 2,
            services: 2,
            services_with_address: 2,
            addresses_ipv4: 2,
            addresses_ipv6: 0,
            nodes: 3,
            nodes_alive: 3,
            nodes_eligible: 3,
        }
    );
    let text = render(&r);
    assert!(text.starts_with("No problems found.\n"), "{text}");
    assert!(
        text.contains("Nodes:          3 (3 with a live agent, 3 eligible for local addresses)"),
        "{text}"
    );
}

#[test]
fn each_kind_of_problem_is_found_and_named() {
    // (case, how the healthy world is broken, expected (severity, subject, object, words))
    type Break = fn(&mut Cluster, &mut Vec<ServiceInfo>, &mut BTreeMap<String, String>);
    let cases: Vec<(&str, Break, (Severity, Subject, &str, &str))> = vec![
        (
            "group not Ready",
            |c, _, _| {
                let g = c.groups.get_mut("lan").expect("lan");
                *g = with_status(
                    g.clone(),
                    1,
                    vec![
                        cond("Ready", "False", "overlaps with routed"),
                        cond("Overlapping", "True", "overlaps with routed"),
                    ],
                );
            },
            (
                Severity::Error,
                Subject::ServiceGroup,
                "lan",
                "NotReady, Overlapping: Ready: overlaps with routed",
            ),
        ),
        (
            "group exhausted",
            |c, _, _| {
                let g = c.groups.get_mut("lan").expect("lan");
                *g = with_status(
                    g.clone(),
                    51,
                    vec![
                        cond("Ready", "True", ""),
                        cond("Exhausted", "True", "IPv4 has no free address"),
                    ],
                );
            },
            (
                Severity::Warning,
                Subject::ServiceGroup,
                "lan",
                "Exhausted: Exhausted: IPv4 has no free address",
            ),
        ),
        (
            "group full by its usage alone",
            |c, _, _| {
                let g = c.groups.get_mut("lan").expect("lan");
                *g = with_status(g.clone(), 51, vec![cond("Ready", "True", "")]);
            },
            (Severity::Warning, Subject::ServiceGroup, "lan", "IPv4 full"),
        ),
        (
            "group the allocator never reported on",
            |c, _, _| c.groups.get_mut("routed").expect("routed").status = None,
            (
                Severity::Warning,
                Subject::ServiceGroup,
                "routed",
                "the allocator has not reported",
            ),
        ),
        (
            "Service without an address, with the allocator's Event",
            |_, s, f| {
                s.push(svc("new", "lan", "local", &[]));
                f.insert("demo/new".into(), "no free IPv4 address in lan".into());
            },
            (
                Severity::Error,
                Subject::Service,
                "demo/new",
                "AllocationFailed: no free IPv4 address in lan",
            ),
        ),
        (
            "Service naming its group, without an address and no Event",
            |_, s, _| {
                let mut new = svc("new", "lan", "local", &[]);
                new.annotations = [(ann::SERVICE_GROUP.to_string(), "lan".to_string())].into();
                s.push(new);
            },
            (
                Severity::Error,
                Subject::Service,
                "demo/new",
                "is the allocator running?",
            ),
        ),
        (
            "Service naming no group, no group serves it",
            |_, s, _| {
                let mut new = svc("new", "lan", "local", &[]);
                new.annotations.clear();
                s.push(new);
            },
            (
                Severity::Error,
                Subject::Service,
                "demo/new",
                "no ServiceGroup serves this Service",
            ),
        ),
        (
            "local address no node may hold",
            |c, _, _| {
                for l in c.leases.values_mut() {
                    l.subnets = vec!["198.51.100.0/24".parse().expect("a CIDR")];
                }
            },
            (
                Severity::Error,
                Subject::Address,
                "demo/web 192.0.2.100",
                "no candidate",
            ),
        ),
        (
            "virtual address on no node",
            |c, _, _| {
                for l in c.leases.values_mut() {
                    l.ineligible = Some(ferrolb_api::contracts::IneligibleReason::NotSelected);
                }
            },
            (
                Severity::Error,
                Subject::Address,
                "demo/api 203.0.113.1",
                "no node carries",
            ),
        ),
        (
            "local address not taken over yet",
            |c, _, _| {
                for l in c.leases.values_mut() {
                    l.holding.clear();
                }
            },
            (
                Severity::Warning,
                Subject::Address,
                "demo/web 192.0.2.100",
                "whose Lease does not list it yet",
            ),
        ),
        (
            "agent not renewing",
            |c, _, _| {
                c.leases.get_mut("c").expect("c").expires =
                    Some(now() - SignedDuration::from_secs(40));
            },
            (Severity::Error, Subject::Node, "c", "Lease expired 40s ago"),
        ),
    ];
    for (name, break_it, (severity, subject, object, words)) in cases {
        let (mut c, mut services) = healthy();
        let mut failures = BTreeMap::new();
        break_it(&mut c, &mut services, &mut failures);
        let r = report(&c, &services, &failures);
        let found = r
            .problems
            .iter()
            .find(|p| p.object == object)
            .unwrap_or_else(|| panic!("{name}: no problem for {object}: {:?}", r.problems));
        assert_eq!(
            (found.severity, found.subject),
            (severity, subject),
            "{name}"
        );
        assert!(found.message.contains(words), "{name}: {}", found.message);
        assert!(!r.healthy(), "{name}");
    }
}

#[test]
fn a_node_without_an_agent_is_counted_not_a_problem() {
    let (mut c, services) = healthy();
    c.nodes.insert(
        "control-plane".into(),
        crate::cluster::NodeInfo {
            name: "control-plane".into(),
            ..Default::default()
        },
    );
    let r = report(&c, &services, &BTreeMap::new());
    assert!(r.healthy(), "{:?}", r.problems);
    assert_eq!((r.summary.nodes, r.summary.nodes_alive), (4, 3));
}

#[test]
fn errors_come_before_warnings_then_by_kind_and_name() {
    let (mut c, mut services) = healthy();
    c.groups.get_mut("routed").expect("routed").status = None; // warning, ServiceGroup
    c.leases.get_mut("b").expect("b").expires = Some(now() - SignedDuration::from_secs(40)); // error, Node
    services.push(svc("zz", "lan", "local", &[])); // error, Service
    services.push(svc("aa", "lan", "local", &[])); // error, Service
    let r = report(&c, &services, &BTreeMap::new());
    let order: Vec<(Severity, &str)> = r
        .problems
        .iter()
        .map(|p| (p.severity, p.object.as_str()))
        .collect();
    let first = &order[..3];
    assert_eq!(
        first,
        [
            (Severity::Error, "demo/aa"),
            (Severity::Error, "demo/zz"),
            (Severity::Error, "b"),
        ],
        "{order:?}"
    );
    // Should b have held the address, its takeover is a warning about an address, after the group.
    assert_eq!(order[3], (Severity::Warning, "routed"), "{order:?}");
    assert!(
        order[3..].iter().all(|(s, _)| *s == Severity::Warning),
        "{order:?}"
    );
    let text = render(&r);
    assert!(text.starts_with("SEVERITY  KIND"), "{text}");
    assert!(text.contains("warning   ServiceGroup  routed"), "{text}");
}
