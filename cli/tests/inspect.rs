//! `where`, `pools` and `nodes` against the real API server: the test writes what the allocator,
//! the agents and a kubelet would (ServiceGroups with status, Services with addresses, Nodes,
//! EndpointSlices, per-node Leases) and checks what kubectl-ferrolb explains from it.

use std::process::Command;

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::lease;
use ferrolb_api::election::holder;
use ferrolb_e2e::controlplane::{ControlPlane, unique_name};
use ferrolb_e2e::kubelet::{Backend, create_node, write_endpoints};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::SignedDuration;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

mod support;
use support::*;

#[tokio::test]
async fn where_names_the_holder_and_why_the_other_nodes_are_not_candidates() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("where").await.expect("namespace");
    let tag = unique_name("w");
    let nodes: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let group = format!("{tag}-lan");
    let _cleanup = Cleanup {
        kubeconfig: cp.kubeconfig().to_path_buf(),
        nodes: nodes.clone(),
        groups: vec![group.clone()],
    };
    // This test's LAN is 198.51.100.0/24, so the other tests' nodes are no candidates.
    service_group(
        &client,
        &group,
        json!({ "local": { "v4pools": [ { "subnet": "198.51.100.0/24", "pool": "198.51.100.100-198.51.100.150" } ] } }),
        json!({ "type": "local" }),
    )
    .await;
    let addr = "198.51.100.100";
    for (i, n) in nodes.iter().enumerate() {
        let ip = format!("198.51.100.{}", 10 + i);
        create_node(&client, n, &[ip.parse().expect("an IP")], &[], true)
            .await
            .expect("node");
    }
    // a and b: eligible candidates; c: not selected; d: ETP Local and no endpoint there, so
    // the holder is a or b.
    let winner = holder(
        addr.parse().expect("an IP"),
        [nodes[0].as_str(), nodes[1].as_str()],
    )
    .expect("a holder")
    .to_string();
    for (i, n) in nodes.iter().enumerate() {
        let eligible = if i == 2 { "false,not-selected" } else { "true" };
        let holding = if *n == winner { addr } else { "" };
        write_lease(
            &client,
            n,
            SignedDuration::from_secs(1),
            &[
                (lease::ELIGIBLE, eligible),
                (lease::INTERFACE_V4, "eth0"),
                (lease::SUBNETS, "198.51.100.0/24"),
                (lease::HOLDING, holding),
                (lease::VIRTUAL_COUNT, "0"),
            ],
        )
        .await
        .expect("lease");
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns.name());
    let announcing = format!("{winner},eth0,{addr}");
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "web", "annotations": {
            ann::ALLOCATED_FROM: group, ann::POOL_TYPE: "local", ann::ANNOUNCING_IPV4: announcing,
        } },
        "spec": { "type": "LoadBalancer", "externalTrafficPolicy": "Local",
                  "ports": [ { "port": 80 } ] },
    }))
    .expect("a Service");
    svcs.create(&PostParams::default(), &svc)
        .await
        .expect("Service");
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": { "loadBalancer": { "ingress": [ { "ip": addr } ] } } })),
    )
    .await
    .expect("Service status");
    let backends: Vec<Backend> = [0, 1, 2]
        .iter()
        .map(|&i| Backend::ready(&nodes[i], &format!("10.0.0.{}", 10 + i)))
        .collect();
    write_endpoints(&client, ns.name(), "web", 80, &backends)
        .await
        .expect("endpoints");

    let text = run(cp, &["where", "web", "-n", ns.name()]);
    assert!(text.contains(&format!("{group} (local)")), "{text}");
    assert!(
        text.contains(&format!("held by {winner} on eth0")),
        "{text}"
    );
    assert!(
        text.contains(&format!("announcing:  {announcing}")),
        "{text}"
    );
    let row = |n: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(n))
            .unwrap_or_else(|| panic!("no row for {n}:\n{text}"))
            .to_string()
    };
    assert!(row(&winner).contains("holder"), "{text}");
    assert!(row(&nodes[2]).contains("not-selected"), "{text}");
    assert!(row(&nodes[3]).contains("no ready endpoint"), "{text}");
    let loser = if winner == nodes[0] {
        &nodes[1]
    } else {
        &nodes[0]
    };
    assert!(row(loser).contains("candidate"), "{text}");

    let json: Value =
        serde_json::from_str(&run(cp, &["where", "web", "-n", ns.name(), "-o", "json"]))
            .expect("JSON output");
    assert_eq!(json["addresses"][0]["elected"], winner.as_str());
    assert_eq!(json["addresses"][0]["heldBy"][0]["node"], winner.as_str());

    // By address, from any namespace: the same report, for the Service that shows it.
    let by_address = run(cp, &["where", addr]);
    assert!(
        by_address.contains(&format!("Service {}/web\n", ns.name()))
            && by_address.contains(&format!("held by {winner} on eth0")),
        "{by_address}"
    );
    let json: Value =
        serde_json::from_str(&run(cp, &["where", addr, "-o", "json"])).expect("JSON output");
    let ours = json
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["service"] == format!("{}/web", ns.name()).as_str())
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(ours["addresses"][0]["elected"], winner.as_str());
    let out = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(["where", "198.51.100.254"])
        .output()
        .expect("kubectl-ferrolb runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no Service shows 198.51.100.254"),
        "{err}"
    );
}

