use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use serde_json::{Value, json};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    }
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }]),
    }
}

#[test]
fn evaluates_selectors_as_kubernetes_does() {
    let team_b = labels(&[("team", "b"), ("env", "prod")]);
    let none = labels(&[]);
    // (name, selector, labels, want: Ok(matches) or Err(text the reason contains))
    let cases: Vec<(&str, LabelSelector, &Labels, Result<bool, &str>)> = vec![
        (
            "empty selects all",
            LabelSelector::default(),
            &none,
            Ok(true),
        ),
        ("label equal", sel(&[("team", "b")]), &team_b, Ok(true)),
        ("label differs", sel(&[("team", "a")]), &team_b, Ok(false)),
        ("label missing", sel(&[("team", "b")]), &none, Ok(false)),
        ("In", expr("env", "In", &["dev", "prod"]), &team_b, Ok(true)),
        (
            "In, other value",
            expr("env", "In", &["dev"]),
            &team_b,
            Ok(false),
        ),
        (
            "In, no label",
            expr("env", "In", &["dev"]),
            &none,
            Ok(false),
        ),
        ("NotIn", expr("env", "NotIn", &["dev"]), &team_b, Ok(true)),
        (
            "NotIn, no label",
            expr("env", "NotIn", &["dev"]),
            &none,
            Ok(true),
        ),
        (
            "NotIn, value",
            expr("env", "NotIn", &["prod"]),
            &team_b,
            Ok(false),
        ),
        ("Exists", expr("team", "Exists", &[]), &team_b, Ok(true)),
        (
            "Exists, none",
            expr("team", "Exists", &[]),
            &none,
            Ok(false),
        ),
        (
            "DoesNotExist",
            expr("gpu", "DoesNotExist", &[]),
            &team_b,
            Ok(true),
        ),
        (
            "DoesNotExist, has",
            expr("team", "DoesNotExist", &[]),
            &team_b,
            Ok(false),
        ),
        (
            "bad operator",
            expr("team", "Equals", &["b"]),
            &team_b,
            Err("matchExpressions[0]: unknown operator \"Equals\""),
        ),
        (
            "In without values",
            expr("team", "In", &[]),
            &team_b,
            Err("In needs at least one value"),
        ),
        (
            "Exists with values",
            expr("team", "Exists", &["b"]),
            &team_b,
            Err("Exists takes no values"),
        ),
    ];
    for (name, s, l, want) in cases {
        match (matches(&s, l), want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
            (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
        }
    }
}

#[test]
fn writes_selectors_as_kubectl_does() {
    let mut s = sel(&[("team", "b")]);
    s.match_expressions = [
        expr("env", "In", &["x", "y"]),
        expr("gpu", "Exists", &[]),
        expr("legacy", "DoesNotExist", &[]),
    ]
    .into_iter()
    .flat_map(|e| e.match_expressions.unwrap_or_default())
    .collect::<Vec<_>>()
    .into();
    assert_eq!(selector_text(&s), "team=b,env in (x,y),gpu,!legacy");
    assert_eq!(selector_text(&LabelSelector::default()), "everything");
}

/// A group spec from the JSON a user writes.
fn spec(v: Value) -> ServiceGroupSpec {
    let mut v = v;
    v["local"] = json!({"v4pools": [{"subnet": "192.0.2.0/24", "pool": "192.0.2.1/32"}]});
    serde_json::from_value(v).expect("a valid test spec")
}

fn who<'a>(namespace: &'a str, ns_labels: &'a Labels, svc_labels: &'a Labels) -> Who<'a> {
    Who {
        namespace,
        namespace_labels: Some(ns_labels),
        labels: Some(svc_labels),
    }
}

