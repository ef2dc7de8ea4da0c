//! Per-node Leases are input from other parties: a renewTime the API server accepts but the
//! typed client cannot parse, one near the end of representable time, and one far in the future
//! neither stop the allocator nor make a node alive beyond the renewals it saw.

use std::time::{Duration, Instant};

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{lease as l, node_lease_name};
use ferrolb_e2e::kubelet::create_node;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::json;

use crate::support::*;

/// The last instant the API server writes that k8s-openapi (jiff) cannot represent.
const END_OF_TIME: &str = "9999-12-31T23:59:59.999999Z";
/// Representable, but adding a Lease duration to it is not.
const EDGE_OF_TIME: &str = "9999-12-30T21:59:59.000000Z";
const YEAR_3000: &str = "3000-01-01T00:00:00.000000Z";

fn now_text() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Writes `node`'s per-node Lease as an agent would, holding `holding`, renewed at `renew`
/// (written untyped: the typed client cannot even read some of what the API server accepts).
async fn put_lease(client: &Client, ns: &str, node: &str, renew: &str, holding: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Lease>(&()));
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": node_lease_name(node), "annotations": {
            l::ELIGIBLE: "true", l::SUBNETS: "192.0.2.0/24", l::INTERFACE_V4: "eth0",
            l::HOLDING: holding,
        } },
        "spec": { "holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": renew },
    });
    api.patch(
        &node_lease_name(node),
        &PatchParams::apply("ferrolb-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server accepts renewTime {renew}: {e}"));
}

async fn announcing(env: &Env, name: &str) -> String {
    env.annotations(name)
        .await
        .get(ann::ANNOUNCING_IPV4)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn leases_the_api_server_accepts_never_stop_allocation_nor_outlive_their_renewals() {
    let Some(env) = env("node-leases").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(&[("192.0.2.0/24", "192.0.2.160-192.0.2.161")], &[]),
    )
    .await;
    let node = |n: &str| format!("{}-{n}", env.name());
    let (good, end, edge, future, late) = (
        node("good"),
        node("end"),
        node("edge"),
        node("future"),
        node("late"),
    );
    for n in [&good, &end, &edge, &future, &late] {
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
    let (client, ns) = (env.client.clone(), env.name().to_string());
    put_lease(&client, &ns, &end, END_OF_TIME, "192.0.2.160").await;
    put_lease(&client, &ns, &edge, EDGE_OF_TIME, "192.0.2.160").await;
    put_lease(&client, &ns, &future, YEAR_3000, "192.0.2.160").await;
    // `good` renews like an agent, every 3 s.
    let agent = {
        let (client, ns, good) = (client.clone(), ns.clone(), good.clone());
        tokio::spawn(async move {
            loop {
                put_lease(&client, &ns, &good, &now_text(), "192.0.2.160").await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    };
    let mut a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&g)).await;
    env.wait_ips("a", &["192.0.2.160"]).await;
    // Only the good node is alive: the bad Leases are ignored, the one from the year 3000 has
    // not been seen renewing.
    let only_good = format!("{good},eth0,192.0.2.160");
    eventually("announcing from the good node alone", || async {
        (announcing(&env, "a").await == only_good).then_some(())
    })
    .await;
    for bad in [&end, &edge] {
        let name = node_lease_name(bad);
        eventually(&format!("a warning naming {name}"), || async {
            a.log()
                .lines()
                .any(|line| line.contains("WARN") && line.contains(&name))
                .then_some(())
        })
        .await;
    }
    // A renewal of the year-3000 Lease is seen: alive for one duration from then, not for
    // millennia.
    put_lease(
        &client,
        &ns,
        &future,
        "3000-01-01T00:00:05.000000Z",
        "192.0.2.160",
    )
    .await;
    let renewed = Instant::now();
    eventually("the seen renewal to count", || async {
        announcing(&env, "a")
            .await
            .contains(&format!("{future},eth0"))
            .then_some(())
    })
    .await;
    eventually("the renewal to run out", || async {
        (announcing(&env, "a").await == only_good).then_some(())
    })
    .await;
    let lasted = renewed.elapsed();
    assert!(
        lasted >= Duration::from_secs(14) && lasted < Duration::from_secs(20),
        "a renewal seen counts for the Lease's duration (15 s); it lasted {lasted:?}"
    );
    // A bad Lease arriving on the live watch stops nothing either: later Leases and Services
    // are still served.
    put_lease(
        &client,
        &ns,
        &end,
        "9999-12-31T23:59:58.999999Z",
        "192.0.2.160",
    )
    .await;
    put_lease(&client, &ns, &late, &now_text(), "192.0.2.160").await;
    eventually("the late node's Lease to be read", || async {
        announcing(&env, "a")
            .await
            .contains(&format!("{late},eth0"))
            .then_some(())
    })
    .await;
    env.apply_svc(&svc("b").group(&g)).await;
    env.wait_ips("b", &["192.0.2.161"]).await;
    assert!(!a.exited(), "the allocator keeps running");
    agent.abort();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
    for n in [&good, &end, &edge, &future, &late] {
        let _ = nodes.delete(n, &DeleteParams::default()).await;
    }
}
