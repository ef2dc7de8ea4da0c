//! Issue 16 item 9: LBNodeAgents that would stop an agent. The real API server refuses them
//! (the CRD's CEL rules), naming the field; and those it lets through (objects stored before
//! the rules, or a regex RE2 takes and Rust does not) never stop the real `ferrolb-agent`: each
//! is logged and posted as an Event naming it, and ignored; a bad edit of the LBNodeAgent in
//! force keeps its last good settings, so SIGTERM with a drain of u64::MAX seconds drains as
//! before and exits cleanly.
//!
//! A test binary of its own: it takes the CRD's rules away for a moment, which would disturb
//! tests sharing its API server.

mod world;

use std::time::{Duration, Instant};

use ferrolb_api::contracts::reason::INVALID_LBNODEAGENT;
use ferrolb_api::contracts::{CLUSTER_EVENTS_NAMESPACE, lease};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use world::{World, settings};

const CRD: &str = "lbnodeagents.ferrolb.io";

fn object(name: &str, spec: Value) -> String {
    json!({"apiVersion": "ferrolb.io/v1", "kind": "LBNodeAgent",
           "metadata": {"name": name}, "spec": spec})
    .to_string()
}

/// Every `x-kubernetes-validations` under `v`, removed.
fn strip_rules(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_rules),
        _ => {}
    }
}

/// Replaces the LBNodeAgent CRD with `crd` (at the current resourceVersion).
async fn replace_crd(api: &Api<CustomResourceDefinition>, mut crd: CustomResourceDefinition) {
    let current = api.get(CRD).await.expect("read the CRD");
    crd.metadata.resource_version = current.metadata.resource_version;
    api.replace(CRD, &PostParams::default(), &crd)
        .await
        .expect("replace the CRD");
}

