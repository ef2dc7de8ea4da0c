//! Families, requested addresses, release and the edges of pools.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;
use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::watcher;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn allocates_by_family_policy_and_refuses_half_dual_stack() {
    let Some(env) = env("alloc-families").await else {
        return;
    };
    let (dual, v4) = (env.group_name("dual"), env.group_name("v4"));
    env.apply_group(
        &dual,
        local(
            &[("192.0.2.0/24", "192.0.2.100-192.0.2.103")],
            &[("2001:db8:1::/64", "2001:db8:1::100/126")],
        ),
    )
    .await;
    env.apply_group(&v4, local(&[("198.51.100.0/24", "198.51.100.10/31")], &[]))
        .await;
    let _a = env.allocator("a", false);
    let first = first_addressed(&env, "single").await;
    env.apply_svc(&svc("single").group(&dual)).await;
    env.wait_ips("single", &["192.0.2.100"]).await;
    // One write carries the address and its annotations: no watcher (every node's agent)
    // ever sees the one without the other.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), first)
        .await
        .expect("the watcher saw the address")
        .expect("the watcher task");
    assert_eq!(first.get(ann::ALLOCATED_FROM), Some(&dual), "{first:?}");
    assert_eq!(first.get(ann::POOL_TYPE).map(String::as_str), Some("local"));
    env.apply_svc(&svc("six").group(&dual).v6()).await;
    env.wait_ips("six", &["2001:db8:1::100"]).await;
    env.apply_svc(&svc("prefer").group(&dual).policy("PreferDualStack"))
        .await;
    env.wait_ips("prefer", &["192.0.2.101", "2001:db8:1::101"])
        .await;
    env.apply_svc(&svc("require").group(&dual).policy("RequireDualStack"))
        .await;
    env.wait_ips("require", &["192.0.2.102", "2001:db8:1::102"])
        .await;
    env.apply_svc(&svc("prefer-v4").group(&v4).policy("PreferDualStack"))
        .await;
    env.wait_ips("prefer-v4", &["198.51.100.10"]).await;
    env.apply_svc(&svc("half").group(&v4).policy("RequireDualStack"))
        .await;
    let note = env.wait_event("half", reason::ALLOCATION_FAILED).await;
    assert!(
        note.contains("RequireDualStack") && note.contains("no IPv6 pool"),
        "{note}"
    );
    assert!(env.ips("half").await.is_empty(), "no half allocation");
    let a = env.annotations("require").await;
    assert_eq!(
        a.get(ann::ALLOCATED_BY).map(String::as_str),
        Some("ferrolb")
    );
    assert_eq!(a.get(ann::ALLOCATED_FROM), Some(&dual));
    assert_eq!(a.get(ann::POOL_TYPE).map(String::as_str), Some("local"));
    let svc = env.services().get("require").await.expect("get");
    let modes: Vec<Option<String>> = svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip_mode)
        .collect();
    assert_eq!(modes, vec![Some("VIP".to_string()); 2]);
    assert!(
        !env.wait_event("single", reason::ADDRESS_ALLOCATED)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn honours_requested_addresses_aliases_and_the_deprecated_field() {
    let Some(env) = env("alloc-requested").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(
            &[("192.0.2.0/24", "192.0.2.10-192.0.2.20")],
            &[("2001:db8:2::/64", "2001:db8:2::/120")],
        ),
    )
    .await;
    let _a = env.allocator("a", false);
    env.apply_svc(
        &svc("ours")
            .group(&g)
            .policy("RequireDualStack")
            .ann(ann::ADDRESSES, "192.0.2.15,2001:db8:2::15"),
    )
    .await;
    env.apply_svc(
        &svc("metallb")
            .group(&g)
            .ann("metallb.universe.tf/loadBalancerIPs", "192.0.2.16"),
    )
    .await;
    env.apply_svc(
        &svc("purelb")
            .ann("purelb.io/service-group", &g)
            .ann("purelb.io/addresses", "192.0.2.17"),
    )
    .await;
    env.apply_svc(
        &svc("legacy")
            .group(&g)
            .spec("loadBalancerIP", "192.0.2.18".into()),
    )
    .await;
    env.apply_svc(&svc("outside").group(&g).ann(ann::ADDRESSES, "192.0.2.99"))
        .await;
    env.apply_svc(&svc("taken").group(&g).ann(ann::ADDRESSES, "192.0.2.15"))
        .await;
    env.wait_ips("ours", &["192.0.2.15", "2001:db8:2::15"])
        .await;
    env.wait_ips("metallb", &["192.0.2.16"]).await;
    env.wait_ips("purelb", &["192.0.2.17"]).await;
    env.wait_ips("legacy", &["192.0.2.18"]).await;
    assert!(
        env.wait_event("legacy", reason::DEPRECATED_FIELD)
            .await
            .contains("ferrolb.io/addresses")
    );
    let note = env
        .wait_event("outside", reason::REQUESTED_ADDRESS_UNAVAILABLE)
        .await;
    assert!(note.contains("192.0.2.99"), "{note}");
    env.wait_event("taken", reason::REQUESTED_ADDRESS_UNAVAILABLE)
        .await;
    assert!(env.ips("outside").await.is_empty() && env.ips("taken").await.is_empty());
    // Retried when the situation changes: the holder goes, the request is served.
    env.delete_svc("ours").await;
    env.wait_ips("taken", &["192.0.2.15"]).await;
    env.apply_svc(
        &svc("conflict")
            .group(&g)
            .ann(ann::ADDRESSES, "192.0.2.19")
            .ann("metallb.io/loadBalancerIPs", "192.0.2.20"),
    )
    .await;
    env.wait_ips("conflict", &["192.0.2.19"]).await;
    env.wait_event("conflict", reason::ANNOTATION_CONFLICT)
        .await;
}

