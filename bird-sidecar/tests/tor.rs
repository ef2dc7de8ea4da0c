//! The sidecar binary on a node namespace peering with FRR on the ToR: the ToR learns the
//! virtual aggregate with its group's community and nothing else; on SIGTERM the route first
//! carries graceful-shutdown (65535:0) and is withdrawn after half the drain.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{in_namespace, virtual_group_yaml, write};
use ferrolb_e2e::env::require_root;
use ferrolb_e2e::topology::{
    BgpPeer, Frr, NODE_ASN, Process, TOR_ASN, TOR_LAN_V4, TOR_LAN_V6, Topology, TorConfig, wait_for,
};

const ROUTER_WAIT: Duration = Duration::from_secs(40);
const DRAIN: Duration = Duration::from_secs(4);
const AGGREGATE: &str = "203.0.113.0/28";
const AGGREGATE_V6: &str = "2001:db8:3::/120";
/// On kube-lb0 but in no virtual group: must never leave the node.
const OUTSIDE: &str = "203.0.113.192/28";

/// eBGP to the ToR over IPv4 and IPv6, with BFD.
fn bgp_values() -> String {
    format!(
        "localASN: {NODE_ASN}\npeers:\n  - address: {TOR_LAN_V4}\n    asn: {TOR_ASN}\n    bfd: true\n    connectRetryTime: 1s\n    holdTime: 9s\n    keepaliveTime: 3s\n  - address: {TOR_LAN_V6}\n    asn: {TOR_ASN}\n    bfd: true\n    connectRetryTime: 1s\n"
    )
}

/// The OSPF variant on the LAN interface, timers as the ToR's.
const OSPF_VALUES: &str =
    "ospf:\n  enabled: true\n  interfaces: [eth0]\n  hello: 1s\n  dead: 3s\n  bfd: true\n";

/// The ToR's best path for `prefix`: (communities as FRR prints them, local preference).
fn tor_path(tor: &Frr, prefix: &str) -> Option<(String, u64)> {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = tor
        .vtysh_json(&format!("show bgp {family} unicast {prefix} json"))
        .ok()?;
    let paths = v.get("paths")?.as_array()?;
    let best = paths.iter().find(|p| {
        p.get("bestpath")
            .and_then(|b| b.get("overall"))
            .and_then(|o| o.as_bool())
            == Some(true)
    })?;
    let communities = best
        .get("community")
        .and_then(|c| c.get("string"))
        .and_then(|s| s.as_str())
        .unwrap_or_default()
        .to_string();
    let local_pref = best.get("locPrf").and_then(|l| l.as_u64()).unwrap_or(100);
    Some((communities, local_pref))
}

/// `GET path` on the sidecar's metrics port inside namespace `ns`: (status line, body).
fn http_get(ns: &str, path: &str) -> Option<(String, String)> {
    in_namespace(ns, || get(path))
}

