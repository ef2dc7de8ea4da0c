//! The announcing annotations mirrored from hand-written per-node Leases (in the test's
//! namespace, which is the allocator's `--lease-namespace`).

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{lease as l, node_lease_name, reason};
use ferrolb_e2e::kubelet::create_node;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

pub async fn write_lease(env: &Env, node: &str, annotations: serde_json::Value) {
    renew_lease(&env.client, env.name(), node, annotations).await
}

/// [`write_lease`] from a task of its own (an agent that keeps renewing).
async fn renew_lease(client: &kube::Client, ns: &str, node: &str, annotations: serde_json::Value) {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": node_lease_name(node), "annotations": annotations },
        "spec": { "holderIdentity": node, "leaseDurationSeconds": 15,
                  "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string() }
    });
    api.patch(
        &node_lease_name(node),
        &PatchParams::apply("ferrolb-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("lease");
}

#[tokio::test]
async fn mirrors_holders_from_per_node_leases() {
    let Some(env) = env("announcing").await else {
        return;
    };
    let g = env.group_name("g");
    let virt = env.group_name("virt");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.110/32")], &[]))
        .await;
    let mut vspec = local(&[("203.0.113.0/24", "203.0.113.128/28")], &[]);
    vspec["virtual"] = vspec["local"].take();
    if let Some(o) = vspec.as_object_mut() {
        o.remove("local");
    }
    env.apply_group(&virt, vspec).await;
    let (n1, n2) = (format!("{}-n1", env.name()), format!("{}-n2", env.name()));
    for n in [&n1, &n2] {
        create_node(
            &env.client,
            n,
            &["192.0.2.2".parse().expect("ip")],
            &[],
            true,
        )
        .await
        .expect("node");
    }
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&g)).await;
    env.apply_svc(&svc("v").group(&virt)).await;
    env.wait_ips("a", &["192.0.2.110"]).await;
    env.wait_event("a", reason::NO_CANDIDATE).await;
    let base = |holding: &str, vcount: &str| {
        json!({
            l::ELIGIBLE: "true", l::SUBNETS: "192.0.2.0/24", l::INTERFACE_V4: "eth0",
            l::HOLDING: holding, l::VIRTUAL_COUNT: vcount,
        })
    };
    write_lease(&env, &n1, base("192.0.2.110", "1")).await;
    write_lease(&env, &n2, base("", "1")).await;
    let want = format!("{n1},eth0,192.0.2.110");
    eventually("announcing-IPv4 from n1", || async {
        (env.annotations("a").await.get(ann::ANNOUNCING_IPV4) == Some(&want)).then_some(())
    })
    .await;
    eventually("virtual count", || async {
        (env.annotations("v")
            .await
            .get(ann::ANNOUNCING_IPV4)
            .map(String::as_str)
            == Some("2 nodes,kube-lb0"))
        .then_some(())
    })
    .await;
    // The holder moves.
    write_lease(&env, &n1, base("", "1")).await;
    write_lease(&env, &n2, base("192.0.2.110", "1")).await;
    let want = format!("{n2},eth0,192.0.2.110");
    eventually("announcing-IPv4 from n2", || async {
        (env.annotations("a").await.get(ann::ANNOUNCING_IPV4) == Some(&want)).then_some(())
    })
    .await;
    let note = env
        .wait_event_with("a", reason::HOLDER_CHANGED, "now announced by")
        .await;
    assert!(note.contains(&n1), "{note}");
    env.wait_event_with("a", reason::HOLDER_CHANGED, &format!("was {n1}"))
        .await;
    // Two Leases list the address: both are shown, as the nodes report it.
    write_lease(&env, &n1, base("192.0.2.110", "1")).await;
    let both = format!("{n1},eth0,192.0.2.110 {n2},eth0,192.0.2.110");
    eventually("announcing-IPv4 from both", || async {
        (env.annotations("a").await.get(ann::ANNOUNCING_IPV4) == Some(&both)).then_some(())
    })
    .await;
    // n2's agent stops renewing: its Lease counts for its duration from the last renewal the
    // allocator saw, then is ignored; n1 keeps renewing.
    let renewer = {
        let (env_client, ns, n1, holding) = (
            env.client.clone(),
            env.name().to_string(),
            n1.clone(),
            base("192.0.2.110", "1"),
        );
        tokio::spawn(async move {
            loop {
                renew_lease(&env_client, &ns, &n1, holding.clone()).await;
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
        })
    };
    let want = format!("{n1},eth0,192.0.2.110");
    eventually("announcing-IPv4 from n1 alone", || async {
        (env.annotations("a").await.get(ann::ANNOUNCING_IPV4) == Some(&want)).then_some(())
    })
    .await;
    renewer.abort();
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), env.name());
    for n in [&n1, &n2] {
        let _ = leases
            .delete(&node_lease_name(n), &DeleteParams::default())
            .await;
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
        let _ = nodes.delete(n, &DeleteParams::default()).await;
    }
}
