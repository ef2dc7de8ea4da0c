//! ServiceGroup status, conditions, the in-use finalizer, overlaps, the default group and the
//! choice among autoAssign groups.

use ferrolb_api::annotations::ALLOCATED_FROM;
use ferrolb_api::contracts::{CLUSTER_EVENTS_NAMESPACE, FINALIZER_IN_USE, reason};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};

use crate::support::*;

#[tokio::test]
async fn reports_group_status_and_holds_deletion_while_in_use() {
    let Some(env) = env("groups-status").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(
            &[("192.0.2.0/24", "192.0.2.80-192.0.2.89")],
            &[("2001:db8:8::/64", "2001:db8:8::/120")],
        ),
    )
    .await;
    let a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&g).policy("RequireDualStack"))
        .await;
    env.wait_any_ips("a", 2).await;
    // The in-use finalizer is there before the Service shows an address of the group: a delete
    // in between would not wait for the Service.
    let held = env.groups().get(&g).await.expect("the group");
    assert!(
        held.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER_IN_USE.to_string()),
        "the in-use finalizer once the Service has its addresses"
    );
    let msg = env.wait_condition(&g, "InUse", "True").await;
    assert!(msg.contains(&format!("{}/a", env.name())), "{msg}");
    env.wait_condition(&g, "Ready", "True").await;
    let group = eventually("status usage", || async {
        let g = env.groups().get(&g).await.ok()?;
        (g.status.as_ref()?.usage.as_deref() == Some("v4 1/10, v6 1/255")).then_some(g)
    })
    .await;
    let status = group.status.clone().expect("status");
    assert_eq!(status.type_.as_deref(), Some("local"));
    assert_eq!(
        status.capacity.map(|c| (c.ipv4, c.ipv6)),
        // 2001:db8:8:: is the subnet's Subnet-Router anycast address: not a Service's.
        Some(("10".into(), "255".into()))
    );
    assert_eq!(status.allocated.map(|c| (c.ipv4, c.ipv6)), Some((1, 1)));
    assert!(
        group
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER_IN_USE.to_string())
    );
    let m = env.metrics(&a).await;
    assert!(
        m.contains(&format!(
            "ferrolb_allocator_pool_capacity_addresses{{group=\"{g}\",family=\"ipv4\"}} 10"
        )),
        "{m}"
    );
    assert!(m.contains("ferrolb_allocator_allocations_total"), "{m}");
    // Deleting a group in use waits for its last Service.
    env.groups()
        .delete(&g, &DeleteParams::default())
        .await
        .expect("delete");
    env.wait_condition(&g, "Ready", "False").await;
    env.apply_svc(&svc("b").group(&g)).await;
    env.wait_event("b", reason::ALLOCATION_FAILED).await;
    assert!(
        env.groups().get_opt(&g).await.expect("get").is_some(),
        "held by the finalizer"
    );
    env.delete_svc("a").await;
    eventually("the group to go", || async {
        env.groups().get_opt(&g).await.ok()?.is_none().then_some(())
    })
    .await;
    // Issue 20: the series of a deleted group, and of a released address, go with them.
    let ns = env.name();
    eventually("the group's pool series to go", || async {
        let m = env.metrics(&a).await;
        let gone = [
            format!("ferrolb_allocator_pool_capacity_addresses{{group=\"{g}\""),
            format!("ferrolb_allocator_pool_allocated_addresses{{group=\"{g}\""),
            format!("ferrolb_allocator_address_announcers{{service_namespace=\"{ns}\""),
        ];
        (!m.is_empty() && gone.iter().all(|s| !m.contains(s.as_str()))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_newer_of_overlapping_groups_is_not_used_and_bad_ranges_are_named() {
    let Some(env) = env("groups-overlap").await else {
        return;
    };
    let (old, new, bad) = (
        env.group_name("old"),
        env.group_name("new"),
        env.group_name("bad"),
    );
    env.apply_group(
        &old,
        local(&[("192.0.2.0/24", "192.0.2.90-192.0.2.95")], &[]),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.apply_group(
        &new,
        local(&[("192.0.2.0/24", "192.0.2.95-192.0.2.99")], &[]),
    )
    .await;
    env.apply_group(
        &bad,
        local(&[("198.51.100.0/24", "198.51.100.9-198.51.100.1")], &[]),
    )
    .await;
    let _a = env.allocator("a", false);
    let msg = env.wait_condition(&new, "Overlapping", "True").await;
    assert!(msg.contains(&old), "{msg}");
    env.wait_condition(&old, "Overlapping", "False").await;
    let msg = env.wait_condition(&bad, "InvalidRange", "True").await;
    assert!(msg.contains("v4pools[0].pool"), "{msg}");
    // Each problem also comes as a Warning Event on its group, once.
    for (group, reason, text) in [
        (&new, "Overlapping", old.as_str()),
        (&bad, "InvalidRange", "v4pools[0].pool"),
    ] {
        let notes = eventually(&format!("a {reason} Event on {group}"), || async {
            let notes = group_events(&env, group, reason).await;
            (!notes.is_empty()).then_some(notes)
        })
        .await;
        assert!(notes.iter().all(|n| n.contains(text)), "{notes:?}");
    }
    env.apply_svc(&svc("a").group(&new)).await;
    env.apply_svc(&svc("b").group(&old)).await;
    env.wait_event("a", reason::ALLOCATION_FAILED).await;
    env.wait_ips("b", &["192.0.2.90"]).await;
    assert_eq!(
        group_events(&env, &new, "Overlapping").await.len(),
        1,
        "told once, not on every pass"
    );
    // Fixed: the group is used.
    env.apply_group(
        &new,
        local(&[("192.0.2.0/24", "192.0.2.96-192.0.2.99")], &[]),
    )
    .await;
    env.wait_ips("a", &["192.0.2.96"]).await;
    env.apply_svc(&svc("c").group("no-such-group")).await;
    assert!(
        env.wait_event("c", reason::ALLOCATION_FAILED)
            .await
            .contains("does not exist")
    );
}

#[tokio::test]
async fn serves_the_default_group_to_services_that_name_none() {
    // The only test of this binary that creates the cluster-wide "default" group.
    let Some(env) = env("groups-default").await else {
        return;
    };
    let ns = env.name().to_string();
    let manual = env.group_name("manual");
    env.apply_group(
        "default",
        local(&[("203.0.113.0/24", "203.0.113.10-203.0.113.11")], &[]),
    )
    .await;
    let mut spec = local(&[("203.0.113.0/24", "203.0.113.20/32")], &[]);
    spec["autoAssign"] = false.into();
    env.apply_group(&manual, spec).await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("plain")).await;
    env.wait_ips("plain", &["203.0.113.10"]).await;
    env.apply_svc(&svc("named").group(&manual)).await;
    env.wait_ips("named", &["203.0.113.20"]).await;
    env.apply_svc(&svc("other-class").spec("loadBalancerClass", "other.io/lb".into()))
        .await;
    env.delete_svc("plain").await;
    env.delete_svc("named").await;
    eventually("default to be free of Services", || async {
        env.condition("default", "InUse")
            .await
            .filter(|(s, _)| s == "False")
            .map(|_| ())
    })
    .await;
    assert!(
        env.ips("other-class").await.is_empty(),
        "another class is left alone"
    );
    let _ = env
        .groups()
        .delete("default", &DeleteParams::default())
        .await;
    let _ = ns;
}

#[tokio::test]
async fn services_that_name_no_group_take_the_first_auto_assign_group_with_room() {
    let Some(env) = env("groups-auto").await else {
        return;
    };
    let auto = |pool: &str, priority: i32| {
        let mut spec = local(&[("198.51.100.0/24", pool)], &[]);
        spec["autoAssign"] = true.into();
        spec["priority"] = priority.into();
        spec
    };
    let tiny = env.group_name("tiny");
    let big = env.group_name("big");
    env.apply_group(&tiny, auto("198.51.100.200/32", 10)).await;
    env.apply_group(&big, auto("198.51.100.210-198.51.100.211", 20))
        .await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("first")).await;
    env.wait_ips("first", &["198.51.100.200"]).await;
    env.apply_svc(&svc("second")).await;
    env.wait_ips("second", &["198.51.100.210"]).await;
    env.wait_event_with(
        "first",
        reason::ADDRESS_ALLOCATED,
        &format!("198.51.100.200 allocated from ServiceGroup {tiny}"),
    )
    .await;
    let told = env
        .wait_event_with(
            "second",
            reason::ADDRESS_ALLOCATED,
            &format!("198.51.100.210 allocated from ServiceGroup {big}"),
        )
        .await;
    assert!(
        told.contains(&format!("passed over: {tiny} (no free IPv4 address)")),
        "{told}"
    );
    // A group tried before both appears: new Services take it, nothing held moves.
    let top = env.group_name("top");
    env.apply_group(&top, auto("198.51.100.220/32", 1)).await;
    env.apply_svc(&svc("third")).await;
    env.wait_ips("third", &["198.51.100.220"]).await;
    assert_eq!(env.ips("first").await, ["198.51.100.200"]);
    assert_eq!(env.ips("second").await, ["198.51.100.210"]);
    for (name, group) in [("first", &tiny), ("second", &big)] {
        let written = env.annotations(name).await;
        assert_eq!(written.get(ALLOCATED_FROM), Some(group), "{name}");
    }
    for name in ["first", "second", "third"] {
        env.delete_svc(name).await;
    }
    for g in [&tiny, &big, &top] {
        let _ = env.groups().delete(g, &DeleteParams::default()).await;
    }
}

/// The notes of the Events with `reason` about ServiceGroup `group` (namespace `default`).
async fn group_events(env: &Env, group: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), CLUSTER_EVENTS_NAMESPACE);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ServiceGroup") && r.name.as_deref() == Some(group)
            }) && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.note)
        .collect()
}
