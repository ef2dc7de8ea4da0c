//! Two-phase start, adoption, never renumbering across SIGKILL restarts and pool edits, and
//! quiet: nothing is written when everything is right.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrolb_api::contracts::reason;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use ferrolb_api::contracts::lease as l;
use ferrolb_e2e::kubelet::create_node;

use crate::announcing::write_lease;
use crate::support::*;

/// Writes a Service's status as an earlier allocator (or MetalLB) would have.
async fn preset_status(env: &Env, name: &str, ip: &str) {
    let body =
        json!({ "status": { "loadBalancer": { "ingress": [ { "ip": ip, "ipMode": "VIP" } ] } } });
    env.services()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("status");
}

#[tokio::test]
async fn renumbers_nothing_across_sigkill_restarts_and_pool_edits() {
    let Some(env) = env("restart-adopt").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.50-192.0.2.59")], &[]))
        .await;
    // Before any allocator runs: an old Service that already shows .55, and a newer one
    // that claims .55 too (a manual edit), and one that shows nothing.
    env.apply_svc(&svc("old").group(&g)).await;
    preset_status(&env, "old", "192.0.2.55").await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation timestamps have seconds
    env.apply_svc(&svc("newer").group(&g)).await;
    preset_status(&env, "newer", "192.0.2.55").await;
    env.apply_svc(&svc("fresh").group(&g)).await;
    let mut a = env.allocator("a", false);
    env.wait_ips("old", &["192.0.2.55"]).await;
    env.wait_event("newer", reason::SHARING_CONFLICT).await;
    let newer = env.wait_any_ips("newer", 1).await;
    let fresh = env.wait_any_ips("fresh", 1).await;
    assert_ne!(newer[0], "192.0.2.55");
    assert_ne!(fresh[0], "192.0.2.55", "adopted before allocating");
    let before: BTreeMap<&str, Vec<String>> = [
        ("old", vec!["192.0.2.55".to_string()]),
        ("newer", newer.clone()),
        ("fresh", fresh.clone()),
    ]
    .into();
    // SIGKILL, change things while it is down, start again.
    a.kill();
    env.delete_svc("fresh").await;
    env.apply_svc(&svc("late").group(&g)).await;
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.55/32")], &[]))
        .await;
    let _b = env.allocator("b", false);
    env.wait_ips("old", &["192.0.2.55"]).await;
    env.wait_ips("newer", &[newer[0].as_str()]).await;
    let msg = env.wait_condition(&g, "OutOfPoolAllocations", "True").await;
    assert!(msg.contains(&newer[0]), "{msg}");
    env.wait_event("late", reason::ALLOCATION_FAILED).await;
    // The pool grows back: late gets an address none of the others had.
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.50-192.0.2.59")], &[]))
        .await;
    let late = env.wait_any_ips("late", 1).await;
    assert!(
        before
            .values()
            .filter(|v| v[0] != fresh[0])
            .all(|v| v[0] != late[0]),
        "{late:?} {before:?}"
    );
    env.wait_condition(&g, "OutOfPoolAllocations", "False")
        .await;
}

/// resourceVersions of the test's Services and its group.
async fn versions(env: &Env, group: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .services()
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|s| {
            (
                s.metadata.name.unwrap_or_default(),
                s.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect();
    let g = env.groups().get(group).await.expect("group");
    out.push((
        group.to_string(),
        g.metadata.resource_version.unwrap_or_default(),
    ));
    out
}

/// Asserts that nothing changes for `quiet`.
async fn assert_quiet(env: &Env, group: &str, quiet: Duration) {
    let start = versions(env, group).await;
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(versions(env, group).await, start, "something was written");
    }
}

#[tokio::test]
async fn writes_nothing_when_settled_even_across_a_restart() {
    let Some(env) = env("restart-quiet").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(
            &[("192.0.2.0/24", "192.0.2.60-192.0.2.69")],
            &[("2001:db8:6::/64", "2001:db8:6::/120")],
        ),
    )
    .await;
    // A node that can hold every address, so that no NoCandidate is pending.
    let node = format!("{}-n", env.name());
    create_node(
        &env.client,
        &node,
        &["192.0.2.2".parse().expect("ip")],
        &[],
        true,
    )
    .await
    .expect("node");
    let facts = json!({ l::ELIGIBLE: "true", l::SUBNETS: "192.0.2.0/24 2001:db8:6::/64", l::INTERFACE_V4: "eth0" });
    write_lease(&env, &node, facts).await;
    let mut a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&g).policy("RequireDualStack"))
        .await;
    env.apply_svc(
        &svc("b")
            .group(&g)
            .ann(ferrolb_api::annotations::ALLOW_SHARED_IP, "k"),
    )
    .await;
    env.apply_svc(
        &svc("c")
            .group(&g)
            .ann(ferrolb_api::annotations::ALLOW_SHARED_IP, "k")
            .ports(&[("TCP", 443)]),
    )
    .await;
    env.wait_any_ips("a", 2).await;
    env.wait_any_ips("c", 1).await;
    env.wait_condition(&g, "InUse", "True").await;
    eventually("the group to count 3 Services", || async {
        env.condition(&g, "InUse")
            .await
            .filter(|(_, m)| m.starts_with("3 "))
            .map(|_| ())
    })
    .await;
    let events_before = env.events("a").await.len();
    assert_quiet(&env, &g, Duration::from_secs(3)).await;
    a.kill();
    let _b = env.allocator("b", false);
    eventually("the new allocator to sync", || async {
        env.metrics(&_b)
            .await
            .contains("ferrolb_allocator_reconcile_duration_seconds_count")
            .then_some(())
    })
    .await;
    assert_quiet(&env, &g, Duration::from_secs(3)).await;
    assert_eq!(
        env.events("a").await.len(),
        events_before,
        "no new Events about a settled Service"
    );
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(env.client.clone());
    let _ = nodes.delete(&node, &Default::default()).await;
}