fn get(path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", 9472)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// The `web` group: 203.0.113.0/25 in /28 aggregates, 2001:db8:3::/120, community 64520:100.
fn web_group() -> String {
    virtual_group_yaml("web", "203.0.113.0/25", "/28", "64520:100").replace(
        "    bgp:",
        "    v6pools:\n      - subnet: 2001:db8:3::/64\n        pool: 2001:db8:3::/120\n        aggregation: /120\n    bgp:",
    )
}

fn start_sidecar(topo: &Topology, values: &str) -> Process {
    start_sidecar_with(topo, values, &web_group())
}

fn start_sidecar_with(topo: &Topology, values: &str, group: &str) -> Process {
    let node = topo.node(0);
    let ns = node.ns_name();
    for argv in [
        vec!["ip", "link", "add", "kube-lb0", "type", "ifb"],
        vec!["ip", "link", "set", "kube-lb0", "up"],
        vec!["ip", "addr", "add", "203.0.113.5/28", "dev", "kube-lb0"],
        vec!["ip", "addr", "add", "203.0.113.200/28", "dev", "kube-lb0"],
        vec![
            "ip",
            "addr",
            "add",
            "2001:db8:3::5/120",
            "dev",
            "kube-lb0",
            "nodad",
        ],
    ] {
        topo.run(ns, &argv).unwrap_or_else(|e| panic!("{e}"));
    }
    let dir = topo.dir().join("sidecar");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    write(&dir.join("values.yaml"), values);
    write(&dir.join("groups.yaml"), group);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bird-sidecar"));
    cmd.arg("--node-name")
        .arg("n0")
        .arg("--node-address")
        .arg(node.lan_v4().to_string())
        .arg("--node-address")
        .arg(node.lan_v6().to_string())
        .arg("--values")
        .arg(dir.join("values.yaml"))
        .arg("--groups")
        .arg(dir.join("groups.yaml"))
        .arg("--config-path")
        .arg(dir.join("bird.conf"))
        .arg("--socket")
        .arg(dir.join("bird.ctl"))
        .arg("--drain")
        .arg(format!("{}s", DRAIN.as_secs()))
        .arg("--poll-interval")
        .arg("500ms")
        .arg("--metrics-addr")
        .arg("127.0.0.1:9472");
    topo.spawn_in(ns, &cmd)
        .unwrap_or_else(|e| panic!("starting bird-sidecar: {e}"))
}

#[test]
fn tor_learns_the_aggregate_with_its_community_and_the_drain_shuts_down_gracefully() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("bsc")
        .nodes(1)
        .tor(true)
        .build()
        .expect("build");
    let tor = topo
        .run_frr(&TorConfig::for_nodes(&topo))
        .unwrap_or_else(|e| panic!("FRR: {e}"));
    let mut sidecar = start_sidecar(&topo, &bgp_values());
    let node_v4 = IpAddr::from(topo.node(0).lan_v4());
    let explain = |sidecar: &Process, e: &dyn std::fmt::Display| {
        format!(
            "{e}\n--- sidecar log ---\n{}\n--- show bgp all ---\n{}",
            sidecar.log(),
            tor.vtysh(&["show bgp all"])
                .unwrap_or_else(|e| e.to_string())
        )
    };

    // Learnt with the group's community; stable (past FRR's BFD re-registration flap).
    let learnt = wait_for(
        "the aggregate on the ToR, BGP up for 3 s",
        ROUTER_WAIT,
        || {
            let up_ms = tor
                .vtysh_json(&format!("show bgp neighbors {node_v4} json"))?
                .get(node_v4.to_string())
                .and_then(|n| n.get("bgpTimerUpMsec"))
                .and_then(|m| m.as_u64())
                .unwrap_or(0);
            Ok(tor_path(&tor, AGGREGATE).filter(|_| up_ms >= 3000))
        },
    )
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    assert!(
        learnt.0.split_whitespace().any(|c| c == "64520:100"),
        "{learnt:?}"
    );
    assert!(!learnt.0.contains("graceful-shutdown"), "{learnt:?}");
    let v6 = wait_for("the IPv6 aggregate on the ToR", ROUTER_WAIT, || {
        Ok(tor_path(&tor, AGGREGATE_V6))
    })
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    assert!(v6.0.contains("64520:100"), "{v6:?}");
    assert_eq!(
        tor_path(&tor, OUTSIDE),
        None,
        "a prefix in no group was exported"
    );
    let all = tor.vtysh(&["show bgp ipv4 unicast"]).expect("vtysh");
    assert!(!all.contains(OUTSIDE), "{all}");

    // Metrics, from inside the node namespace.
    let ns = topo.node(0).ns_name();
    let (status, _) = http_get(ns, "/readyz").expect("readyz answers");
    assert!(status.contains("200"), "{status}");
    let metrics = wait_for("session metrics", ROUTER_WAIT, || {
        let (_, body) = http_get(ns, "/metrics").unwrap_or_default();
        Ok(body
            .contains(
                "ferrolb_router_bgp_session_up{peer=\"192.0.2.1\",protocol=\"peer_192_0_2_1\"} 1",
            )
            .then_some(body))
    })
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    for want in [
        "ferrolb_router_bgp_prefixes_exported{peer=\"192.0.2.1\",protocol=\"peer_192_0_2_1\"} 1",
        "ferrolb_router_config_applied_total 1",
        "ferrolb_router_config_rejected_total 0",
    ] {
        assert!(metrics.contains(want), "{want} not in\n{metrics}");
    }

    // Drain: graceful-shutdown first, withdrawal after half the drain.
    let stopped = Instant::now();
    sidecar.signal("TERM").expect("SIGTERM");
    let shut = wait_for("the graceful-shutdown community on the ToR", DRAIN, || {
        Ok(tor_path(&tor, AGGREGATE).filter(|(c, _)| c.contains("graceful-shutdown")))
    })
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    let marked = stopped.elapsed();
    assert!(
        shut.0.contains("64520:100"),
        "the group's community stays: {shut:?}"
    );
    assert_eq!(
        shut.1, 0,
        "the ToR's RFC 8326 policy sets local-pref 0: {shut:?}"
    );
    wait_for(
        "the aggregate to be withdrawn",
        DRAIN + Duration::from_secs(10),
        || Ok(tor_path(&tor, AGGREGATE).is_none().then_some(())),
    )
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    let withdrawn = stopped.elapsed();
    assert!(marked < DRAIN / 2, "marked after {marked:?}");
    assert!(
        withdrawn >= DRAIN / 2,
        "withdrawn after {withdrawn:?}, before half the drain"
    );
    assert!(
        withdrawn < DRAIN / 2 + Duration::from_secs(5),
        "withdrawn only after {withdrawn:?}"
    );
    let exited = wait_for("the sidecar to exit", Duration::from_secs(15), || {
        Ok(sidecar.exit_status())
    })
    .unwrap_or_else(|e| panic!("{}", explain(&sidecar, &e)));
    assert!(exited.success(), "{exited}\n{}", sidecar.log());
    let log = sidecar.log();
    let order = [
        "graceful-shutdown community",
        "disabled; routes withdrawn",
        "BIRD stopped",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|w| {
            log.find(w)
                .unwrap_or_else(|| panic!("{w:?} not in the log:\n{log}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "drain out of order:\n{log}"
    );
    eprintln!("marked after {marked:?}, withdrawn after {withdrawn:?} (drain {DRAIN:?})");
}

#[test]
fn ospf_variant_announces_the_aggregate_to_the_tor() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("bso")
        .nodes(1)
        .tor(true)
        .build()
        .expect("build");
    let mut config = TorConfig::new(TOR_ASN);
    config.ospf = true;
    let tor = topo.run_frr(&config).unwrap_or_else(|e| panic!("FRR: {e}"));
    let mut sidecar = start_sidecar(&topo, OSPF_VALUES);
    let node_v4 = IpAddr::from(topo.node(0).lan_v4());
    let hops = wait_for("the aggregate on the ToR over OSPF", ROUTER_WAIT, || {
        let hops = tor.route_nexthops(AGGREGATE)?;
        Ok((!hops.is_empty()).then_some(hops))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- sidecar log ---\n{}\n--- show ip ospf neighbor / route ---\n{}",
            sidecar.log(),
            tor.vtysh(&["show ip ospf neighbor", "show ip ospf route"])
                .unwrap_or_else(|e| e.to_string())
        )
    });
    assert_eq!(hops, vec![node_v4]);
    let route = tor.vtysh(&["show ip route 203.0.113.0/28"]).expect("vtysh");
    assert!(route.contains("ospf"), "{route}");
    sidecar.signal("TERM").expect("SIGTERM");
    wait_for("the OSPF route to go", ROUTER_WAIT, || {
        Ok(tor.route_nexthops(AGGREGATE)?.is_empty().then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    let exited = wait_for("the sidecar to exit", ROUTER_WAIT, || {
        Ok(sidecar.exit_status())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    assert!(exited.success(), "{exited}\n{}", sidecar.log());
}

/// iBGP (the node in the ToR's AS): local preference is carried only there, so the group's
/// `localPreference` shows on the ToR, with its communities and large communities.
#[test]
fn ibgp_carries_the_groups_local_preference_and_large_communities() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("bsi")
        .nodes(1)
        .tor(true)
        .build()
        .expect("build");
    let mut config = TorConfig::new(TOR_ASN);
    config.bfd = None;
    config.peers = vec![BgpPeer {
        address: topo.node(0).lan_v4().into(),
        asn: TOR_ASN,
    }];
    let tor = topo.run_frr(&config).unwrap_or_else(|e| panic!("FRR: {e}"));
    let values = format!(
        "localASN: {TOR_ASN}\npeers:\n  - address: {TOR_LAN_V4}\n    asn: {TOR_ASN}\n    connectRetryTime: 1s\n"
    );
    let group = web_group().replace(
        "    bgp:\n",
        "    bgp:\n      largeCommunities: ['64512:7:8']\n      localPreference: 200\n",
    );
    let sidecar = start_sidecar_with(&topo, &values, &group);
    let path = wait_for("the aggregate on the ToR over iBGP", ROUTER_WAIT, || {
        let family = tor.vtysh_json(&format!("show bgp ipv4 unicast {AGGREGATE} json"))?;
        Ok(family
            .get("paths")
            .and_then(|p| p.as_array())
            .and_then(|p| p.first())
            .cloned())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- sidecar log ---\n{}\n--- show bgp all ---\n{}",
            sidecar.log(),
            tor.vtysh(&["show bgp all"])
                .unwrap_or_else(|e| e.to_string())
        )
    });
    let text = |key: &str| {
        path.get(key)
            .and_then(|c| c.get("string"))
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        path.get("locPrf").and_then(|l| l.as_u64()),
        Some(200),
        "{path}"
    );
    assert!(text("community").contains("64520:100"), "{path}");
    assert!(text("largeCommunity").contains("64512:7:8"), "{path}");
    // The path is in BGP's table before zebra has installed it in the ToR's RIB: wait for that.
    let via = vec![IpAddr::from(topo.node(0).lan_v4())];
    wait_for("the aggregate installed via the node", ROUTER_WAIT, || {
        Ok((tor.route_nexthops(AGGREGATE)? == via).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}",
            tor.route_nexthops(AGGREGATE),
            tor.vtysh(&["show ip route"])
                .unwrap_or_else(|e| e.to_string())
        )
    });
}
