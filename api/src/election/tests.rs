use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn eligible() -> NodeFacts {
    NodeFacts {
        selected: true,
        ready: true,
        carrier_up: true,
        ..Default::default()
    }
}

fn contender(name: &str) -> Contender {
    Contender {
        name: name.into(),
        ineligible: None,
        alive: true,
        subnets: vec![
            "192.0.2.0/24".parse().expect("cidr"),
            "2001:db8:1::/64".parse().expect("cidr"),
        ],
        has_local_endpoint: true,
    }
}

#[test]
fn hash_is_sha256_of_node_hash_sign_address() {
    // Test vector: `printf %s 'node-a#192.0.2.10' | sha256sum`.
    let want = "d4b84135501a6622f43f01422f65d768d1a4637914be8add4e31f107336b8068";
    let got: String = election_hash("node-a", ip("192.0.2.10"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, want);
    // IPv6 uses RFC 5952 text: a long form hashes like its canonical form.
    assert_eq!(
        election_hash("n", ip("2001:0db8:0001:0000:0000:0000:0000:0005")),
        election_hash("n", ip("2001:db8:1::5"))
    );
}

#[test]
fn lowest_hash_holds_and_families_are_elected_apart() {
    let nodes = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    let v4 = ip("192.0.2.10");
    let h = holder(v4, nodes).expect("a holder");
    for n in nodes {
        assert!(election_hash(h, v4) <= election_hash(n, v4));
    }
    // Order of candidates does not matter.
    let mut reversed = nodes;
    reversed.reverse();
    assert_eq!(holder(v4, reversed), Some(h));
    // Over many addresses every node holds some: the hash spreads them.
    let mut held = BTreeMap::new();
    for i in 0..200u32 {
        let a = IpAddr::V4(std::net::Ipv4Addr::from(0xC000_0200 + (i % 256)));
        let v6 = IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_0001_0000_0000_0000_0000_0000u128 + u128::from(i),
        ));
        *held.entry(holder(a, nodes).expect("holder")).or_insert(0) += 1;
        *held.entry(holder(v6, nodes).expect("holder")).or_insert(0) += 1;
    }
    assert_eq!(held.len(), nodes.len(), "{held:?}");
    assert_eq!(holder(v4, std::iter::empty()), None);
}

#[test]
fn eligibility_rules() {
    let cases: Vec<(&str, NodeFacts, Option<IneligibleReason>)> = vec![
        ("eligible", eligible(), None),
        (
            "not selected",
            NodeFacts {
                selected: false,
                ..eligible()
            },
            Some(IneligibleReason::NotSelected),
        ),
        (
            "exclusion label",
            NodeFacts {
                labels: labels(&[(EXCLUDE_LABEL, "")]),
                ..eligible()
            },
            Some(IneligibleReason::ExcludedLabel),
        ),
        (
            "not ready",
            NodeFacts {
                ready: false,
                ..eligible()
            },
            Some(IneligibleReason::NotReady),
        ),
        (
            "network unavailable",
            NodeFacts {
                network_unavailable: true,
                ..eligible()
            },
            Some(IneligibleReason::NetworkUnavailable),
        ),
        (
            "carrier down",
            NodeFacts {
                carrier_up: false,
                ..eligible()
            },
            Some(IneligibleReason::CarrierDown),
        ),
        (
            "stopping wins",
            NodeFacts {
                stopping: true,
                ready: false,
                ..eligible()
            },
            Some(IneligibleReason::Stopping),
        ),
        (
            "cordoned nodes stay eligible (unschedulable is not a fact here)",
            NodeFacts {
                labels: labels(&[("node.kubernetes.io/unschedulable", "")]),
                ..eligible()
            },
            None,
        ),
    ];
    for (name, facts, want) in cases {
        assert_eq!(eligibility(&facts), want, "{name}");
    }
}

