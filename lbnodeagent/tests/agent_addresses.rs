//! The real `ferrolb-agent` binary in node namespaces against the real API server: where local
//! and virtual addresses go (default interface, kube-lb0 aggregates, ETP Local, route moves,
//! takeovers) and how the LAN and the per-node Lease see them.

mod world;

use std::time::Duration;

use ferrolb_api::contracts::{EXCLUDE_LABEL, lease};
use ferrolb_e2e::kubelet::{self, Backend};
use world::{World, has_cidr, settings};

#[tokio::test]
async fn local_addresses_go_on_the_default_interface_and_the_lan_reaches_them() {
    let Some(mut w) = World::new("al", "local", settings("5s", "5s")).await else {
        return;
    };
    w.sh(
        w.node_ns(0),
        &["ip", "addr", "add", "192.0.2.77/24", "dev", "eth0"],
    );
    w.start_agent(0);
    let group = w.local_group();
    w.service("web", &group, &["192.0.2.100", "2001:db8:1::100"], false)
        .await;
    w.eventually("both local addresses are on eth0", || {
        let eth0 = w.addrs(0, "eth0");
        has_cidr(&eth0, "192.0.2.100/24") && has_cidr(&eth0, "2001:db8:1::100/64")
    })
    .await;

    // The kernel answers ARP and ND for them: the ToR resolves them to node 0's MAC, and the
    // client behind the ToR gets its echoes answered.
    let mac = w.topo.node(0).mac().to_string();
    for ip in ["192.0.2.100", "2001:db8:1::100"] {
        w.eventually(&format!("the ToR reaches {ip}"), || {
            w.topo.ping(w.tor(), ip.parse().expect("ip"))
        })
        .await;
        let entry = w.neighbour(ip);
        assert!(entry.to_lowercase().contains(&mac), "{ip}: {entry}");
        let client = w.topo.client_ns().expect("a client").to_string();
        assert!(
            w.topo.ping(&client, ip.parse().expect("ip")),
            "client to {ip}"
        );
    }

    // The per-node Lease says what the node has and holds.
    let node = w.topo.node(0).clone();
    let want = [
        (lease::GOSSIP_ADDR, format!("{}:7947", node.lan_v4())),
        (lease::INTERFACE_V4, "eth0".into()),
        (lease::INTERFACE_V6, "eth0".into()),
        (lease::SUBNETS, "192.0.2.0/24 2001:db8:1::/64".into()),
        (lease::MAC, format!("eth0={mac}")),
        (lease::ELIGIBLE, "true".into()),
        (lease::HOLDING, "192.0.2.100 2001:db8:1::100".into()),
        (lease::VIRTUAL_COUNT, "0".into()),
    ];
    w.eventually_async("the Lease carries the node's facts", || async {
        let Some(l) = w.lease(0).await else {
            return false;
        };
        let annotations = l.metadata.annotations.unwrap_or_default();
        want.iter().all(|(k, v)| annotations.get(*k) == Some(v))
    })
    .await;
    let l = w.lease(0).await.expect("the Lease");
    let spec = l.spec.expect("a Lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(w.nodes[0].as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert!(spec.renew_time.is_some());

    let m = w.metrics(0);
    for line in [
        "ferrolb_agent_addresses_held{kind=\"local\",family=\"ipv4\"} 1",
        "ferrolb_agent_addresses_held{kind=\"local\",family=\"ipv6\"} 1",
        "ferrolb_agent_address_adds_total{kind=\"local\",family=\"ipv4\"} 1",
        "ferrolb_agent_reconcile_duration_seconds_count",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    let ready = w.sh(
        w.node_ns(0),
        &["curl", "-sf", "http://127.0.0.1:9471/readyz"],
    );
    assert_eq!(ready.trim(), "ok");

    // Service gone: its addresses go, the hand-made one stays.
    w.delete_service("web").await;
    w.eventually("the addresses are gone", || {
        let eth0 = w.addrs(0, "eth0");
        !eth0.contains("192.0.2.100/") && !eth0.contains("2001:db8:1::100/")
    })
    .await;
    assert!(w.has(0, "eth0", "192.0.2.77/24"), "{}", w.addrs(0, "eth0"));
    w.eventually_async("the Lease holds nothing", || async {
        w.lease(0)
            .await
            .and_then(|l| l.metadata.annotations)
            .is_some_and(|a| a.get(lease::HOLDING).map(String::as_str) == Some(""))
    })
    .await;
}

#[tokio::test]
async fn virtual_addresses_share_an_aggregate_on_kube_lb0() {
    let Some(mut w) = World::new("av", "virtual", settings("5s", "5s")).await else {
        return;
    };
    w.start_agent(0);
    w.start_agent(1);
    let group = w.virtual_group();
    w.service(
        "api",
        &group,
        &["203.0.113.1", "203.0.113.2", "203.0.113.3"],
        false,
    )
    .await;
    let all = ["203.0.113.1/28", "203.0.113.2/28", "203.0.113.3/28"];
    w.eventually("every node has the three in one /28", || {
        (0..2).all(|i| all.iter().all(|a| w.has(i, "kube-lb0", a)))
    })
    .await;
    let route = w.sh(w.node_ns(0), &["ip", "route", "show", "203.0.113.0/28"]);
    assert!(
        route.contains("dev kube-lb0") && route.contains("proto kernel"),
        "{route}"
    );
    w.sh(
        w.node_ns(0),
        &["ip", "addr", "add", "203.0.113.77/28", "dev", "kube-lb0"],
    );

    // One goes; the other two (and the aggregate's route) stay, also when the first was the
    // aggregate's primary.
    w.set_ips("api", &["203.0.113.2", "203.0.113.3"]).await;
    w.eventually("203.0.113.1 is gone from both", || {
        (0..2).all(|i| !w.addrs(i, "kube-lb0").contains("203.0.113.1/"))
    })
    .await;
    for i in 0..2 {
        for kept in &all[1..] {
            assert!(w.has(i, "kube-lb0", kept), "node {i} lost {kept}");
        }
    }
    assert!(
        w.sh(w.node_ns(1), &["ip", "route", "show", "203.0.113.0/28"])
            .contains("kube-lb0")
    );
    w.eventually_async("the Leases count two virtual addresses", || async {
        w.lease(1)
            .await
            .and_then(|l| l.metadata.annotations)
            .is_some_and(|a| a.get(lease::VIRTUAL_COUNT).map(String::as_str) == Some("2"))
    })
    .await;

    w.delete_service("api").await;
    w.eventually("the virtual addresses are gone", || {
        (0..2).all(|i| !w.addrs(i, "kube-lb0").contains("203.0.113.2/"))
    })
    .await;
    assert!(
        w.has(0, "kube-lb0", "203.0.113.77/28"),
        "the hand-made address went"
    );
}

#[tokio::test]
async fn external_traffic_policy_local_places_addresses_on_endpoint_nodes_only() {
    let Some(mut w) = World::new("ae", "etp-local", settings("5s", "5s")).await else {
        return;
    };
    w.start_agent(0);
    w.start_agent(1);
    let (local, virtual_) = (w.local_group(), w.virtual_group());
    w.service("lan", &local, &["192.0.2.101"], true).await;
    w.service("routed", &virtual_, &["203.0.113.17"], true)
        .await;
    // A Cluster-policy Service as a witness: once both nodes carry it, they have decided on
    // the others too, with no local endpoint anywhere.
    w.service("witness", &virtual_, &["203.0.113.33"], false)
        .await;
    w.eventually("both nodes carry the witness", || {
        (0..2).all(|i| w.has(i, "kube-lb0", "203.0.113.33/28"))
    })
    .await;
    for i in 0..2 {
        assert!(!w.addrs(i, "eth0").contains("192.0.2.101/"), "node {i}");
        assert!(
            !w.addrs(i, "kube-lb0").contains("203.0.113.17/"),
            "node {i}"
        );
    }

    for (with, without) in [(1, 0), (0, 1)] {
        for svc in ["lan", "routed"] {
            let backend = Backend::ready(&w.nodes[with], "198.19.200.1");
            kubelet::write_endpoints(&w.client, w.name(), svc, 80, &[backend])
                .await
                .expect("endpoints");
        }
        w.eventually(
            &format!("node {with} carries both, node {without} neither"),
            || {
                w.has(with, "eth0", "192.0.2.101/24")
                    && w.has(with, "kube-lb0", "203.0.113.17/28")
                    && !w.addrs(without, "eth0").contains("192.0.2.101/")
                    && !w.addrs(without, "kube-lb0").contains("203.0.113.17/")
            },
        )
        .await;
    }
}

#[tokio::test]
async fn local_addresses_follow_the_default_route_and_come_back_when_deleted() {
    // A long lifetime: the renewal tick (10 s) cannot be what moves them.
    let Some(mut w) = World::new("ar", "route-move", settings("60s", "5s")).await else {
        return;
    };
    w.start_agent(0);
    let group = w.local_group();
    w.service("web", &group, &["192.0.2.102"], false).await;
    w.eventually("the address is on eth0", || {
        w.has(0, "eth0", "192.0.2.102/24")
    })
    .await;

    let ns = w.node_ns(0).to_string();
    for cmd in [
        "link add lan1 type veth peer name lan1p",
        "link set lan1p up",
        "link set lan1 up",
        "addr add 192.0.2.210/24 dev lan1",
        "route replace default via 192.0.2.1 dev lan1",
    ] {
        let mut argv = vec!["ip"];
        argv.extend(cmd.split(' '));
        w.topo
            .run(&ns, &argv)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }
    let quick = Duration::from_secs(3);
    w.eventually_within("the address moved to lan1", quick, || {
        w.has(0, "lan1", "192.0.2.102/24") && !w.addrs(0, "eth0").contains("192.0.2.102/")
    })
    .await;

    w.sh(&ns, &["ip", "addr", "del", "192.0.2.102/24", "dev", "lan1"]);
    w.eventually_within("the deleted address is back", quick, || {
        w.has(0, "lan1", "192.0.2.102/24")
    })
    .await;
}

#[tokio::test]
async fn a_takeover_moves_the_lan_neighbour_caches_without_traffic() {
    let Some(mut w) = World::new("ag", "takeover", settings("5s", "5s")).await else {
        return;
    };
    w.label_node(1, EXCLUDE_LABEL, Some("")).await;
    w.start_agent(0);
    w.start_agent(1);
    let group = w.local_group();
    let ips = ["192.0.2.103", "2001:db8:1::103"];
    w.service("web", &group, &ips, false).await;
    w.eventually("node 0 holds both", || {
        w.has(0, "eth0", "192.0.2.103/24") && w.has(0, "eth0", "2001:db8:1::103/64")
    })
    .await;
    let (mac0, mac1) = (
        w.topo.node(0).mac().to_string(),
        w.topo.node(1).mac().to_string(),
    );
    for ip in ips {
        w.eventually(&format!("the ToR resolves {ip}"), || {
            w.topo.ping(w.tor(), ip.parse().expect("ip"))
        })
        .await;
        assert!(
            w.neighbour(ip).to_lowercase().contains(&mac0),
            "{}",
            w.neighbour(ip)
        );
    }

    // Node 0 steps back, node 1 takes over; the ToR sends nothing, yet learns the new MAC.
    w.label_node(0, EXCLUDE_LABEL, Some("")).await;
    w.label_node(1, EXCLUDE_LABEL, None).await;
    w.eventually("node 1 holds both, node 0 neither", || {
        w.has(1, "eth0", "192.0.2.103/24")
            && w.has(1, "eth0", "2001:db8:1::103/64")
            && !w.addrs(0, "eth0").contains("::103/")
            && !w.addrs(0, "eth0").contains("192.0.2.103/")
    })
    .await;
    w.eventually("the ToR's neighbour entries name node 1", || {
        ips.iter()
            .all(|ip| w.neighbour(ip).to_lowercase().contains(&mac1))
    })
    .await;
    // count 3, 200 ms apart, per address.
    w.eventually("node 1 counts three announcements per family", || {
        let m = w.metrics(1);
        ["ipv4", "ipv6"].iter().all(|family| {
            m.contains(&format!(
                "ferrolb_agent_gratuitous_packets_sent_total{{family=\"{family}\"}} 3"
            ))
        })
    })
    .await;
}