#[test]
fn admits_by_namespace_list_selectors_and_tenancy() {
    let (team_a, web, plain) = (
        &labels(&[("team", "a")]),
        &labels(&[("app", "web")]),
        &Labels::new(),
    );
    let groups: Vec<(&str, ServiceGroupSpec)> = vec![
        ("open", spec(json!({}))),
        ("listed", spec(json!({"namespaces": ["a"]}))),
        (
            "team-b",
            spec(json!({"namespaceSelector": {"matchLabels": {"team": "b"}}})),
        ),
        (
            "web",
            spec(json!({"serviceSelector": {"matchLabels": {"app": "web"}}})),
        ),
        (
            "broken",
            spec(
                json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Like", "values": ["a"]}]}}),
            ),
        ),
        (
            "tenant-a",
            spec(
                json!({"enforceNamespaces": true, "namespaceSelector": {"matchLabels": {"team": "a"}}}),
            ),
        ),
        // Enforcing without a namespace restriction claims nothing.
        ("loose", spec(json!({"enforceNamespaces": true}))),
    ];
    let all = || groups.iter().map(|(n, s)| (*n, s));
    // (case, who, group, Ok or the text of the refusal)
    let cases: Vec<(&str, Who, &str, Result<(), &str>)> = vec![
        (
            "open admits another namespace",
            who("z", plain, plain),
            "open",
            Ok(()),
        ),
        (
            "listed admits its namespace",
            who("a", plain, plain),
            "listed",
            Ok(()),
        ),
        (
            "listed refuses another",
            who("z", plain, plain),
            "listed",
            Err("namespace z is not in its spec.namespaces"),
        ),
        (
            "namespace selector refuses",
            who("z", plain, plain),
            "team-b",
            Err("namespace z does not match its spec.namespaceSelector (team=b)"),
        ),
        (
            "service selector admits",
            who("z", plain, web),
            "web",
            Ok(()),
        ),
        (
            "service selector refuses",
            who("z", plain, plain),
            "web",
            Err("the Service's labels do not match its spec.serviceSelector (app=web)"),
        ),
        (
            "an invalid selector admits nobody",
            who("z", plain, plain),
            "broken",
            Err(
                "its spec.namespaceSelector is invalid and admits no Service: matchExpressions[0]: unknown operator \"Like\"",
            ),
        ),
        (
            "a tenant uses its group",
            who("t", team_a, plain),
            "tenant-a",
            Ok(()),
        ),
        (
            "a tenant cannot use an open group",
            who("t", team_a, plain),
            "open",
            Err(
                "namespace t is a tenant of ServiceGroup tenant-a (enforceNamespaces) and may use only it",
            ),
        ),
        (
            "nor a loose enforcing one",
            who("t", team_a, plain),
            "loose",
            Err("tenant of ServiceGroup tenant-a"),
        ),
        (
            "others cannot use the tenant group",
            who("z", plain, plain),
            "tenant-a",
            Err("namespace z does not match its spec.namespaceSelector (team=a)"),
        ),
        (
            "non-tenants use open groups",
            who("z", plain, plain),
            "loose",
            Ok(()),
        ),
    ];
    for (name, w, g, want) in cases {
        let tenants = tenancy(&w, all());
        let spec = &groups.iter().find(|(n, _)| *n == g).expect("a group").1;
        match (admission(&w, g, spec, &tenants), want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(t)) => assert!(e.to_string().contains(t), "{name}: {e}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn unknown_labels_say_so_and_an_invalid_selector_stays_invalid() {
    let who = Who {
        namespace: "a",
        ..Default::default()
    };
    let ok = spec(json!({"serviceSelector": {"matchLabels": {"app": "web"}}}));
    assert_eq!(
        admission(&who, "g", &ok, &[]),
        Err(Refusal::LabelsUnknown {
            field: "spec.serviceSelector"
        })
    );
    let bad =
        spec(json!({"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}));
    let e = admission(&who, "g", &bad, &[]).expect_err("refused");
    assert!(e.to_string().contains("In needs at least one value"), "{e}");
}

#[test]
fn a_namespace_default_is_one_only_where_it_admits() {
    let ns_b = labels(&[("team", "b")]);
    let g = spec(
        json!({"namespaceDefault": true, "namespaceSelector": {"matchLabels": {"team": "b"}}}),
    );
    assert!(is_namespace_default(&g, &who("b", &ns_b, &ns_b)));
    let none = Labels::new();
    assert!(!is_namespace_default(&g, &who("a", &none, &none)));
    assert!(g.auto_assigns("g"), "a namespace default auto-assigns");
}

fn group(spec: Value) -> Value {
    let mut spec = spec;
    spec["local"] = json!({"v4pools": [{"subnet": "192.0.2.0/24", "pool": "192.0.2.1/32"}]});
    json!({"apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
           "metadata": {"name": "g"}, "spec": spec})
}

/// The same refusals come from the real API server in allocator/tests/allocator/tenancy.rs.
#[test]
fn cel_refuses_invalid_selectors_and_names_the_field() {
    let e = |field: &str, op: &str, values: Option<Vec<&str>>| {
        let mut r = json!({"key": "team", "operator": op});
        if let Some(v) = values {
            r["values"] = json!(v);
        }
        json!({ field: {"matchExpressions": [r]} })
    };
    // (name, spec, None when valid or the text the problem contains)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "In with values",
            e("namespaceSelector", "In", Some(vec!["a"])),
            None,
        ),
        ("Exists", e("serviceSelector", "Exists", None), None),
        (
            "labels only",
            json!({"namespaceSelector": {"matchLabels": {"team": "a"}}, "namespaceDefault": true, "enforceNamespaces": true}),
            None,
        ),
        (
            "a bad operator",
            e("namespaceSelector", "Like", Some(vec!["a"])),
            Some(
                "spec.namespaceSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist",
            ),
        ),
        (
            "In without values",
            e("serviceSelector", "In", None),
            Some("spec.serviceSelector.matchExpressions: In and NotIn need at least one value"),
        ),
        (
            "DoesNotExist with values",
            e("namespaceSelector", "DoesNotExist", Some(vec!["a"])),
            Some("spec.namespaceSelector.matchExpressions: In and NotIn need"),
        ),
        (
            "a namespace default with autoAssign off",
            json!({"namespaceDefault": true, "autoAssign": false}),
            Some("spec.namespaceDefault: a namespace default auto-assigns"),
        ),
        (
            "a namespace default with autoAssign on",
            json!({"namespaceDefault": true, "autoAssign": true}),
            None,
        ),
    ];
    for (name, spec, want) in cases {
        let problems = crate::offline::validate(&group(spec));
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        match want {
            None => assert!(problems.is_empty(), "{name}: {text:?}"),
            Some(w) => assert!(text.iter().any(|t| t.contains(w)), "{name}: {text:?}"),
        }
    }
}
