//! `nodes`, `pools` and `where` against the real API server when per-node Leases carry what the
//! API server accepts but no agent should write: a renewTime the typed client cannot parse, one
//! at the edge of representable time, one in the year 3000. The commands neither fail nor
//! panic; bad Leases are named and ignored, and a Lease from the future does not make its node
//! alive.

use std::process::Command;

use ferrolb_api::ServiceGroup;
use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{lease, node_lease_name};
use ferrolb_e2e::controlplane::{ControlPlane, unique_name};
use ferrolb_e2e::kubelet::create_node;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-ferrolb");

/// Runs kubectl-ferrolb with the per-node Leases read from `ns`; (stdout, stderr).
fn run(cp: &ControlPlane, ns: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(BIN)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args)
        .env("FERROLB_NAMESPACE", ns)
        .output()
        .expect("kubectl-ferrolb runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{args:?}: {stderr}"
    );
    (String::from_utf8(out.stdout).expect("UTF-8 output"), stderr)
}

async fn put_lease(client: &Client, ns: &str, node: &str, renew: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Lease>(&()));
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": node_lease_name(node), "annotations": {
            lease::ELIGIBLE: "true", lease::SUBNETS: "198.51.100.0/24",
            lease::INTERFACE_V4: "eth0", lease::HOLDING: "198.51.100.200",
        } },
        "spec": { "holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": renew },
    });
    api.patch(
        &node_lease_name(node),
        &PatchParams::apply("test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server accepts renewTime {renew}: {e}"));
}

#[tokio::test]
async fn commands_name_and_ignore_bad_leases_and_never_panic() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("bad-leases").await.expect("namespace");
    let tag = unique_name("bl");
    let node = |n: &str| format!("{tag}-{n}");
    let (good, end, edge, future) = (node("good"), node("end"), node("edge"), node("future"));
    for n in [&good, &end, &edge, &future] {
        create_node(
            &client,
            n,
            &["198.51.100.10".parse().expect("ip")],
            &[],
            true,
        )
        .await
        .expect("node");
    }
    let now = Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    put_lease(&client, ns.name(), &good, &now).await;
    put_lease(&client, ns.name(), &end, "9999-12-31T23:59:59.999999Z").await;
    put_lease(&client, ns.name(), &edge, "9999-12-30T21:59:59.000000Z").await;
    put_lease(&client, ns.name(), &future, "3000-01-01T00:00:00.000000Z").await;
    let group = format!("{tag}-lan");
    let groups: Api<ServiceGroup> = Api::all(client.clone());
    groups
        .patch(
            &group,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&json!({
                "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup", "metadata": { "name": group },
                "spec": { "local": { "v4pools": [ { "subnet": "198.51.100.0/24", "pool": "198.51.100.200/32" } ] } },
            })),
        )
        .await
        .expect("ServiceGroup");
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns.name());
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": "web", "annotations": {
            ann::ALLOCATED_FROM: group, ann::POOL_TYPE: "local",
        } },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ] },
    }))
    .expect("a Service");
    svcs.create(&PostParams::default(), &svc)
        .await
        .expect("Service");
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            &json!({ "status": { "loadBalancer": { "ingress": [ { "ip": "198.51.100.200" } ] } } }),
        ),
    )
    .await
    .expect("Service status");

    let (text, warnings) = run(cp, ns.name(), &["nodes"]);
    for bad in [&end, &edge] {
        assert!(
            warnings.contains(&node_lease_name(bad)),
            "a warning names {bad}: {warnings}"
        );
    }
    let row = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for {n}:\n{text}"))
            .to_string()
    };
    assert!(row(&good).contains(" yes "), "{text}");
    assert!(row(&end).contains("Lease ignored"), "{text}");
    assert!(row(&edge).contains("Lease ignored"), "{text}");
    assert!(row(&future).contains("ahead of this clock"), "{text}");
    let (json_text, _) = run(cp, ns.name(), &["nodes", "-o", "json"]);
    let rows: Value = serde_json::from_str(&json_text).expect("JSON output");
    let alive: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["alive"] == true)
        .filter_map(|r| r["node"].as_str())
        .filter(|n| n.starts_with(&tag))
        .collect();
    assert_eq!(alive, [good.as_str()], "only the good node is alive");

    let (text, _) = run(cp, ns.name(), &["where", "web", "-n", ns.name()]);
    assert!(text.contains(&format!("held by {good}")), "{text}");
    assert!(text.contains("ahead of this clock"), "{text}");
    run(cp, ns.name(), &["pools"]);

    let dp = DeleteParams::default();
    let _ = groups.delete(&group, &dp).await;
    let nodes: Api<Node> = Api::all(client.clone());
    for n in [&good, &end, &edge, &future] {
        let _ = nodes.delete(n, &dp).await;
    }
}