#[tokio::test]
async fn pools_shows_usage_per_family_and_conditions() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let group = unique_name("pools");
    let _cleanup = Cleanup {
        kubeconfig: cp.kubeconfig().to_path_buf(),
        nodes: vec![],
        groups: vec![group.clone()],
    };
    service_group(
        &client,
        &group,
        json!({ "autoAssign": false, "local": {
            "v4pools": [ { "subnet": "192.0.2.0/24", "pool": "192.0.2.100-192.0.2.150" } ],
            "v6pools": [ { "subnet": "2001:db8:1::/64", "pool": "2001:db8:1::/120" } ] } }),
        json!({
            "capacity": { "ipv4": "51", "ipv6": "256" }, "allocated": { "ipv4": 3, "ipv6": 0 },
            "conditions": [
                { "type": "Ready", "status": "False", "reason": "Overlapping",
                  "message": "overlaps with another group", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            ],
        }),
    )
    .await;
    let text = run(cp, &["pools"]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first() == Some(&group.as_str()))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        rows[0][..6],
        [group.as_str(), "local", "IPv4", "3", "51", "5.9%"],
        "{text}"
    );
    assert_eq!(
        rows[1][..6],
        [group.as_str(), "local", "IPv6", "0", "256", "0%"],
        "{text}"
    );
    assert!(
        text.contains(&format!("{group}: Ready: overlaps with another group")),
        "{text}"
    );
    // The AUTOASSIGN column: autoAssign is off, so it is never tried for a Service naming none.
    assert_eq!(rows[0][9], "off", "{text}");
}

#[tokio::test]
async fn where_says_which_group_serves_a_service_that_names_none_and_why() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("where-auto").await.expect("namespace");
    let full = unique_name("full");
    let roomy = unique_name("roomy");
    let _cleanup = Cleanup {
        kubeconfig: cp.kubeconfig().to_path_buf(),
        nodes: vec![],
        groups: vec![full.clone(), roomy.clone()],
    };
    // Admitting only this test's namespace, with priorities no other test's groups use.
    for (name, priority, allocated) in [(&full, -1_000_000, 1), (&roomy, -999_999, 0)] {
        service_group(
            &client,
            name,
            json!({ "autoAssign": true, "priority": priority, "namespaces": [ns.name()],
                    "local": { "v4pools": [ { "subnet": "192.0.2.0/24", "pool": "192.0.2.200/32" } ] } }),
            json!({ "capacity": { "ipv4": "1", "ipv6": "0" }, "allocated": { "ipv4": allocated, "ipv6": 0 } }),
        )
        .await;
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns.name());
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "plain" },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ] },
    }))
    .expect("a Service");
    svcs.create(&PostParams::default(), &svc)
        .await
        .expect("Service");
    let text = run(cp, &["where", "plain", "-n", ns.name()]);
    assert!(
        text.contains(&format!("{roomy} would serve it"))
            && text.contains(&format!("passed over: {full} (no free IPv4 address)")),
        "{text}"
    );
    let row = |g: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(g))
            .unwrap_or_else(|| panic!("no row for {g}:\n{text}"))
            .to_string()
    };
    assert!(row(&roomy).contains("serves it (IPv4)"), "{text}");
    assert!(
        row(&full).contains("passed over: no free IPv4 address"),
        "{text}"
    );
    let json: Value =
        serde_json::from_str(&run(cp, &["where", "plain", "-n", ns.name(), "-o", "json"]))
            .expect("JSON output");
    assert_eq!(json["selection"][0]["group"], full.as_str(), "{json}");
}

#[tokio::test]
async fn nodes_shows_liveness_eligibility_and_holdings() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let tag = unique_name("n");
    let nodes: Vec<String> = ["live", "dead", "bare"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let _cleanup = Cleanup {
        kubeconfig: cp.kubeconfig().to_path_buf(),
        nodes: nodes.clone(),
        groups: vec![],
    };
    for n in &nodes {
        create_node(
            &client,
            n,
            &["192.0.2.9".parse().expect("an IP")],
            &[],
            true,
        )
        .await
        .expect("node");
    }
    let common = [
        (lease::INTERFACE_V4, "eth0"),
        (lease::INTERFACE_V6, "eth0"),
        (lease::SUBNETS, "192.0.2.0/24 2001:db8:1::/64"),
        (lease::VIRTUAL_COUNT, "2"),
    ];
    let mut live = common.to_vec();
    live.extend([
        (lease::ELIGIBLE, "true"),
        (lease::HOLDING, "192.0.2.101 2001:db8:1::101"),
    ]);
    write_lease(&client, &nodes[0], SignedDuration::from_secs(1), &live)
        .await
        .expect("lease");
    let mut dead = common.to_vec();
    dead.push((lease::ELIGIBLE, "false,carrier-down"));
    write_lease(&client, &nodes[1], SignedDuration::from_secs(120), &dead)
        .await
        .expect("lease");
    let text = run(cp, &["nodes"]);
    let row = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for {n}:\n{text}"))
            .to_string()
    };
    let l = row(&nodes[0]);
    assert!(l.contains(" yes ") && l.contains("renewed"), "{text}");
    assert!(l.contains("192.0.2.101 2001:db8:1::101"), "{text}");
    assert!(l.contains("192.0.2.0/24 2001:db8:1::/64"), "{text}");
    let d = row(&nodes[1]);
    assert!(d.contains(" no ") && d.contains("Lease expired"), "{text}");
    assert!(d.contains("carrier-down"), "{text}");
    assert!(row(&nodes[2]).contains("no per-node Lease"), "{text}");
    let json: Value = serde_json::from_str(&run(cp, &["nodes", "-o", "json"])).expect("JSON");
    let live = json
        .as_array()
        .expect("an array")
        .iter()
        .find(|r| r["node"] == nodes[0].as_str())
        .expect("the live node");
    assert_eq!(live["alive"], true);
    assert_eq!(live["virtualCount"], 2);
}
