//! `status`, `version` and `-o yaml` against the real API server: the test writes what the
//! allocator, the agents and the chart would, and checks what kubectl-ferrolb reports and the
//! exit code a CI pipeline acts on. This binary's API server holds only what these tests write.

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{INSTALL_NAMESPACE, lease, reason};
use ferrolb_api::election::holder;
use ferrolb_e2e::controlplane::{ControlPlane, unique_name};
use ferrolb_e2e::kubelet::create_node;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

mod support;
use support::*;

const LAN: &str = "198.51.100.0/24";
const ADDR: &str = "198.51.100.100";

fn ready_status(allocated: u64, extra: Value) -> Value {
    let mut conditions = vec![
        json!({ "type": "Ready", "status": "True", "reason": "Ready",
        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" }),
    ];
    if !extra.is_null() {
        conditions.push(extra);
    }
    json!({ "capacity": { "ipv4": "51", "ipv6": "0" }, "allocated": { "ipv4": allocated, "ipv6": 0 },
            "conditions": conditions })
}

async fn lb_service(
    client: &Client,
    ns: &str,
    name: &str,
    annotations: Value,
    address: Option<&str>,
) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ] },
    }))
    .expect("a Service");
    api.create(&PostParams::default(), &svc)
        .await
        .expect("Service");
    if let Some(a) = address {
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "loadBalancer": { "ingress": [ { "ip": a } ] } } })),
        )
        .await
        .expect("Service status");
    }
}

/// The Event the allocator writes when a Service gets no address.
async fn allocation_failed(client: &Client, ns: &str, service: &str, message: &str) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let now = Timestamp::now();
    let e: Event = serde_json::from_value(json!({
        "metadata": { "name": format!("{service}.{}", now.as_nanosecond()) },
        "involvedObject": { "apiVersion": "v1", "kind": "Service", "namespace": ns, "name": service },
        "reason": reason::ALLOCATION_FAILED, "message": message, "type": "Warning",
        "source": { "component": "ferrolb-allocator" },
        "firstTimestamp": now.to_string(), "lastTimestamp": now.to_string(), "count": 1,
    }))
    .expect("an Event");
    api.create(&PostParams::default(), &e).await.expect("Event");
}

fn parse_yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

