//! Virtual addresses end to end, on one world (control plane, 3 node namespaces each with
//! ferrolb-agent, bird-sidecar and BIRD, an FRR ToR with `maximum-paths`, a client): ECMP with
//! every node as a next hop and each node reachable from the client, over IPv4 and IPv6;
//! communities on the ToR; `externalTrafficPolicy: Local` following the endpoints; a node's
//! link cut, partitioned (carrier kept, BFD notices) or its BIRD killed; a graceful stop under a request loop without a failed request;
//! several Services in one aggregate, one route kept until the last goes, and withdrawal on
//! deletion.
//!
//! The cases share one world (it takes ~15 s to start) and run in order in one test; each
//! leaves the world as the next expects it. Local preference is only carried over iBGP: the
//! iBGP case lives in `bird-sidecar/tests/tor.rs`.

use std::time::{Duration, Instant};

use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::env::{require, require_root};
use ferrolb_e2e::kubelet::{Backend, write_endpoints};
use ferrolb_e2e::routing::{
    self, RequestLoop, VirtualGroup, bird_pid, birdc, create_service, delete_service, hops_of,
    ingress, nexthops, prefix, service, spread, tor_paths, tor_prefixes,
};
use ferrolb_e2e::world::World;

const WAIT: Duration = Duration::from_secs(45);
const ECMP: VirtualGroup<'static> = VirtualGroup {
    name: "ecmp",
    v4: "203.0.113.0/28",
    v4_aggregation: "/28",
    v6: Some(("2001:db8:5::/120", "/120")),
    communities: &["64512:100"],
    large_communities: &["64512:1:2"],
    local_preference: Some(200),
};
const ETP: VirtualGroup<'static> = VirtualGroup {
    name: "etp",
    v4: "203.0.113.16/28",
    v4_aggregation: "/28",
    v6: None,
    communities: &["64512:200"],
    large_communities: &[],
    local_preference: None,
};
const AGG: VirtualGroup<'static> = VirtualGroup {
    name: "agg",
    v4: "203.0.113.32/28",
    v4_aggregation: "/28",
    v6: None,
    communities: &["64512:300"],
    large_communities: &[],
    local_preference: None,
};
/// The agent's (and so the sidecar's) drain.
const DRAIN: Duration = Duration::from_secs(4);

fn agent_config() -> String {
    format!(
        "apiVersion: ferrolb.io/v1\nkind: LBNodeAgent\nmetadata:\n  name: default\nspec:\n  localInterface: default\n  localAddressLifetime: 5s\n  drain: {}s\n",
        DRAIN.as_secs()
    )
}

