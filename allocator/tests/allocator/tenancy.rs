//! Admission by namespace labels against the real API server: the allocator reads the
//! namespace's labels, refuses a group whose namespaceSelector leaves it out with a Warning that
//! names the selector, keeps an address when a relabel stops admitting its Service, and the CRD
//! refuses an invalid selector by field.

use ferrolb_api::contracts::reason;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

async fn label_namespace(env: &Env, team: &str) {
    let api: Api<Namespace> = Api::all(env.client.clone());
    api.patch(
        env.name(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": team } } })),
    )
    .await
    .expect("label the test namespace");
}

fn selecting(team: &str, pool: &str) -> serde_json::Value {
    let mut spec = local(&[("192.0.2.0/24", pool)], &[]);
    spec["namespaceSelector"] = json!({ "matchLabels": { "team": team } });
    spec
}

#[tokio::test]
async fn a_namespace_selector_admits_by_label_and_a_relabel_takes_nothing_away() {
    let Some(env) = env("tenancy").await else {
        return;
    };
    let (lan, other) = (env.group_name("lan"), env.group_name("other"));
    label_namespace(&env, "b").await;
    env.apply_group(&lan, selecting("b", "192.0.2.60/32")).await;
    env.apply_group(&other, selecting("a", "192.0.2.61/32"))
        .await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("inside").group(&lan)).await;
    env.apply_svc(&svc("outside").group(&other)).await;
    env.wait_ips("inside", &["192.0.2.60"]).await;
    let note = env
        .wait_event_with(
            "outside",
            reason::ALLOCATION_FAILED,
            "does not match its spec.namespaceSelector (team=a)",
        )
        .await;
    assert!(
        note.contains(&format!("ServiceGroup {other}: namespace")),
        "{note}"
    );
    assert!(env.ips("outside").await.is_empty());
    // The namespace leaves the group's selector: the Service keeps its address and is told.
    label_namespace(&env, "c").await;
    let note = env
        .wait_event_with(
            "inside",
            reason::ALLOCATION_FAILED,
            "the Service keeps the addresses it has",
        )
        .await;
    assert!(note.contains("(team=b)"), "{note}");
    assert_eq!(env.ips("inside").await, ["192.0.2.60"]);
    // Labelled to match the other group, the waiting Service gets its address.
    label_namespace(&env, "a").await;
    env.wait_ips("outside", &["192.0.2.61"]).await;
    assert_eq!(env.ips("inside").await, ["192.0.2.60"], "never taken away");
}

#[tokio::test]
async fn the_api_server_refuses_an_invalid_selector_by_field() {
    let Some(env) = env("tenancy-cel").await else {
        return;
    };
    let name = env.group_name("bad");
    // (selector field, operator, values, text the refusal contains)
    let cases = [
        (
            "namespaceSelector",
            "Like",
            json!(["a"]),
            "spec.namespaceSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist",
        ),
        (
            "serviceSelector",
            "In",
            json!([]),
            "spec.serviceSelector.matchExpressions: In and NotIn need at least one value",
        ),
    ];
    for (field, op, values, want) in cases {
        let mut spec = local(&[("192.0.2.0/24", "192.0.2.62/32")], &[]);
        spec[field] =
            json!({ "matchExpressions": [{ "key": "team", "operator": op, "values": values }] });
        let body = json!({
            "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
            "metadata": { "name": name, "labels": { SCOPE_LABEL: env.name() } },
            "spec": spec,
        });
        let err = env
            .groups()
            .patch(
                &name,
                &PatchParams::apply("ferrolb-test").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(want), "{field} {op}: {err}");
    }
}
