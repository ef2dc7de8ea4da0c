//! `agent_config`: which LBNodeAgent applies to this node.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_api::{LBNodeAgent, LBNodeAgentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::decide::agent_config;
use crate::snapshot::{AgentConfig, Gratuitous, LocalInterface, NodeFacts};

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
        let selection = agent_config(&agents, &node(node_labels), None);
        assert!(selection.rejected.is_empty(), "{name}");
        let config = selection.config;
        assert_eq!(config.source.as_deref(), source, "{name}");
        assert_eq!(config.selects_node, selects, "{name}");
        assert_eq!(config.also_selecting, also, "{name}");
    }
}

/// The settings when every LBNodeAgent parses.
fn valid(agents: &[LBNodeAgent]) -> AgentConfig {
    let selection = agent_config(agents, &node(&[]), None);
    assert!(selection.rejected.is_empty(), "{:?}", selection.rejected);
    selection.config
}

#[test]
fn parses_settings_and_refuses_bad_ones() {
    let mut spec = LBNodeAgentSpec {
        local_interface: "^en".into(),
        local_address_lifetime: "9s".into(),
        ..LBNodeAgentSpec::default()
    };
    let config = valid(&[LBNodeAgent::new("default", spec.clone())]);
    assert!(matches!(&config.local_interface, LocalInterface::Matching(r) if r.is_match("enp0s3")));
    assert_eq!(config.local_address_lifetime, 9);
    assert_eq!(config.virtual_interface, "kube-lb0");
    let defaults = valid(&[]);
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
    let tuned = valid(&[LBNodeAgent::new("default", tuned)]);
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
        let selection = agent_config(
            &[LBNodeAgent::new("default", spec.clone())],
            &node(&[]),
            None,
        );
        assert_eq!(
            selection.rejected.len(),
            1,
            "{field} {bad:?} must be refused"
        );
        assert_eq!(selection.config.source, None, "{field}: built-in defaults");
    }
}

fn with(name: &str, selector: Option<LabelSelector>, f: fn(&mut LBNodeAgentSpec)) -> LBNodeAgent {
    let mut a = agent(name, selector);
    f(&mut a.spec);
    a
}

fn operator(op: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: op.into(),
            values: Some(vec!["edge".into()]),
        }]),
    })
}

/// Issue 16 item 9: what the API server let through never stops the agent, on any node; the
/// bad object is set aside by name and field, and the rest of the selection goes on.
#[test]
fn a_bad_lbnodeagent_is_set_aside_by_name_and_the_others_apply() {
    // (name, agents, node labels, source, rejected "agent: field" prefixes)
    type Case = (
        &'static str,
        Vec<LBNodeAgent>,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "a regex that does not compile, on a node it does not select",
            vec![
                agent("default", None),
                with("edge", labels(&[("zone", "edge")]), |s| {
                    s.local_interface = "eth(".into()
                }),
            ],
            &[("zone", "core")],
            Some("default"),
            &["LBNodeAgent edge: spec.localInterface: \"eth(\" is not a regular expression"],
        ),
        (
            "the same on a node it selects: as if it were absent",
            vec![
                agent("default", None),
                with("edge", labels(&[("zone", "edge")]), |s| {
                    s.local_interface = "eth(".into()
                }),
            ],
            &[("zone", "edge")],
            Some("default"),
            &["LBNodeAgent edge: spec.localInterface"],
        ),
        (
            "a regex RE2 takes and Rust's regex does not",
            vec![with("default", None, |s| {
                s.local_interface = r"\Qeth0\E".into()
            })],
            &[],
            None,
            &["LBNodeAgent default: spec.localInterface"],
        ),
        (
            "an unknown selector operator",
            vec![agent("default", None), agent("edge", operator("Equals"))],
            &[("zone", "edge")],
            Some("default"),
            &["LBNodeAgent edge: spec.nodeSelector.matchExpressions[0]: unknown operator"],
        ),
        (
            "a drain of u64::MAX seconds",
            vec![with("default", None, |s| {
                s.drain = "18446744073709551615s".into()
            })],
            &[],
            None,
            &[
                "LBNodeAgent default: spec.drain: \"18446744073709551615s\" is more than the most allowed, 5m",
            ],
        ),
        (
            "two bad fields of one object, both named",
            vec![with("default", None, |s| {
                s.drain = "6m".into();
                s.gossip_settle = "2m".into();
            })],
            &[],
            None,
            &["LBNodeAgent default: spec.gossipSettle"],
        ),
    ];
    for (name, agents, node_labels, source, rejected) in cases {
        let selection = agent_config(&agents, &node(node_labels), None);
        assert_eq!(selection.config.source.as_deref(), source, "{name}");
        let got: Vec<String> = selection.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), rejected.len(), "{name}: {got:?}");
        for (g, want) in got.iter().zip(rejected) {
            assert!(g.starts_with(want), "{name}: {g:?}");
        }
    }
}

/// A bad edit of the LBNodeAgent in force moves nothing: its last good settings stay until it
/// is fixed or deleted.
#[test]
fn the_settings_of_an_lbnodeagent_that_turns_bad_stay_in_force() {
    let edge = |regex: &str| {
        let mut a = agent("edge", labels(&[("zone", "edge")]));
        a.spec.local_interface = regex.into();
        a
    };
    let on = node(&[("zone", "edge")]);
    let good = agent_config(&[agent("default", None), edge("^en")], &on, None).config;
    assert_eq!(good.source.as_deref(), Some("edge"));

    let bad = agent_config(&[agent("default", None), edge("en(")], &on, Some(&good));
    assert_eq!(bad.config.source.as_deref(), Some("edge"), "kept");
    assert!(
        matches!(&bad.config.local_interface, LocalInterface::Matching(r) if r.as_str() == "^en")
    );
    assert_eq!(bad.rejected.len(), 1);

    // Last settings from another object: a bad one is simply absent.
    let from_default = agent_config(&[agent("default", None)], &on, None).config;
    let other = agent_config(
        &[agent("default", None), edge("en(")],
        &on,
        Some(&from_default),
    );
    assert_eq!(other.config.source.as_deref(), Some("default"));

    // Deleted: the next in line applies.
    let gone = agent_config(&[agent("default", None)], &on, Some(&good));
    assert_eq!(gone.config.source.as_deref(), Some("default"));
}
