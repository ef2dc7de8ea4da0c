//! A new leader reads back the problems an earlier allocator told, page by page and only its
//! own Warning Events about Services (filtered by the API server, not after listing them all);
//! a standing problem (a peer's annotation ferrolb does not implement) is told once, not on
//! every pass nor again after a restart.

use std::collections::{BTreeSet, HashMap};

use ferrolb_allocator::apply::{told_before, told_selector};
use ferrolb_api::contracts::{FIELD_MANAGER_ALLOCATOR, reason};
use ferrolb_e2e::controlplane::{ControlPlane, unique_name};
use ferrolb_e2e::process::{Process, tied};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::support::*;

/// An Event as a controller publishes it.
fn event(
    ns: &str,
    name: &str,
    controller: &str,
    type_: &str,
    kind: &str,
    uid: &str,
    note: &str,
) -> Event {
    let now = Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": { "name": name },
        "eventTime": now,
        "reportingController": controller, "reportingInstance": format!("{controller}-0"),
        "action": "Allocate", "reason": reason::ALLOCATION_FAILED, "type": type_, "note": note,
        "regarding": { "apiVersion": "v1", "kind": kind, "namespace": ns, "name": uid, "uid": uid },
    }))
    .expect("a valid Event")
}

#[tokio::test]
async fn told_problems_are_read_back_page_by_page_and_only_the_allocators_own() {
    let Some(env) = env("told").await else { return };
    let api: Api<Event> = Api::namespaced(env.client.clone(), env.name());
    let mut want: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut all = Vec::new();
    for i in 0..7 {
        let uid = format!("svc-{}", i % 5);
        let note = format!("problem {i}");
        want.entry(uid.clone()).or_default().insert(note.clone());
        all.push(event(
            env.name(),
            &format!("ours-{i}"),
            FIELD_MANAGER_ALLOCATOR,
            "Warning",
            "Service",
            &uid,
            &note,
        ));
    }
    // What must not count: another controller's, a Normal one, one about a Node.
    all.push(event(
        env.name(),
        "theirs",
        "other-controller",
        "Warning",
        "Service",
        "svc-0",
        "not ours",
    ));
    all.push(event(
        env.name(),
        "normal",
        FIELD_MANAGER_ALLOCATOR,
        "Normal",
        "Service",
        "svc-0",
        "not a problem",
    ));
    all.push(event(
        env.name(),
        "node",
        FIELD_MANAGER_ALLOCATOR,
        "Warning",
        "Node",
        "node-0",
        "not a Service",
    ));
    for e in &all {
        api.create(&PostParams::default(), e)
            .await
            .expect("create an Event");
    }
    // The API server filters: one small page holds only ours.
    let page = api
        .list(&ListParams::default().fields(&told_selector()).limit(3))
        .await
        .expect("the API server takes the selector");
    assert_eq!(page.items.len(), 3);
    assert!(page.metadata.continue_.is_some_and(|c| !c.is_empty()));
    for page_size in [2, 3, 500] {
        let told = told_before(&env.client, Some(env.name()), page_size)
            .await
            .expect("read back");
        let got: HashMap<String, BTreeSet<String>> = told
            .into_iter()
            .map(|(uid, notes)| (uid, notes.into_iter().map(|n| n.message).collect()))
            .collect();
        assert_eq!(got, want, "pages of {page_size}");
    }
}