#[tokio::test]
async fn releases_on_delete_type_change_and_group_change() {
    let Some(env) = env("alloc-release").await else {
        return;
    };
    let (g, h) = (env.group_name("g"), env.group_name("h"));
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.30/31")], &[]))
        .await;
    env.apply_group(&h, local(&[("198.51.100.0/24", "198.51.100.30/32")], &[]))
        .await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&g)).await;
    env.apply_svc(&svc("b").group(&g)).await;
    let a = env.wait_any_ips("a", 1).await;
    env.wait_any_ips("b", 1).await;
    // Type changed away: the address and our annotations go.
    env.apply_svc(
        &svc("a")
            .group(&g)
            .spec("type", "ClusterIP".into())
            .spec("ports", json!([{ "port": 80, "protocol": "TCP" }])),
    )
    .await;
    env.wait_ips("a", &[]).await;
    eventually("annotations removed", || async {
        (!env.annotations("a").await.contains_key(ann::ALLOCATED_BY)).then_some(())
    })
    .await;
    env.apply_svc(&svc("c").group(&g)).await;
    env.wait_ips("c", &[a[0].as_str()]).await;
    // Group changed: released here, allocated there.
    env.apply_svc(&svc("c").group(&h)).await;
    env.wait_ips("c", &["198.51.100.30"]).await;
    // (A class cannot change while the type stays LoadBalancer: the API server refuses it.)
    // Deleted: the last address of h is free again.
    env.apply_svc(&svc("d").group(&h)).await;
    env.wait_event("d", reason::ALLOCATION_FAILED).await;
    env.delete_svc("c").await;
    env.wait_ips("d", &["198.51.100.30"]).await;
}

#[tokio::test]
async fn edge_pools_and_a_waiting_service_served_by_a_new_range() {
    let Some(env) = env("alloc-edges").await else {
        return;
    };
    let (one, six, wide) = (
        env.group_name("one"),
        env.group_name("six"),
        env.group_name("wide"),
    );
    env.apply_group(&one, local(&[("192.0.2.0/24", "192.0.2.40/32")], &[]))
        .await;
    env.apply_group(
        &six,
        local(&[], &[("2001:db8:3::/64", "2001:db8:3::40/128")]),
    )
    .await;
    env.apply_group(&wide, local(&[], &[("2001:db8:4::/64", "2001:db8:4::/64")]))
        .await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("a").group(&one)).await;
    env.apply_svc(&svc("b").group(&six).v6()).await;
    env.apply_svc(&svc("c").group(&wide).v6()).await;
    env.wait_ips("a", &["192.0.2.40"]).await;
    env.wait_ips("b", &["2001:db8:3::40"]).await;
    // The /64's first address is its Subnet-Router anycast address: never handed out.
    env.wait_ips("c", &["2001:db8:4::1"]).await;
    env.wait_condition(&wide, "Ready", "True").await;
    let g = env.groups().get(&wide).await.expect("group");
    assert_eq!(
        g.status.and_then(|s| s.capacity).map(|c| c.ipv6),
        Some("18446744073709551615".to_string())
    );
    // Exhausted, then the freed last address is reused.
    env.apply_svc(&svc("d").group(&one)).await;
    env.wait_event("d", reason::ALLOCATION_FAILED).await;
    env.wait_condition(&one, "Exhausted", "True").await;
    // `kubectl get servicegroups` says so beside Ready (an exhausted group is still Ready).
    let out = env
        .cp
        .kubectl()
        .args(["get", "servicegroup", &one])
        .output()
        .expect("kubectl runs");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    // Columns by their header's offset (a value may hold spaces: "v4 1/1").
    let (header, row) = (
        table.lines().next().unwrap_or_default(),
        table.lines().nth(1),
    );
    let cell = |name: &str| {
        let at = header.find(&format!(" {name} "))? + 1;
        row?.get(at..)?.split_whitespace().next()
    };
    assert_eq!(
        (cell("READY"), cell("EXHAUSTED")),
        (Some("True"), Some("True")),
        "{table}"
    );
    env.delete_svc("a").await;
    env.wait_ips("d", &["192.0.2.40"]).await;
    // A range added to the exhausted group serves the one waiting.
    env.apply_svc(&svc("e").group(&one)).await;
    env.wait_event("e", reason::ALLOCATION_FAILED).await;
    env.apply_group(
        &one,
        local(
            &[
                ("192.0.2.0/24", "192.0.2.40/32"),
                ("192.0.2.0/24", "192.0.2.41-192.0.2.41"),
            ],
            &[],
        ),
    )
    .await;
    env.wait_ips("e", &["192.0.2.41"]).await;
}