#[tokio::test]
async fn status_lists_problems_first_and_exits_1_while_there_are_any() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("status").await.expect("namespace");
    let tag = unique_name("s");
    let nodes: Vec<String> = ["a", "b", "dead"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let lan = format!("{tag}-lan");
    let full = format!("{tag}-full");
    let _cleanup = Cleanup {
        kubeconfig: cp.kubeconfig().to_path_buf(),
        nodes: nodes.clone(),
        groups: vec![lan.clone(), full.clone()],
    };
    let local = |pool: &str| json!({ "local": { "v4pools": [ { "subnet": LAN, "pool": pool } ] } });
    service_group(
        &client,
        &lan,
        local("198.51.100.100-198.51.100.150"),
        ready_status(1, Value::Null),
    )
    .await;
    for n in &nodes[..2] {
        create_node(
            &client,
            n,
            &["198.51.100.9".parse().expect("an IP")],
            &[],
            true,
        )
        .await
        .expect("node");
    }
    let winner = holder(
        ADDR.parse().expect("an IP"),
        [nodes[0].as_str(), nodes[1].as_str()],
    )
    .expect("a holder")
    .to_string();
    for n in &nodes[..2] {
        let holding = if *n == winner { ADDR } else { "" };
        write_lease(
            &client,
            n,
            SignedDuration::from_secs(1),
            &[
                (lease::ELIGIBLE, "true"),
                (lease::INTERFACE_V4, "eth0"),
                (lease::SUBNETS, LAN),
                (lease::HOLDING, holding),
            ],
        )
        .await
        .expect("lease");
    }
    let ours =
        json!({ ann::ALLOCATED_FROM: lan, ann::SERVICE_GROUP: lan, ann::POOL_TYPE: "local" });
    lb_service(&client, ns.name(), "web", ours.clone(), Some(ADDR)).await;

    // A healthy world: exit 0, nothing listed, the summary.
    for n in &nodes[..2] {
        renew_lease(&client, n).await.expect("renewal");
    }
    let (code, text, err) = run_status(cp, &["status"]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(text.starts_with("No problems found.\n"), "{text}");
    assert!(text.contains("ServiceGroups:  1 (1 Ready)"), "{text}");
    assert!(
        text.contains("Services:       1 of type LoadBalancer (1 with an address)"),
        "{text}"
    );
    assert!(
        text.contains("Nodes:          2 (2 with a live agent, 2 eligible"),
        "{text}"
    );

    // Three problems: a Service the allocator could not serve, an agent that stopped renewing,
    // a full group.
    service_group(
        &client,
        &full,
        json!({ "autoAssign": false, "local": { "v4pools": [ { "subnet": LAN, "pool": "198.51.100.200/32" } ] } }),
        json!({ "capacity": { "ipv4": "1", "ipv6": "0" }, "allocated": { "ipv4": 1, "ipv6": 0 },
                "conditions": [ { "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                  "lastTransitionTime": "2026-01-01T00:00:00Z" },
                                { "type": "Exhausted", "status": "True", "reason": "Exhausted",
                                  "message": "IPv4 has no free address", "lastTransitionTime": "2026-01-01T00:00:00Z" } ] }),
    )
    .await;
    let asks_full = json!({ ann::SERVICE_GROUP: full });
    lb_service(&client, ns.name(), "pending", asks_full, None).await;
    allocation_failed(
        &client,
        ns.name(),
        "pending",
        &format!("no free IPv4 address in ServiceGroup {full}"),
    )
    .await;
    create_node(
        &client,
        &nodes[2],
        &["198.51.100.11".parse().expect("an IP")],
        &[],
        true,
    )
    .await
    .expect("node");
    write_lease(
        &client,
        &nodes[2],
        SignedDuration::from_secs(120),
        &[(lease::ELIGIBLE, "true"), (lease::SUBNETS, "192.0.2.0/24")],
    )
    .await
    .expect("lease");
    // Another class's Service is none of ours: never a problem.
    let api: Api<Service> = Api::namespaced(client.clone(), ns.name());
    let other: Service = serde_json::from_value(json!({
        "metadata": { "name": "other-class" },
        "spec": { "type": "LoadBalancer", "loadBalancerClass": "example.com/other", "ports": [ { "port": 80 } ] },
    }))
    .expect("a Service");
    api.create(&PostParams::default(), &other)
        .await
        .expect("Service");

    for n in &nodes[..2] {
        renew_lease(&client, n).await.expect("renewal");
    }
    let (code, text, err) = run_status(cp, &["status"]);
    assert_eq!(code, Some(1), "problems make it fail: {text}{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SEVERITY"), "{text}");
    let pending = format!("{}/pending", ns.name());
    assert!(
        lines[1].contains("error")
            && lines[1].contains(&pending)
            && lines[1].contains(&format!(
                "AllocationFailed: no free IPv4 address in ServiceGroup {full}"
            )),
        "the Service first: {text}"
    );
    assert!(
        lines[2].contains("error")
            && lines[2].contains(&nodes[2])
            && lines[2].contains("Lease expired"),
        "then the node: {text}"
    );
    assert!(
        lines[3].contains("warning") && lines[3].contains(&full) && lines[3].contains("Exhausted"),
        "then the warning: {text}"
    );
    assert!(!text.contains("other-class"), "{text}");
    assert!(
        text.contains("Services:       2 of type LoadBalancer (1 with an address)")
            && text.contains("Nodes:          3 (2 with a live agent"),
        "{text}"
    );

    // The same as JSON and YAML, and the exit code does not depend on the format.
    let (code, json_text, _) = run_status(cp, &["status", "-o", "json"]);
    assert_eq!(code, Some(1));
    let json = parse_json(&json_text);
    assert_eq!(json["problems"][0]["object"], pending.as_str(), "{json}");
    assert_eq!(json["problems"][0]["severity"], "error", "{json}");
    assert_eq!(json["summary"]["services"], 2, "{json}");
    let (code, yaml_text, _) = run_status(cp, &["status", "-o", "yaml"]);
    assert_eq!(code, Some(1));
    let yaml = parse_yaml(&yaml_text);
    assert_eq!(yaml["problems"], json["problems"], "{yaml_text}");

    // -o yaml on the other commands: the facts -o json gives.
    for args in [vec!["pools"], vec!["where", "web", "-n", ns.name()]] {
        let json = parse_json(&run(cp, &[args.as_slice(), &["-o", "json"]].concat()));
        let yaml = parse_yaml(&run(cp, &[args.as_slice(), &["-o", "yaml"]].concat()));
        assert_eq!(yaml, json, "{args:?}");
    }
    let nodes_yaml = parse_yaml(&run(cp, &["nodes", "-o", "yaml"]));
    let row = |n: &str| {
        nodes_yaml
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["node"] == n)
            .unwrap_or_else(|| panic!("no {n} in {nodes_yaml}"))
            .clone()
    };
    assert_eq!(row(&winner)["holding"], json!([ADDR]));
    assert_eq!(row(&nodes[2])["alive"], false);
    // `-o table` is the default, `-o text` its old name.
    let table = run(cp, &["nodes", "-o", "text"]);
    assert!(table.starts_with("NODE"), "{table}");
}

