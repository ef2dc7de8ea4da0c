//! `agent_config`: which LBNodeAgent applies to this node.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_api::{LBNodeAgent, LBNodeAgentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::decide::agent_config;
use crate::snapshot::{Gratuitous, LocalInterface, NodeFacts};

fn agent(name: &str, selector: Option<LabelSelector>) -> LBNodeAgent {
    LBNodeAgent::new(
        name,
        LBNodeAgentSpec {
            node_selector: selector,
            ..LBNodeAgentSpec::default()
        },
    )
}

fn labels(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
}

fn exists(key: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: "Exists".into(),
            values: None,
        }]),
    })
}

fn node(pairs: &[(&str, &str)]) -> NodeFacts {
    NodeFacts {
        name: "n1".into(),
        labels: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ready: true,
        network_unavailable: false,
    }
}

#[test]
fn picks_the_lbnodeagent_for_this_node() {
    // (name, agents, node labels, source, selects_node, also_selecting)
    type Case = (
        &'static str,
        Vec<LBNodeAgent>,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
        bool,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "no LBNodeAgent: built-in defaults, every node",
            vec![],
            &[],
            None,
            true,
            &[],
        ),
        (
            "only default, no selector: every node",
            vec![agent("default", None)],
            &[],
            Some("default"),
            true,
            &[],
        ),
        (
            "default's selector does not match: not selected",
            vec![agent("default", labels(&[("lb", "yes")]))],
            &[("lb", "no")],
            Some("default"),
            false,
            &[],
        ),
        (
            "default's selector with an expression matches",
            vec![agent("default", exists("lb"))],
            &[("lb", "")],
            Some("default"),
            true,
            &[],
        ),
        (
            "another LBNodeAgent that selects the node wins over default",
            vec![
                agent("default", None),
                agent("edge", labels(&[("zone", "edge")])),
            ],
            &[("zone", "edge")],
            Some("edge"),
            true,
            &[],
        ),
        (
            "one that does not select the node leaves it to default",
            vec![
                agent("default", None),
                agent("edge", labels(&[("zone", "edge")])),
            ],
            &[("zone", "core")],
            Some("default"),
            true,
            &[],
        ),
        (
            "among several, the lowest name wins and the others are named",
            vec![
                agent("default", None),
                agent("zz", exists("zone")),
                agent("aa", exists("zone")),
            ],
            &[("zone", "edge")],
            Some("aa"),
            true,
            &["zz"],
        ),
    ];
    for (name, agents, node_labels, source, selects, also) in cases {
        let config = agent_config(&agents, &node(node_labels)).expect(name);
        assert_eq!(config.source.as_deref(), source, "{name}");
        assert_eq!(config.selects_node, selects, "{name}");
        assert_eq!(config.also_selecting, also, "{name}");
    }
}

#[test]
fn parses_settings_and_refuses_bad_ones() {
    let mut spec = LBNodeAgentSpec {
        local_interface: "^en".into(),
        local_address_lifetime: "9s".into(),
        ..LBNodeAgentSpec::default()
    };
    let config =
        agent_config(&[LBNodeAgent::new("default", spec.clone())], &node(&[])).expect("valid");
    assert!(matches!(&config.local_interface, LocalInterface::Matching(r) if r.is_match("enp0s3")));
    assert_eq!(config.local_address_lifetime, 9);
    assert_eq!(config.virtual_interface, "kube-lb0");
    let defaults = agent_config(&[], &node(&[])).expect("valid");
    assert!(matches!(
        defaults.local_interface,
        LocalInterface::DefaultRoute
    ));
    assert_eq!(defaults.local_address_lifetime, 5);
    assert_eq!(defaults.gratuitous, Gratuitous::default());
    assert_eq!(defaults.drain, Duration::from_secs(5));
    assert_eq!(defaults.gossip_settle, Duration::from_secs(2));
    let mut tuned = LBNodeAgentSpec {
        gossip_settle: "1s500ms".into(),
        ..Default::default()
    };
    tuned.gratuitous.interval = "1s200ms".into();
    tuned.gratuitous.initial_delay = "50ms".into();
    tuned.drain = "1m".into();
    let tuned = agent_config(&[LBNodeAgent::new("default", tuned)], &node(&[])).expect("valid");
    assert_eq!(
        (
            tuned.gratuitous.interval,
            tuned.gratuitous.initial_delay,
            tuned.drain,
            tuned.gossip_settle
        ),
        (
            Duration::from_millis(1200),
            Duration::from_millis(50),
            Duration::from_secs(60),
            Duration::from_millis(1500)
        )
    );

    for (field, bad) in [
        ("lifetime", "2s"),
        ("lifetime", "1500ms"),
        ("interface", "("),
        ("drain", "soon"),
        ("settle", "soon"),
    ] {
        spec.local_address_lifetime = if field == "lifetime" {
            bad.into()
        } else {
            "5s".into()
        };
        spec.local_interface = if field == "interface" {
            bad.into()
        } else {
            "default".into()
        };
        spec.drain = if field == "drain" {
            bad.into()
        } else {
            "5s".into()
        };
        spec.gossip_settle = if field == "settle" {
            bad.into()
        } else {
            "2s".into()
        };
        let err = agent_config(&[LBNodeAgent::new("default", spec.clone())], &node(&[]));
        assert!(err.is_err(), "{field} {bad:?} must be refused");
    }
}