/// The annotations of `name` in the first watch event that shows it with an address; returns
/// once the watch has started, so the Service may be created right after.
async fn first_addressed(
    env: &Env,
    name: &str,
) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    let api = env.services();
    let name = name.to_string();
    let (started, on_start) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut started = Some(started);
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    started.take().map(|s| s.send(()));
                }
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))
                    if s.name_any() == name && !ingress(Some(&s)).is_empty() =>
                {
                    return s.annotations().clone();
                }
                _ => {}
            }
        }
        BTreeMap::new()
    });
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), on_start).await;
    task
}

/// Watches the namespace's Services and records every moment two of them show one address.
fn watch_for_doubles(env: &Env) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let doubles = Arc::new(Mutex::new(Vec::new()));
    let out = doubles.clone();
    let api = env.services();
    let task = tokio::spawn(async move {
        let mut shown: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                    shown.insert(s.name_any(), ingress(Some(&s)));
                }
                Ok(watcher::Event::Delete(s)) => {
                    shown.remove(&s.name_any());
                }
                _ => continue,
            }
            let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (name, ips) in &shown {
                for ip in ips {
                    owners.entry(ip.as_str()).or_default().push(name.as_str());
                }
            }
            for (ip, names) in owners.iter().filter(|(_, n)| n.len() > 1) {
                let mut d = out.lock().unwrap_or_else(|p| p.into_inner());
                d.push(format!("{ip} shown by {names:?}"));
            }
        }
    });
    (doubles, task)
}