fn workload(kind: &str, name: &str, component: &str, containers: &[(&str, &str)]) -> Value {
    let labels =
        json!({ "app.kubernetes.io/name": "renamed", "app.kubernetes.io/component": component });
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({ "name": n, "image": i }))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": { "name": name, "namespace": INSTALL_NAMESPACE, "labels": labels },
        "spec": {
            "selector": { "matchLabels": labels },
            "template": { "metadata": { "labels": labels }, "spec": { "containers": containers } },
        },
    })
}

#[tokio::test]
async fn version_shows_the_api_server_and_the_images_installed() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    // As the chart renders them with fullnameOverride: names of its own, the component label.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let d: Deployment = serde_json::from_value(workload(
        "Deployment",
        "lb-allocator",
        "allocator",
        &[("allocator", "registry.example/ferrolb/allocator:9.8.7")],
    ))
    .expect("a Deployment");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("Deployment");
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let ds: DaemonSet = serde_json::from_value(workload(
        "DaemonSet",
        "lb-agent",
        "agent",
        &[
            ("agent", "registry.example/ferrolb/agent:9.8.7"),
            ("bird-sidecar", "registry.example/ferrolb/agent:9.8.7"),
        ],
    ))
    .expect("a DaemonSet");
    daemonsets
        .create(&PostParams::default(), &ds)
        .await
        .expect("DaemonSet");

    let (code, text, err) = run_status(cp, &["version"]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(
        text.starts_with(&format!("Client Version: {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("Server Version: v1.36."), "{text}");
    let row = |c: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{c} ")))
            .unwrap_or_else(|| panic!("no {c} row:\n{text}"))
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("allocator"), "allocator Deployment/lb-allocator 9.8.7");
    assert_eq!(row("agent"), "agent DaemonSet/lb-agent 9.8.7");
    let json = parse_json(&run(cp, &["version", "-o", "json"]));
    assert_eq!(
        json["components"][1]["images"][1],
        "bird-sidecar=registry.example/ferrolb/agent:9.8.7"
    );

    // --client never asks the cluster; a cluster that does not answer is said so, exit 1.
    let down = cp.dir().join("unreachable.kubeconfig");
    std::fs::write(
        &down,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\ncurrent-context: c\n",
    )
    .expect("a kubeconfig");
    let version = |args: &[&str]| run_with(&down, args);
    let (code, text, err) = version(&["version", "--client"]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(
        text.starts_with("Client Version:") && !text.contains("Server"),
        "{text}"
    );
    let (code, text, err) = version(&["version"]);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(text.starts_with("Client Version:"), "{text}");
    assert!(err.contains("the cluster could not be reached"), "{err}");
}
