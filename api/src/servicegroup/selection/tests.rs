use super::*;
use Family::{V4, V6};

struct G {
    name: &'static str,
    spec: ServiceGroupSpec,
    offered: BTreeSet<Family>,
    unusable: Option<String>,
    full: Vec<Family>,
}

fn g(name: &'static str) -> G {
    G {
        name,
        spec: ServiceGroupSpec::default(),
        offered: [V4].into(),
        unusable: None,
        full: Vec::new(),
    }
}

impl G {
    fn auto(mut self, on: bool) -> Self {
        self.spec.auto_assign = Some(on);
        self
    }
    fn prio(mut self, p: i32) -> Self {
        self.spec.priority = Some(p);
        self
    }
    fn offers(mut self, f: &[Family]) -> Self {
        self.offered = f.iter().copied().collect();
        self
    }
    fn full(mut self, f: Family) -> Self {
        self.full.push(f);
        self
    }
    fn ns(mut self, ns: &str) -> Self {
        self.spec.namespaces.push(ns.into());
        self
    }
    fn unusable(mut self) -> Self {
        self.unusable = Some("Overlapping".into());
        self
    }
    fn facts(&self) -> GroupFacts<'_> {
        GroupFacts {
            name: self.name,
            spec: &self.spec,
            offered: self.offered.clone(),
            unusable: self.unusable.clone(),
            no_room: self
                .full
                .iter()
                .map(|f| (*f, format!("no free {f} address")))
                .collect(),
        }
    }
}

fn run(groups: &[G], families: &[Family], policy: Policy) -> (Option<String>, Vec<String>) {
    let facts: Vec<GroupFacts> = groups.iter().map(G::facts).collect();
    let ask = Ask {
        who: Who {
            namespace: "ns",
            ..Default::default()
        },
        families,
        policy,
    };
    let s = select(&ask, &facts);
    let chosen = s.chosen().map(|(g, _)| g.to_string());
    let order = s.verdicts.iter().map(|v| v.group.to_string()).collect();
    (chosen, order)
}

#[test]
fn picks_the_first_candidate_with_room_in_priority_order() {
    use Policy::*;
    let cases: Vec<(&str, Vec<G>, &[Family], Policy, Option<&str>)> = vec![
        (
            "lower priority number first",
            vec![g("a").auto(true).prio(20), g("b").auto(true).prio(10)],
            &[V4],
            SingleStack,
            Some("b"),
        ),
        (
            "groups without priority after those with one",
            vec![g("a").auto(true), g("z").auto(true).prio(100)],
            &[V4],
            SingleStack,
            Some("z"),
        ),
        (
            "ties by name",
            vec![g("b").auto(true).prio(1), g("a").auto(true).prio(1)],
            &[V4],
            SingleStack,
            Some("a"),
        ),
        (
            "default auto-assigns when unset",
            vec![g("default"), g("other")],
            &[V4],
            SingleStack,
            Some("default"),
        ),
        (
            "others do not when unset",
            vec![g("first-pool")],
            &[V4],
            SingleStack,
            None,
        ),
        (
            "explicit false on default",
            vec![g("default").auto(false), g("x").auto(true)],
            &[V4],
            SingleStack,
            Some("x"),
        ),
        (
            "explicit true on any group",
            vec![g("first-pool").auto(true)],
            &[V4],
            SingleStack,
            Some("first-pool"),
        ),
        (
            "full group skipped to the next",
            vec![
                g("a").auto(true).prio(1).full(V4),
                g("b").auto(true).prio(2),
            ],
            &[V4],
            SingleStack,
            Some("b"),
        ),
        (
            "full in a family the Service does not need is fine",
            vec![
                g("a").auto(true).prio(1).offers(&[V4, V6]).full(V6),
                g("b").auto(true).prio(2),
            ],
            &[V4],
            SingleStack,
            Some("a"),
        ),
        (
            "namespace not admitted",
            vec![g("a").auto(true).prio(1).ns("other"), g("b").auto(true)],
            &[V4],
            SingleStack,
            Some("b"),
        ),
        (
            "namespace admitted",
            vec![g("a").auto(true).prio(1).ns("ns"), g("b").auto(true)],
            &[V4],
            SingleStack,
            Some("a"),
        ),
        (
            "unusable group skipped",
            vec![g("a").auto(true).prio(1).unusable(), g("b").auto(true)],
            &[V4],
            SingleStack,
            Some("b"),
        ),
        (
            "single-stack IPv6 skips a v4-only group",
            vec![
                g("a").auto(true).prio(1),
                g("b").auto(true).prio(2).offers(&[V6]),
            ],
            &[V6],
            SingleStack,
            Some("b"),
        ),
        (
            "RequireDualStack skips a v4-only group",
            vec![
                g("a").auto(true).prio(1),
                g("b").auto(true).prio(2).offers(&[V4, V6]),
            ],
            &[V4, V6],
            RequireDualStack,
            Some("b"),
        ),
        (
            "RequireDualStack skips a group full in one family",
            vec![
                g("a").auto(true).prio(1).offers(&[V4, V6]).full(V6),
                g("b").auto(true).prio(2).offers(&[V4, V6]),
            ],
            &[V4, V6],
            RequireDualStack,
            Some("b"),
        ),
        (
            "RequireDualStack with no dual group",
            vec![g("a").auto(true)],
            &[V4, V6],
            RequireDualStack,
            None,
        ),
        (
            "PreferDualStack prefers a dual group over priority",
            vec![
                g("a").auto(true).prio(1),
                g("b").auto(true).prio(2).offers(&[V4, V6]),
            ],
            &[V4, V6],
            PreferDualStack,
            Some("b"),
        ),
        (
            "PreferDualStack takes a single-family group when no dual one has room",
            vec![
                g("a").auto(true).prio(2),
                g("b").auto(true).prio(1).offers(&[V4, V6]).full(V4),
            ],
            &[V4, V6],
            PreferDualStack,
            Some("a"),
        ),
        (
            "PreferDualStack asking one family keeps priority order",
            vec![
                g("a").auto(true).prio(1),
                g("b").auto(true).prio(2).offers(&[V4, V6]),
            ],
            &[V4],
            PreferDualStack,
            Some("a"),
        ),
        ("no groups", vec![], &[V4], SingleStack, None),
    ];
    for (name, groups, fams, policy, want) in cases {
        let (got, order) = run(&groups, fams, policy);
        assert_eq!(got.as_deref(), want, "{name}: order {order:?}");
    }
}