#[tokio::test]
async fn family_changes_keep_addresses_and_a_freed_address_never_shows_twice() {
    let Some(env) = env("alloc-reuse").await else {
        return;
    };
    let (g, fenced) = (env.group_name("g"), env.group_name("fenced"));
    const N: usize = 6;
    env.apply_group(
        &g,
        local(
            &[("192.0.2.0/24", "192.0.2.30-192.0.2.45")],
            &[("2001:db8:5::/64", "2001:db8:5::10-2001:db8:5::15")],
        ),
    )
    .await;
    let mut spec = local(&[("192.0.2.0/24", "192.0.2.50/32")], &[]);
    spec["namespaces"] = json!(["somewhere-else"]);
    env.apply_group(&fenced, spec).await;
    let (doubles, watch) = watch_for_doubles(&env);
    let mut a = env.allocator("a", false);
    let dual = |i: usize| format!("dual-{i}");
    let mut v4 = Vec::new();
    for i in 0..N {
        env.apply_svc(&svc(&dual(i)).group(&g).policy("RequireDualStack"))
            .await;
    }
    for i in 0..N {
        let ips = env.wait_any_ips(&dual(i), 2).await;
        v4.push(ips[0].clone());
    }
    // Every IPv6 address is taken: these wait.
    for i in 0..N {
        env.apply_svc(&svc(&format!("six-{i}")).group(&g).v6())
            .await;
    }
    env.wait_event("six-0", reason::ALLOCATION_FAILED).await;
    // Stopped, every dual-stack Service becomes single-stack: the next pass releases N IPv6
    // addresses and hands them to the waiting Services, all at once.
    a.kill();
    for i in 0..N {
        env.apply_svc(&svc(&dual(i)).group(&g).policy("SingleStack"))
            .await;
    }
    let _b = env.allocator("b", false);
    for (i, ip) in v4.iter().enumerate() {
        env.wait_any_ips(&format!("six-{i}"), 1).await;
        env.wait_ips(&dual(i), &[ip.as_str()]).await;
    }
    // Single to dual-stack keeps the IPv4 address; a Service of another type is left alone; a
    // request of the wrong family and a group fenced to other namespaces allocate nothing.
    env.delete_svc("six-0").await;
    env.apply_svc(&svc(&dual(0)).group(&g).policy("PreferDualStack"))
        .await;
    let ips = env.wait_any_ips(&dual(0), 2).await;
    assert_eq!(ips[0], v4[0], "the IPv4 address is kept");
    env.apply_svc(&svc("nodeport").group(&g).spec("type", "NodePort".into()))
        .await;
    env.apply_svc(
        &svc("wrong-family")
            .group(&g)
            .ann(ann::ADDRESSES, "2001:db8:5::15"),
    )
    .await;
    let note = env
        .wait_event("wrong-family", reason::REQUESTED_ADDRESS_UNAVAILABLE)
        .await;
    assert!(note.contains("2001:db8:5::15"), "{note}");
    env.apply_svc(&svc("fenced").group(&fenced)).await;
    let note = env.wait_event("fenced", reason::ALLOCATION_FAILED).await;
    assert!(note.contains("namespace"), "{note}");
    assert!(env.ips("nodeport").await.is_empty());
    assert!(env.ips("wrong-family").await.is_empty());
    assert!(env.ips("fenced").await.is_empty());
    watch.abort();
    let doubles = doubles.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(doubles.is_empty(), "addresses shown twice: {doubles:?}");
}

#[tokio::test]
async fn serves_only_its_class_without_handle_unclassed() {
    let Some(env) = env("alloc-classed").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.60-192.0.2.61")], &[]))
        .await;
    let _a = env.allocator_with("a", false, &["--handle-unclassed", "false"]);
    env.apply_svc(&svc("unclassed").group(&g)).await;
    env.apply_svc(&svc("classed").group(&g).spec(
        "loadBalancerClass",
        ferrolb_api::contracts::LOAD_BALANCER_CLASS.into(),
    ))
    .await;
    env.wait_ips("classed", &["192.0.2.60"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(env.ips("unclassed").await.is_empty(), "not ours");
}

#[tokio::test]
async fn multi_pool_gives_one_address_per_subnet_and_renumbers_nothing() {
    let Some(env) = env("alloc-multipool").await else {
        return;
    };
    let g = env.group_name("g");
    let mut spec = local(
        &[
            ("192.0.2.0/24", "192.0.2.30-192.0.2.31"),
            ("198.51.100.0/24", "198.51.100.30-198.51.100.31"),
        ],
        &[("2001:db8:3::/64", "2001:db8:3::/126")],
    );
    spec["local"]["multiPool"] = true.into();
    env.apply_group(&g, spec).await;
    let _a = env.allocator("a", false);
    env.apply_svc(&svc("wide").group(&g).policy("RequireDualStack"))
        .await;
    // One address in each IPv4 subnet, one in the IPv6 one (its ::0 is the subnet's anycast).
    env.wait_ips("wide", &["192.0.2.30", "198.51.100.30", "2001:db8:3::1"])
        .await;
    env.apply_svc(&svc("narrow").group(&g).ann(ann::MULTI_POOL, "false"))
        .await;
    env.wait_ips("narrow", &["192.0.2.31"]).await;
    // The first subnet is full: all or nothing, and the Event names the subnet.
    env.apply_svc(&svc("late").group(&g)).await;
    let note = env.wait_event("late", reason::ALLOCATION_FAILED).await;
    assert!(
        note.contains("no free IPv4 address in subnet 192.0.2.0/24"),
        "{note}"
    );
    assert!(env.ips("late").await.is_empty(), "no half allocation");
    // Switched off for one Service: its first address of each family stays, the rest goes.
    env.apply_svc(
        &svc("wide")
            .group(&g)
            .policy("RequireDualStack")
            .ann(ann::MULTI_POOL, "false"),
    )
    .await;
    env.wait_ips("wide", &["192.0.2.30", "2001:db8:3::1"]).await;
    let released = env.wait_event("wide", reason::ADDRESS_RELEASED).await;
    assert!(released.contains("198.51.100.30"), "{released}");
}
