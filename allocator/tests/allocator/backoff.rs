//! Back-off is per Service: a Service whose writes keep failing waits alone, and an Event the
//! API server would refuse (a note over its byte limit) is cut to fit and told once.

use std::time::Duration;

use ferrolb_api::contracts::reason;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::support::*;

const DENY_LABEL: &str = "ferrolb.io/test-deny";

/// A webhook that nobody serves (`failurePolicy: Fail`), on status writes of the Services of
/// `ns` labelled `DENY_LABEL=<value>`: every such write fails with 500, a transient error.
async fn unserved_webhook(env: &Env, name: &str, value: &str) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let w: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": name },
        "webhooks": [{
            "name": "deny.ferrolb.test",
            "clientConfig": { "url": "https://127.0.0.1:1/deny" },
            "rules": [{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                        "resources": ["services/status"], "scope": "Namespaced" }],
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": env.name() } },
            "objectSelector": { "matchLabels": { DENY_LABEL: value } },
            "failurePolicy": "Fail", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "timeoutSeconds": 1,
        }],
    }))
    .expect("a valid webhook configuration");
    api.create(&PostParams::default(), &w)
        .await
        .expect("create the webhook configuration");
}

async fn remove_webhook(env: &Env, name: &str) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

fn denied(s: Svc, value: &str) -> Svc {
    let mut s = s;
    s.0["metadata"]["labels"] = json!({ DENY_LABEL: value });
    s
}

/// Log lines of `a` that mention the Service `name` and `text`.
fn lines(env: &Env, a: &Allocator, name: &str, text: &str) -> usize {
    let who = format!("{}/{name}", env.name());
    a.log()
        .lines()
        .filter(|l| l.contains(&who) && l.contains(text))
        .count()
}

#[tokio::test]
async fn a_service_whose_writes_keep_failing_does_not_hold_back_another() {
    let Some(env) = env("backoff-keyed").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.10-192.0.2.19")], &[]))
        .await;
    let (hook_bad, hook_good) = (env.group_name("bad"), env.group_name("good"));
    unserved_webhook(&env, &hook_bad, "bad").await;
    unserved_webhook(&env, &hook_good, "good").await;
    env.apply_svc(&denied(svc("bad").group(&g), "bad")).await;
    let a = env.allocator("a", false);
    // Six failures in a row: a pass-wide back-off would now be 16 s or more.
    eventually("six failed writes of bad", || async {
        (lines(&env, &a, "bad", "write failed") >= 6).then_some(())
    })
    .await;
    env.apply_svc(&denied(svc("good").group(&g), "good")).await;
    eventually("a failed write of good", || async {
        (lines(&env, &a, "good", "write failed") >= 1).then_some(())
    })
    .await;
    // Whatever passes the new Service set off have run; from here only a retry writes it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    remove_webhook(&env, &hook_good).await;
    let got = tokio::time::timeout(Duration::from_secs(6), env.wait_any_ips("good", 1)).await;
    remove_webhook(&env, &hook_bad).await;
    let ips = got.expect("good is retried on its own back-off, not bad's");
    assert!(ips[0].starts_with("192.0.2.1"), "{ips:?}");
    // bad backs off on its own (doubling), not on every pass: far fewer than one try a pass.
    let tries = lines(&env, &a, "bad", "write failed");
    assert!(tries <= 10, "bad was tried {tries} times");
    // Once it can be written, it is (on its own back-off, at most 32 s at this point).
    env.wait_any_ips("bad", 1).await;
}

#[tokio::test]
async fn an_event_about_a_long_multibyte_annotation_is_cut_to_fit_and_told_once() {
    let Some(env) = env("backoff-note").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.10-192.0.2.19")], &[]))
        .await;
    // 10 kB of two-byte characters: a note of 1000 characters is 2000 bytes, over the API
    // server's 1024.
    let wide = "é".repeat(5000);
    env.apply_svc(&svc("wide").group(&wide)).await;
    let a = env.allocator("a", false);
    let note = env
        .wait_event_with("wide", reason::ALLOCATION_FAILED, "ééé")
        .await;
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.starts_with("ServiceGroup \"ééé"), "{note}");
    let told = lines(&env, &a, "wide", "");
    // More passes: other Services come and get addresses.
    for i in 0..3 {
        let name = format!("other-{i}");
        env.apply_svc(&svc(&name).group(&g)).await;
        env.wait_any_ips(&name, 1).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lines(&env, &a, "wide", ""),
        told,
        "nothing more is logged about wide"
    );
    let events = env.events("wide").await;
    assert_eq!(events.len(), 1, "told once: {events:?}");
}