#[test]
fn orders_every_group_and_says_why_each_was_passed_over() {
    let groups = [
        g("manual").auto(false).prio(0),
        g("tenant").auto(true).prio(1).ns("other"),
        g("v6").auto(true).prio(2).offers(&[V6]),
        g("tiny").auto(true).prio(3).full(V4),
        g("big").auto(true).prio(4),
        g("later").auto(true),
    ];
    let facts: Vec<GroupFacts> = groups.iter().map(G::facts).collect();
    let ask = Ask {
        who: Who {
            namespace: "ns",
            ..Default::default()
        },
        families: &[V4],
        policy: Policy::SingleStack,
    };
    let s = select(&ask, &facts);
    let order: Vec<&str> = s.verdicts.iter().map(|v| v.group).collect();
    assert_eq!(order, ["manual", "tenant", "v6", "tiny", "big", "later"]);
    assert_eq!(s.chosen(), Some(("big", &[V4][..])));
    let passed: Vec<String> = s
        .passed_over()
        .iter()
        .map(|(g, why)| format!("{g}: {why}"))
        .collect();
    assert_eq!(
        passed,
        [
            "tenant: namespace ns is not in its spec.namespaces",
            "v6: no IPv4 pool",
            "tiny: no free IPv4 address",
        ],
        "autoAssign-off groups are not candidates, so not passed over"
    );
    let why = s.why_chosen();
    assert!(why.contains("passed over: tenant (namespace ns"), "{why}");
    assert!(!why.contains("manual"), "{why}");
    assert_eq!(
        s.verdicts[0].outcome,
        Err(PassedOver::AutoAssignOff),
        "still explained for where/pools"
    );
}

#[test]
fn a_failure_lists_every_group() {
    let groups = [g("first-pool"), g("tiny").auto(true).full(V4)];
    let facts: Vec<GroupFacts> = groups.iter().map(G::facts).collect();
    let ask = Ask {
        who: Who {
            namespace: "ns",
            ..Default::default()
        },
        families: &[V4],
        policy: Policy::SingleStack,
    };
    let s = select(&ask, &facts);
    assert_eq!(s.chosen(), None);
    let msg = s.why_none();
    assert!(
        msg.contains("first-pool (autoAssign is off), tiny (no free IPv4 address)"),
        "{msg}"
    );
    assert!(msg.contains("set autoAssign: true"), "{msg}");
    assert!(select(&ask, &[]).why_none().contains("there is none"));
}

