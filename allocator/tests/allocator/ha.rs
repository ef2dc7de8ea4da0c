//! Two replicas: only the leader writes; failover allocates nothing twice.

use std::collections::BTreeSet;

use ferrolb_api::contracts::ALLOCATOR_LEASE;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use crate::support::*;

async fn holder(env: &Env) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(env.client.clone(), env.name());
    api.get_opt(ALLOCATOR_LEASE)
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn only_the_leader_writes_and_failover_allocates_nothing_twice() {
    let Some(env) = env("ha").await else { return };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(&[("192.0.2.0/24", "192.0.2.120-192.0.2.139")], &[]),
    )
    .await;
    let mut one = env.allocator("one", true);
    let leader = eventually("a leader", || holder(&env)).await;
    assert_eq!(leader, "one");
    let mut two = env.allocator("two", true);
    for i in 0..5 {
        env.apply_svc(&svc(&format!("s{i}")).group(&g)).await;
    }
    for i in 0..5 {
        env.wait_any_ips(&format!("s{i}"), 1).await;
    }
    // The follower has synced but wrote nothing: every status field is the leader's.
    let s0 = env.services().get("s0").await.expect("get");
    let managers: BTreeSet<String> = s0
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains("ferrolb-allocator"), "{managers:?}");
    assert!(
        env.metrics(&two)
            .await
            .contains("ferrolb_allocator_reconcile_duration_seconds_count 0")
    );
    // The leader dies; the follower takes over and serves new Services, never twice.
    one.kill();
    for i in 5..10 {
        env.apply_svc(&svc(&format!("s{i}")).group(&g)).await;
    }
    eventually("the follower to lead", || async {
        (holder(&env).await.as_deref() == Some("two")).then_some(())
    })
    .await;
    let mut seen = BTreeSet::new();
    for i in 0..10 {
        let ip = env.wait_any_ips(&format!("s{i}"), 1).await;
        assert!(seen.insert(ip[0].clone()), "{} allocated twice", ip[0]);
    }
    assert!(!two.exited());
}