#[test]
fn candidates_and_reasons() {
    let a = ip("192.0.2.10");
    let cases: Vec<(&str, Contender, bool, Result<(), NotCandidate>)> = vec![
        ("candidate", contender("n"), false, Ok(())),
        (
            "ineligible",
            Contender {
                ineligible: Some(IneligibleReason::CarrierDown),
                ..contender("n")
            },
            false,
            Err(NotCandidate::Ineligible(IneligibleReason::CarrierDown)),
        ),
        (
            "dead",
            Contender {
                alive: false,
                ..contender("n")
            },
            false,
            Err(NotCandidate::NotAlive),
        ),
        (
            "no subnet",
            Contender {
                subnets: vec!["198.51.100.0/24".parse().expect("cidr")],
                ..contender("n")
            },
            false,
            Err(NotCandidate::NoSubnet),
        ),
        (
            "etp local without endpoint",
            Contender {
                has_local_endpoint: false,
                ..contender("n")
            },
            true,
            Err(NotCandidate::NoLocalEndpoint),
        ),
        (
            "etp cluster ignores endpoints",
            Contender {
                has_local_endpoint: false,
                ..contender("n")
            },
            false,
            Ok(()),
        ),
    ];
    for (name, c, etp_local, want) in cases {
        assert_eq!(candidacy(&c, a, etp_local), want, "{name}");
    }
}

#[test]
fn elect_skips_non_candidates_and_etp_local_without_endpoints_elects_nobody() {
    let a = ip("192.0.2.10");
    let all = vec![
        contender("node-a"),
        contender("node-b"),
        contender("node-c"),
    ];
    let (h, rejected) = elect(a, &all, false);
    let h = h.expect("holder");
    assert!(rejected.is_empty());
    // The holder dies: another node takes over, and the dead one is explained.
    let mut after = all.clone();
    after
        .iter_mut()
        .filter(|c| c.name == h)
        .for_each(|c| c.alive = false);
    let (h2, rejected) = elect(a, &after, false);
    assert_ne!(h2, Some(h));
    assert_eq!(rejected, vec![(h, NotCandidate::NotAlive)]);
    let none: Vec<Contender> = all
        .iter()
        .map(|c| Contender {
            has_local_endpoint: false,
            ..c.clone()
        })
        .collect();
    assert_eq!(elect(a, &none, true).0, None);
}

#[test]
fn lbnodeagent_selection() {
    let sel = |k: &str, v: &str| LabelSelector {
        match_labels: Some([(k.to_string(), v.to_string())].into()),
        ..Default::default()
    };
    let expr = |op: &str, values: &[&str]| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }]),
        ..Default::default()
    };
    let edge = sel("role", "edge");
    let zone_a = expr("In", &["a"]);
    let agents: Vec<(&str, Option<&LabelSelector>)> = vec![
        ("default", None),
        ("zz-edge", Some(&edge)),
        ("aa-edge", Some(&edge)),
        ("zone-a", Some(&zone_a)),
    ];
    let cases: Vec<(&str, BTreeMap<String, String>, Option<(&str, bool)>)> = vec![
        (
            "no other selects: default",
            labels(&[]),
            Some(("default", true)),
        ),
        (
            "lowest name among several",
            labels(&[("role", "edge")]),
            Some(("aa-edge", true)),
        ),
        (
            "expression In",
            labels(&[("zone", "a")]),
            Some(("zone-a", true)),
        ),
        (
            "expression In, other value",
            labels(&[("zone", "b")]),
            Some(("default", true)),
        ),
    ];
    for (name, l, want) in cases {
        assert_eq!(agent_for_node(&agents, &l), want, "{name}");
    }
    let restrictive_default = sel("lb", "yes");
    let only_default = vec![("default", Some(&restrictive_default))];
    assert_eq!(
        agent_for_node(&only_default, &labels(&[])),
        Some(("default", false))
    );
    assert_eq!(agent_for_node(&[], &labels(&[])), None);
    assert!(selects(Some(&expr("NotIn", &["a"])), &labels(&[])));
    assert!(!selects(Some(&expr("Exists", &[])), &labels(&[])));
    assert!(selects(Some(&expr("DoesNotExist", &[])), &labels(&[])));
}