#[test]
fn picks_families_by_policy() {
    let both: BTreeSet<Family> = [V4, V6].into();
    let v4: BTreeSet<Family> = [V4].into();
    let ask = |policy, families: &'static [Family]| Ask {
        who: Who {
            namespace: "ns",
            ..Default::default()
        },
        families,
        policy,
    };
    use Policy::*;
    let cases: Vec<(&str, Ask, &BTreeSet<Family>, Option<Vec<Family>>)> = vec![
        ("single v4", ask(SingleStack, &[V4]), &both, Some(vec![V4])),
        ("single v6", ask(SingleStack, &[V6]), &both, Some(vec![V6])),
        (
            "single v6 from v4 group",
            ask(SingleStack, &[V6]),
            &v4,
            None,
        ),
        (
            "prefer dual on dual",
            ask(PreferDualStack, &[V6, V4]),
            &both,
            Some(vec![V6, V4]),
        ),
        (
            "prefer dual on v4",
            ask(PreferDualStack, &[V4, V6]),
            &v4,
            Some(vec![V4]),
        ),
        (
            "require dual on dual",
            ask(RequireDualStack, &[V4, V6]),
            &both,
            Some(vec![V4, V6]),
        ),
        (
            "require dual on v4",
            ask(RequireDualStack, &[V4, V6]),
            &v4,
            None,
        ),
        (
            "no families given",
            ask(SingleStack, &[]),
            &both,
            Some(vec![V4]),
        ),
    ];
    for (name, a, offered, want) in cases {
        assert_eq!(families(&a, offered, "g").ok(), want, "{name}");
    }
    let e = families(&ask(RequireDualStack, &[V4, V6]), &v4, "g").expect_err("no IPv6 pool");
    assert!(
        e.contains("RequireDualStack") && e.contains("no IPv6 pool"),
        "{e}"
    );
}

#[test]
fn auto_assign_unset_is_on_only_for_default() {
    let unset = ServiceGroupSpec::default();
    assert!(unset.auto_assigns("default"));
    assert!(!unset.auto_assigns("first-pool"));
    let off = ServiceGroupSpec {
        auto_assign: Some(false),
        ..Default::default()
    };
    assert!(!off.auto_assigns("default"));
    let on = ServiceGroupSpec {
        auto_assign: Some(true),
        ..Default::default()
    };
    assert!(on.auto_assigns("first-pool"));
}

#[test]
fn a_namespace_default_goes_first_and_a_tenant_uses_only_its_groups() {
    let ns_default = |mut g: G| {
        g.spec.namespace_default = true;
        g
    };
    let enforcing = |mut g: G| {
        g.spec.enforce_namespaces = true;
        g
    };
    let run = |groups: &[G]| {
        let facts: Vec<GroupFacts> = groups.iter().map(G::facts).collect();
        let ask = Ask {
            who: Who {
                namespace: "ns",
                ..Default::default()
            },
            families: &[V4],
            policy: Policy::SingleStack,
        };
        let s = select(&ask, &facts);
        let chosen = s.chosen().map(|(g, _)| g.to_string());
        (chosen, s.why_chosen(), s.why_none())
    };
    let (chosen, why, _) = run(&[
        g("shared").auto(true).prio(1),
        ns_default(g("mine").ns("ns")),
        ns_default(g("theirs").ns("other")),
    ]);
    assert_eq!(chosen.as_deref(), Some("mine"));
    assert!(
        why.starts_with("the default ServiceGroup of its namespace"),
        "{why}"
    );
    let (chosen, _, why) = run(&[
        g("shared").auto(true).prio(1),
        enforcing(g("tenant").auto(true).ns("ns").full(V4)),
    ]);
    assert_eq!(chosen, None, "the shared group is outside the tenancy");
    assert!(
        why.contains("shared (namespace ns is a tenant of ServiceGroup tenant (enforceNamespaces) and may use only it)"),
        "{why}"
    );
}