/// The (type, note) of the Events with `reason` about the Service `name`.
async fn events_of(env: &Env, name: &str, reason: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), env.name());
    let list = api.list(&ListParams::default()).await.expect("list Events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| (e.type_.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn an_unsupported_peer_annotation_is_warned_about_once_per_set() {
    let Some(env) = env("told-peer").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.10-192.0.2.20")], &[]))
        .await;
    let mut first = env.allocator("a", false);
    let purelb = svc("purelb")
        .ann("purelb.io/service-group", &g)
        .ann("purelb.io/allow-local", "true");
    env.apply_svc(&purelb).await;
    // Refused out loud, and served all the same.
    env.wait_ips("purelb", &["192.0.2.10"]).await;
    let note = env
        .wait_event("purelb", reason::UNSUPPORTED_ANNOTATION)
        .await;
    assert!(
        note.contains("purelb.io/allow-local") && note.contains("externalTrafficPolicy"),
        "names the annotation and what ferrolb does instead: {note}"
    );
    // Passes after it (each new Service is one) and a restart tell it no more.
    env.apply_svc(&svc("later").group(&g)).await;
    env.wait_ips("later", &["192.0.2.11"]).await;
    first.kill();
    let _second = env.allocator("b", false);
    env.apply_svc(&svc("after-restart").group(&g)).await;
    env.wait_ips("after-restart", &["192.0.2.12"]).await;
    let told = events_of(&env, "purelb", reason::UNSUPPORTED_ANNOTATION).await;
    assert_eq!(told, [("Warning".to_string(), note.clone())], "told once");
    // Another set of them is told again, in one Event.
    env.apply_svc(&purelb.clone().ann("purelb.io/skip-ipv6-dad", "true"))
        .await;
    let both = env
        .wait_event_with("purelb", reason::UNSUPPORTED_ANNOTATION, "skip-ipv6-dad")
        .await;
    assert!(both.contains("purelb.io/allow-local"), "{both}");
    assert_eq!(env.ips("purelb").await, ["192.0.2.10"], "never renumbered");
}

/// Lists of Events, as the API server's audit log records them.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
  verbs: [list]
  resources: [ { group: \"\", resources: [events] }, { group: events.k8s.io, resources: [events] } ]
- level: None
";

#[tokio::test]
async fn a_new_leader_asks_the_api_server_for_its_own_events_a_page_at_a_time() {
    if !ferrolb_e2e::env::require("a test control plane", ControlPlane::missing()) {
        return;
    }
    // A control plane of its own, which writes an audit log.
    let dir = std::env::temp_dir().join(unique_name("ferrolb-audit"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let (policy, audit) = (dir.join("policy.yaml"), dir.join("audit.log"));
    std::fs::write(&policy, AUDIT_POLICY).expect("the audit policy");
    let cp = ControlPlane::start_with(&[
        &format!("--audit-policy-file={}", policy.display()),
        &format!("--audit-log-path={}", audit.display()),
    ])
    .await
    .expect("a control plane with an audit log");
    let ns = cp.namespace("told-audit").await.expect("a namespace");
    let log = dir.join("allocator.log");
    let mut cmd = tied(env!("CARGO_BIN_EXE_ferrolb-allocator"));
    cmd.arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(["--metrics-addr", "127.0.0.1:0", "--identity", "one"])
        .args([
            "--lease-namespace",
            ns.name(),
            "--watch-namespace",
            ns.name(),
        ])
        .env("RUST_LOG", "info,kube=warn")
        .stdout(std::fs::File::create(&log).expect("a log"))
        .stderr(std::process::Stdio::null());
    let mut allocator =
        Process::spawn("allocator", cmd, Some(log.clone())).expect("the allocator starts");
    let path = format!("/namespaces/{}/events", ns.name());
    let lists = eventually("the new leader to read the Events told before", || async {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let lists: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["verb"] == "list")
            .filter_map(|e| e["requestURI"].as_str().map(str::to_string))
            .filter(|uri| uri.contains(&path))
            .collect();
        (!lists.is_empty()).then_some(lists)
    })
    .await;
    for uri in &lists {
        assert!(
            uri.contains("limit=") && uri.contains("fieldSelector=reportingController"),
            "every list of Events is paged and filtered by the API server: {uri}"
        );
    }
    allocator.kill();
    drop(ns);
    drop(cp);
    let _ = std::fs::remove_dir_all(&dir);
}