#[tokio::test]
async fn lbnodeagents_the_api_server_lets_through_never_stop_an_agent() {
    let Some(mut w) = World::new("bi", "bad-input", settings("3s", "1s")).await else {
        return;
    };
    let ns = w.name().to_string();
    let ours = json!({"matchLabels": {"ferrolb.io/test": ns}});
    let create = |name: &str, spec: Value| {
        w.cp.kubectl_with_input(&["create", "-f", "-"], &object(name, spec))
    };

    // 1. The real API server refuses what would stop an agent, naming the field.
    let refused = [
        (
            json!({"localInterface": "eth("}),
            "spec.localInterface: must be \"default\" or a valid regular expression",
        ),
        (
            json!({"nodeSelector": {"matchExpressions": [
                {"key": "zone", "operator": "Equals", "values": ["a"]}]}}),
            "spec.nodeSelector.matchExpressions: operator must be",
        ),
        (
            json!({"nodeSelector": {"matchExpressions": [{"key": "zone", "operator": "In"}]}}),
            "spec.nodeSelector.matchExpressions: operator must be",
        ),
        (
            json!({"drain": "18446744073709551615s"}),
            "spec.drain: a duration such as 500ms, 5s or 1m, from 0ms to 5m",
        ),
        (json!({"drain": "6m"}), "from 0ms to 5m"),
        (json!({"conflictProbe": "10ms"}), "spec.conflictProbe"),
        (json!({"gossipSettle": "2m"}), "spec.gossipSettle"),
    ];
    let mut failures = Vec::new();
    for (i, (spec, want)) in refused.iter().enumerate() {
        let (ok, out) = create(&format!("{ns}-refused-{i}"), spec.clone());
        if ok || !out.contains(want) {
            failures.push(format!("{spec}: accepted={ok}, want {want:?} in {out:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    for (spec, what) in [
        (json!({"drain": "5m"}), "the longest drain"),
        (json!({"localInterface": "^(eth|en)[0-9]+$"}), "a regex"),
    ] {
        let name = format!("{ns}-fine");
        let (ok, out) = create(&name, spec);
        assert!(ok, "{what}: {out}");
        let _ =
            w.cp.kubectl()
                .args(["delete", "lbnodeagent", &name])
                .output();
    }

    // 2. What still gets in: as if stored before the rules (the CRD without them for a
    // moment), and a regex RE2 (the API server) takes but Rust's regex does not.
    let crds: Api<CustomResourceDefinition> = Api::all(w.client.clone());
    let original = crds.get(CRD).await.expect("read the CRD");
    let mut bare = serde_json::to_value(&original).expect("json");
    strip_rules(&mut bare);
    replace_crd(&crds, serde_json::from_value(bare).expect("a CRD")).await;
    let bad = [
        // Would win over the test's own LBNodeAgent (lower name) on its nodes.
        (
            format!("0-{ns}"),
            json!({"nodeSelector": ours, "localInterface": "eth("}),
        ),
        (
            format!("{ns}-op"),
            json!({"nodeSelector": {"matchExpressions": [
                {"key": "ferrolb.io/test", "operator": "Equals", "values": [ns]}]}}),
        ),
        // Selects no node at all; it must not stop agents either.
        (
            format!("{ns}-re2"),
            json!({"nodeSelector": {"matchLabels": {"nowhere": "x"}},
                   "localInterface": "\\Qeth0\\E"}),
        ),
    ];
    for (name, spec) in &bad {
        w.eventually_async(&format!("{name} is stored"), || async {
            create(name, spec.clone()).0
        })
        .await;
    }

    w.start_agent(0);
    let (local, virtual_) = (w.local_group(), w.virtual_group());
    w.service("lan", &local, &["192.0.2.107"], false).await;
    w.service("routed", &virtual_, &["203.0.113.51"], false)
        .await;
    w.eventually("the agent serves its addresses", || {
        w.has(0, "eth0", "192.0.2.107/24") && w.has(0, "kube-lb0", "203.0.113.51/28")
    })
    .await;
    let events: Api<Event> = Api::namespaced(w.client.clone(), CLUSTER_EVENTS_NAMESPACE);
    let node = w.nodes[0].clone();
    let notes = || async {
        let list = events.list(&Default::default()).await.expect("list Events");
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(INVALID_LBNODEAGENT))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&node))
            .filter_map(|e| e.note)
            .collect::<Vec<_>>()
    };
    for (name, field) in [
        (bad[0].0.as_str(), "spec.localInterface"),
        (bad[1].0.as_str(), "spec.nodeSelector.matchExpressions[0]"),
        (bad[2].0.as_str(), "spec.localInterface"),
    ] {
        let want = format!("LBNodeAgent {name}: {field}");
        w.eventually_async(&format!("an Event says {want}"), || async {
            notes().await.iter().any(|n| n.starts_with(&want))
        })
        .await;
    }
    assert!(
        w.agent(0).exit_status().is_none(),
        "the agent exited\n{}",
        w.logs()
    );

    // 3. The LBNodeAgent in force turns bad: its last good settings (drain 1s) stay.
    let mut huge = settings("3s", "1s");
    huge.drain = "18446744073709551615s".into();
    w.agent_settings(huge).await;
    replace_crd(&crds, original).await;
    let want = format!("LBNodeAgent {ns}: spec.drain");
    w.eventually_async("an Event names the drain", || async {
        notes().await.iter().any(|n| n.starts_with(&want))
    })
    .await;

    w.agent(0).signal("TERM").expect("SIGTERM");
    let stopped = Instant::now();
    w.eventually_within("the local address is gone", Duration::from_secs(2), || {
        !w.addrs(0, "eth0").contains("192.0.2.107/")
    })
    .await;
    w.eventually_async("the Lease says stopping", || async {
        w.lease(0)
            .await
            .and_then(|l| l.metadata.annotations)
            .is_some_and(|a| a.get(lease::ELIGIBLE).map(String::as_str) == Some("false,stopping"))
    })
    .await;
    w.eventually_within(
        "the last good drain (1s) ends and kube-lb0 goes",
        Duration::from_secs(6),
        || {
            w.sh(w.node_ns(0), &["ip", "link", "show", "kube-lb0"])
                .is_empty()
        },
    )
    .await;
    let deadline = Instant::now() + world::TIMEOUT;
    let status = loop {
        if let Some(status) = w.agent(0).exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit\n{}",
            w.logs()
        );
        tokio::time::sleep(world::STEP).await;
    };
    assert!(
        status.success(),
        "{status} after {:?}\n{}",
        stopped.elapsed(),
        w.logs()
    );
    assert!(!w.logs().contains("panicked"), "{}", w.logs());

    for (name, _) in &bad {
        let _ =
            w.cp.kubectl()
                .args(["delete", "lbnodeagent", name])
                .output();
    }
}