/// What to read when a case fails: the ToR's tables and sessions, each BIRD's sessions, the
/// sidecars' logs.
fn explain(world: &World) -> String {
    let mut s = world
        .frr
        .vtysh(&[
            "show bgp summary",
            "show bgp ipv4 unicast",
            "show bgp ipv6 unicast",
            "show bfd peers brief",
        ])
        .unwrap_or_else(|e| e.to_string());
    for i in 0..world.names.len() {
        s += &format!(
            "\n--- {} ---\n{}{}",
            world.names[i],
            birdc(world, i, &["show", "protocols"]),
            world.in_ns(
                world.topo.node(i).ns_name(),
                &["ip", "addr", "show", "dev", "kube-lb0"]
            )
        );
        if let Some(sidecar) = &world.sidecars[i] {
            let log = sidecar.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            s += &format!(
                "sidecar log tail:\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    s
}

/// Waits (bounded) for `f`; on timeout panics with what failed and [`explain`].
async fn until<T>(
    world: &World,
    what: &str,
    timeout: Duration,
    f: impl FnMut(&World) -> Option<T>,
) -> T {
    match world.wait(what, timeout, f).await {
        Ok(v) => v,
        Err(e) => panic!("{e}\n{}", explain(world)),
    }
}

async fn hops_become(world: &World, pfx: &str, nodes: &[usize]) {
    let v6 = pfx.contains(':');
    let want = hops_of(world, nodes, v6);
    until(
        world,
        &format!("{pfx} via nodes {nodes:?} ({want:?}) on the ToR"),
        WAIT,
        |w| (nexthops(&w.frr, pfx) == want).then_some(()),
    )
    .await;
}

/// With FERROLB_ROUTING_SNAPSHOTS=1, prints what docs/routing.md shows, from this world.
fn snapshot(world: &World, label: &str, node: usize, pfx: &str) {
    if std::env::var_os("FERROLB_ROUTING_SNAPSHOTS").is_none() {
        return;
    }
    let ns = world.topo.node(node).ns_name();
    let family = if pfx.contains(':') { "ipv6" } else { "ip" };
    let bgp = if pfx.contains(':') { "ipv6" } else { "ipv4" };
    eprintln!(
        "=== snapshot: {label}\n$ ip addr show dev kube-lb0\n{}$ birdc show protocols\n{}$ birdc show route\n{}$ birdc show protocols all peer_192_0_2_1\n{}$ vtysh -c 'show {family} route {pfx}'\n{}$ vtysh -c 'show bgp {bgp} unicast {pfx}'\n{}",
        world.in_ns(ns, &["ip", "addr", "show", "dev", "kube-lb0"]),
        birdc(world, node, &["show", "protocols"]),
        birdc(world, node, &["show", "route", "all"]),
        birdc(world, node, &["show", "protocols", "all", "peer_192_0_2_1"]),
        world
            .frr
            .vtysh(&[&format!("show {family} route {pfx}")])
            .unwrap_or_else(|e| e.to_string()),
        world
            .frr
            .vtysh(&[&format!("show bgp {bgp} unicast {pfx}")])
            .unwrap_or_else(|e| e.to_string()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_addresses_are_routed_by_ecmp_follow_endpoints_survive_failures_and_drain() {
    if !require_root() || !require("the control-plane tools", ControlPlane::missing()) {
        return;
    }
    let mut world = World::start("rt", 3).await.expect("the world starts");
    let _responders = routing::start_responders(&world).expect("responders");
    routing::hash_on_ports(&world).expect("L4 ECMP hashing on the ToR");
    let yaml = [ECMP.yaml(), ETP.yaml(), AGG.yaml(), agent_config()].join("---\n");
    routing::apply(&world, "routing", &yaml).expect("groups and agent config");
    let api = routing::services(&world).await.expect("client");
    let all = ["node-a", "node-b", "node-c"];

    // Every session up and past FRR's BFD re-registration flap (see topology::Frr).
    until(&world, "6 BGP sessions up for 3 s", WAIT, |w| {
        (routing::established_for(&w.frr, 3000)? == 6).then_some(())
    })
    .await;

    // ECMP over IPv4 and IPv6; each node answers the client; the group's communities.
    let started = Instant::now();
    create_service(&api, &service("web", ECMP.name, true, false))
        .await
        .expect("create web");
    let ips = ingress(&api, "web", 2, WAIT)
        .await
        .expect("web's addresses");
    let web4 = *ips.iter().find(|a| a.is_ipv4()).expect("an IPv4 address");
    let web6 = *ips.iter().find(|a| a.is_ipv6()).expect("an IPv6 address");
    let (p4, p6) = (prefix(web4, 28), prefix(web6, 120));
    hops_become(&world, &p4, &[0, 1, 2]).await;
    eprintln!("web {web4}: ECMP route {p4} after {:?}", started.elapsed());
    hops_become(&world, &p6, &[0, 1, 2]).await;
    for addr in [web4, web6] {
        let (seen, failed) = spread(&world, addr, &all, 90).expect("client requests");
        assert!(failed.is_empty(), "{addr}: {failed:?}");
        assert_eq!(
            seen.keys().map(String::as_str).collect::<Vec<_>>(),
            all,
            "{addr}: every node answers through the ToR: {seen:?}"
        );
    }
    for pfx in [&p4, &p6] {
        let paths = tor_paths(&world.frr, pfx);
        assert_eq!(paths.len(), 3, "{pfx}: {paths:?}");
        for p in &paths {
            assert!(p.used, "{pfx}: every path in the multipath set: {paths:?}");
            assert!(
                p.communities.split_whitespace().any(|c| c == "64512:100"),
                "{pfx}: {p:?}"
            );
            assert!(p.large_communities.contains("64512:1:2"), "{pfx}: {p:?}");
            assert!(!p.communities.contains("graceful-shutdown"), "{pfx}: {p:?}");
        }
    }
    let v4: Vec<String> = tor_prefixes(&world.frr, false);
    assert_eq!(
        v4,
        vec![p4.clone()],
        "only the aggregate, no host routes, no LAN"
    );
    snapshot(&world, "healthy", 0, &p4);

    // externalTrafficPolicy Local: no endpoint, no route; then only the endpoints' nodes.
    create_service(&api, &service("loc", ETP.name, false, true))
        .await
        .expect("create loc");
    let loc = ingress(&api, "loc", 1, WAIT).await.expect("loc's address")[0];
    let ploc = prefix(loc, 28);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        nexthops(&world.frr, &ploc).is_empty(),
        "{ploc}: no endpoint, yet routed"
    );
    snapshot(
        &world,
        "no eligible node (ETP Local without endpoints)",
        0,
        &ploc,
    );
    let client = world.cp.client().await.expect("client");
    let moves: [(&[usize], &str); 3] = [
        (&[0], "one endpoint on node-a"),
        (&[1, 2], "the endpoints moved to node-b and node-c"),
        (&[2], "one endpoint left, on node-c"),
    ];
    for (k, (nodes, what)) in moves.into_iter().enumerate() {
        let backends: Vec<Backend> = nodes
            .iter()
            .map(|&i| Backend::ready(&world.names[i], &format!("192.0.2.{}", 200 + k * 4 + i)))
            .collect();
        write_endpoints(&client, routing::NAMESPACE, "loc", 80, &backends)
            .await
            .expect("endpoints");
        hops_become(&world, &ploc, nodes).await;
        let want: Vec<&str> = nodes.iter().map(|&i| all[i]).collect();
        let (seen, failed) = spread(&world, loc, &want, 60).expect("client requests");
        assert!(failed.is_empty(), "{what}: {failed:?}");
        assert_eq!(
            seen.keys().map(String::as_str).collect::<Vec<_>>(),
            want,
            "{what}: {seen:?}"
        );
    }
    delete_service(&api, "loc").await.expect("delete loc");
    hops_become(&world, &ploc, &[]).await;

    // A node's LAN link cut: BFD takes it out of the ECMP set; back when the link is.
    let cut = Instant::now();
    world.topo.cut_lan(2).expect("cut node-c's link");
    hops_become(&world, &p4, &[0, 1]).await;
    eprintln!("link cut: next hop dropped after {:?}", cut.elapsed());
    hops_become(&world, &p6, &[0, 1]).await;
    snapshot(&world, "node-c's link cut", 2, &p4);
    world.topo.restore_lan(2).expect("restore node-c's link");
    hops_become(&world, &p4, &[0, 1, 2]).await;
    hops_become(&world, &p6, &[0, 1, 2]).await;

    // Partitioned with carrier kept: only BFD notices; the same next hop goes.
    let split = Instant::now();
    world.topo.partition(&[0, 1], &[2]).expect("partition");
    hops_become(&world, &p4, &[0, 1]).await;
    eprintln!("partition: next hop dropped after {:?}", split.elapsed());
    snapshot(&world, "node-c partitioned (BFD down)", 2, &p4);
    world.topo.heal().expect("heal");
    hops_become(&world, &p4, &[0, 1, 2]).await;
    hops_become(&world, &p6, &[0, 1, 2]).await;

    // BIRD killed: the ToR drops the next hop; the sidecar restarts BIRD and it returns.
    let old = bird_pid(&world, 1).expect("node-b's BIRD");
    let killed = Instant::now();
    world
        .topo
        .run(
            world.topo.node(1).ns_name(),
            &["kill", "-KILL", &old.to_string()],
        )
        .expect("kill BIRD");
    hops_become(&world, &p4, &[0, 2]).await;
    eprintln!("BIRD killed: next hop dropped after {:?}", killed.elapsed());
    hops_become(&world, &p4, &[0, 1, 2]).await;
    hops_become(&world, &p6, &[0, 1, 2]).await;
    let new = bird_pid(&world, 1).expect("node-b's BIRD again");
    assert_ne!(old, new, "a new BIRD");

    // Graceful stop of node-c (SIGTERM to its agent and sidecar, as a pod deletion sends it)
    // while the client sends requests over IPv4 and IPv6: none fails.
    until(&world, "sessions stable again", WAIT, |w| {
        let v = w.frr.vtysh_json("show bgp neighbors json").ok()?;
        let stable = v
            .as_object()?
            .values()
            .all(|n| n.get("bgpTimerUpMsec").and_then(|m| m.as_u64()) >= Some(3000));
        stable.then_some(())
    })
    .await;
    // Every request is a new connection. The ToR's ECMP set changes once (node-c leaves when
    // its path gets local preference 0); the kernel's hash-threshold ECMP may move a flow open
    // at that instant to another node, which would reset it. Requests take about a millisecond
    // and are paced, so that is rare; the drain itself must lose nothing.
    let pace = Duration::from_millis(20);
    let limit = Duration::from_secs(40);
    let loop4 = RequestLoop::start(&world, web4, pace, 1500, limit).expect("loop");
    let loop6 = RequestLoop::start(&world, web6, pace, 1500, limit).expect("loop");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = Instant::now();
    for p in [&world.agents[2], &world.sidecars[2]].into_iter().flatten() {
        p.signal("TERM").expect("SIGTERM");
    }
    until(&world, "graceful-shutdown on node-c's path", WAIT, |w| {
        tor_paths(&w.frr, &p4)
            .iter()
            .any(|p| p.communities.contains("graceful-shutdown") && p.local_pref == 0)
            .then_some(())
    })
    .await;
    snapshot(&world, "node-c draining (graceful-shutdown)", 2, &p4);
    hops_become(&world, &p4, &[0, 1]).await;
    let left = stopped.elapsed();
    for slot in [&mut world.agents[2], &mut world.sidecars[2]] {
        let p = slot.as_mut().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = p.exit_status() {
                break s;
            }
            assert!(
                start.elapsed() < WAIT,
                "{} did not exit after SIGTERM\n{}",
                p.label(),
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success(), "{}: {status}\n{}", p.label(), p.log());
    }
    let exited = stopped.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (addr, result) in [(web4, loop4.finish()), (web6, loop6.finish())] {
        let result = result.expect("request loop");
        eprintln!(
            "graceful stop, {addr}: {} requests, answered {:?}, out of the ECMP set after {left:?}, exited after {exited:?}",
            result.sent, result.answered
        );
        // When node-c leaves the ECMP set, the ToR re-hashes flows (plain hash-threshold
        // ECMP): a connection open at that instant may land on another node, which resets it.
        // That is the router's hashing (docs/routing.md); any other failure is ferrolb's.
        let resets = result
            .failed
            .iter()
            .filter(|(_, e)| e.contains("Connection reset by peer"))
            .count();
        assert!(
            resets == result.failed.len() && resets <= 3,
            "{addr}: failed requests during the graceful stop: {:?}",
            result.failed
        );
        assert!(result.sent >= 50, "{addr}: only {} requests", result.sent);
        assert_eq!(
            result.answered.len(),
            3,
            "{addr}: every node answered, node-c until it left: {:?}",
            result.answered
        );
    }
    hops_become(&world, &p6, &[0, 1]).await;

    // Two Services in one /28: one route, kept until the last goes; deletion withdraws.
    for name in ["agg1", "agg2"] {
        create_service(&api, &service(name, AGG.name, false, false))
            .await
            .expect("create");
    }
    let a1 = ingress(&api, "agg1", 1, WAIT).await.expect("agg1")[0];
    let a2 = ingress(&api, "agg2", 1, WAIT).await.expect("agg2")[0];
    let pagg = prefix(a1, 28);
    assert_eq!(pagg, prefix(a2, 28), "{a1} and {a2} share the aggregate");
    assert_ne!(a1, a2);
    hops_become(&world, &pagg, &[0, 1]).await;
    let in_agg: Vec<String> = tor_prefixes(&world.frr, false)
        .into_iter()
        .filter(|p| p.starts_with("203.0.113.3") || p.starts_with("203.0.113.4"))
        .collect();
    assert_eq!(in_agg, vec![pagg.clone()], "one route for two Services");
    delete_service(&api, "agg1").await.expect("delete agg1");
    until(&world, "agg1's address to leave kube-lb0", WAIT, |w| {
        (0..2)
            .all(|i| {
                !w.in_ns(
                    w.topo.node(i).ns_name(),
                    &["ip", "-o", "addr", "show", "dev", "kube-lb0"],
                )
                .contains(&format!("{a1}/"))
            })
            .then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            nexthops(&world.frr, &pagg),
            hops_of(&world, &[0, 1], false),
            "the aggregate stays while agg2 is in it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delete_service(&api, "agg2").await.expect("delete agg2");
    delete_service(&api, "web").await.expect("delete web");
    until(&world, "every route withdrawn", WAIT, |w| {
        let left: Vec<String> = tor_prefixes(&w.frr, false)
            .into_iter()
            .chain(tor_prefixes(&w.frr, true))
            .collect();
        left.is_empty().then_some(())
    })
    .await;
}
