//! The topology harness itself: LAN and management reachability, carrier loss, partitions,
//! cleanup, and BIRD on a node peering with FRR on the ToR over BGP with BFD.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_e2e::env::require_root;
use ferrolb_e2e::topology::{
    MGMT_HOST_V4, NAME_PREFIX, NODE_ASN, RUN_DIR, TOR_ASN, TOR_LAN_V4, TOR_LAN_V6, Topology,
    TorConfig, cleanup_leftovers, wait_for,
};

const ROUTER_WAIT: Duration = Duration::from_secs(30);

fn build(tag: &str, nodes: usize) -> Topology {
    Topology::builder(tag)
        .nodes(nodes)
        .management(true)
        .build()
        .unwrap_or_else(|e| panic!("building topology {tag}: {e}"))
}

fn reachable(topo: &Topology, from: usize, to: IpAddr) -> bool {
    topo.ping(topo.node(from).ns_name(), to)
}

/// A link's state inside a namespace: (flags like `NO-CARRIER,UP`, operstate).
fn link_state(topo: &Topology, ns: &str, ifname: &str) -> (String, String) {
    let out = topo
        .run(ns, &["ip", "-o", "link", "show", "dev", ifname])
        .expect("ip link show");
    let flags = out
        .split('<')
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or_default()
        .to_string();
    let state = out
        .split_whitespace()
        .skip_while(|w| *w != "state")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (flags, state)
}

#[test]
fn nodes_reach_each_other_over_the_lan_v4_and_v6() {
    if !require_root() {
        return;
    }
    let topo = build("rch", 3);
    for i in 0..3 {
        for j in (0..3).filter(|j| *j != i) {
            let (v4, v6) = (topo.node(j).lan_v4(), topo.node(j).lan_v6());
            assert!(
                reachable(&topo, i, v4.into()),
                "node {i} cannot ping node {j} at {v4}"
            );
            assert!(
                reachable(&topo, i, v6.into()),
                "node {i} cannot ping node {j} at {v6}"
            );
        }
    }
    let node = topo.node(0);
    let v4 = topo
        .run(node.ns_name(), &["ip", "-4", "route", "show", "default"])
        .expect("routes");
    let v6 = topo
        .run(node.ns_name(), &["ip", "-6", "route", "show", "default"])
        .expect("routes");
    let lan = format!("dev {}", node.lan_ifname());
    assert!(
        v4.contains(&format!("via {TOR_LAN_V4} {lan}")),
        "v4 default route: {v4}"
    );
    assert!(
        v6.contains(&format!("via {TOR_LAN_V6} {lan}")),
        "v6 default route: {v6}"
    );
    let mac = topo
        .run(
            node.ns_name(),
            &[
                "cat",
                &format!("/sys/class/net/{}/address", node.lan_ifname()),
            ],
        )
        .expect("mac");
    assert_eq!(mac.trim(), node.mac());
    let link_local = topo
        .run(
            node.ns_name(),
            &[
                "ip",
                "-6",
                "addr",
                "show",
                "dev",
                node.lan_ifname(),
                "scope",
                "link",
            ],
        )
        .expect("ip addr");
    assert!(
        link_local.contains(&format!("{}/64", node.lan_link_local())),
        "{link_local}"
    );
    // Management reaches the host's API address only through the management interface.
    let mgmt = topo
        .run(
            node.ns_name(),
            &["ip", "-4", "route", "get", &MGMT_HOST_V4.to_string()],
        )
        .expect("route get");
    assert!(
        mgmt.contains(&format!("dev {}", node.mgmt_ifname())),
        "{mgmt}"
    );
    assert!(
        reachable(&topo, 0, MGMT_HOST_V4.into()),
        "node 0 cannot reach {MGMT_HOST_V4}"
    );
}

#[test]
fn cut_lan_drops_carrier_and_restore_brings_it_back() {
    if !require_root() {
        return;
    }
    let topo = build("cut", 2);
    let (ns, ifname) = (topo.node(0).ns_name(), topo.node(0).lan_ifname());
    let peer = topo.node(1).lan_v4().into();
    assert!(reachable(&topo, 0, peer));

    topo.cut_lan(0).expect("cut");
    let (flags, state) = link_state(&topo, ns, ifname);
    assert!(
        flags.contains("NO-CARRIER") && flags.contains("UP"),
        "admin up without carrier: {flags}"
    );
    assert_ne!(state, "UP", "operstate with the LAN cut");
    assert!(!reachable(&topo, 0, peer), "ping works across a cut link");

    topo.restore_lan(0).expect("restore");
    wait_for("carrier back", Duration::from_secs(5), || {
        Ok((link_state(&topo, ns, ifname).1 == "UP").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", link_state(&topo, ns, ifname)));
    // A neighbour entry that failed while the link was cut resolves again within seconds.
    wait_for("a ping after restore", Duration::from_secs(10), || {
        Ok(reachable(&topo, 0, peer).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn partition_splits_the_lan_and_heal_joins_it() {
    if !require_root() {
        return;
    }
    let topo = build("part", 4);
    let v4 = |i: usize| IpAddr::from(topo.node(i).lan_v4());
    let v6 = |i: usize| IpAddr::from(topo.node(i).lan_v6());

    topo.partition(&[0, 1], &[2, 3]).expect("partition");
    assert!(reachable(&topo, 0, v4(1)), "same side (a) must reach");
    assert!(reachable(&topo, 2, v6(3)), "same side (b) must reach");
    assert!(
        !reachable(&topo, 0, v4(2)),
        "0 reaches 2 across the partition"
    );
    assert!(
        !reachable(&topo, 3, v6(1)),
        "3 reaches 1 across the partition"
    );
    let (flags, _) = link_state(&topo, topo.node(2).ns_name(), topo.node(2).lan_ifname());
    assert!(
        !flags.contains("NO-CARRIER"),
        "a partition keeps carrier: {flags}"
    );
    for i in 0..4 {
        assert!(
            reachable(&topo, i, MGMT_HOST_V4.into()),
            "node {i} lost management in the partition"
        );
    }

    topo.heal().expect("heal");
    // Neighbour entries that failed during the partition resolve again within a few seconds,
    // as on a real LAN.
    for (i, j) in [(0, 2), (3, 1), (1, 2)] {
        for to in [v4(j), v6(j)] {
            wait_for(
                &format!("{i} to reach {j} at {to} after heal"),
                Duration::from_secs(10),
                || Ok(reachable(&topo, i, to).then_some(())),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn drop_removes_everything() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("drop")
        .nodes(2)
        .tor(true)
        .client(true)
        .management(true)
        .build()
        .expect("build");
    let prefix = topo.prefix().to_string();
    let dir = topo.dir().to_path_buf();
    // Something running inside, which drop must kill.
    let sleeper = topo
        .spawn_in(
            topo.node(0).ns_name(),
            std::process::Command::new("sleep").arg("600"),
        )
        .expect("spawn");
    let pid = sleeper.id();
    std::mem::forget(sleeper);
    let namespaces = || -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    };
    let links = || -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    assert_eq!(
        namespaces().len(),
        5,
        "lan, 2 nodes, tor, client: {:?}",
        namespaces()
    );
    assert_eq!(
        links().len(),
        2,
        "one management veth per node: {:?}",
        links()
    );

    drop(topo);
    assert_eq!(namespaces(), Vec::<String>::new(), "namespaces left");
    assert_eq!(links(), Vec::<String>::new(), "host links left");
    assert!(!dir.exists(), "{} left", dir.display());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "process {pid} survived: {stat}"
    );
    let pid_file = format!("/run/ferrolb-e2e/{prefix}.pid");
    assert!(!std::path::Path::new(&pid_file).exists(), "{pid_file} left");
}

/// What the node exports per family: (BIRD protocol to the ToR, prefix).
const NODE_ROUTES: [(&str, &str); 2] =
    [("tor4", "203.0.113.10/32"), ("tor6", "2001:db8:3::10/128")];

fn node_bird_config(topo: &Topology, i: usize) -> String {
    let node = topo.node(i);
    format!(
        r#"router id {v4};
log stderr all;
protocol device {{}}
protocol bfd {{
  interface "{lan}" {{ min rx interval 100 ms; min tx interval 100 ms; idle tx interval 100 ms; multiplier 3; }};
}}
protocol static lb4 {{ ipv4; route {r4} blackhole; }}
protocol static lb6 {{ ipv6; route {r6} blackhole; }}
protocol bgp tor4 {{
  local {v4} as {NODE_ASN};
  neighbor {TOR_LAN_V4} as {TOR_ASN};
  bfd on;
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv4 {{ import none; export where source = RTS_STATIC; }};
}}
protocol bgp tor6 {{
  local {v6} as {NODE_ASN};
  neighbor {TOR_LAN_V6} as {TOR_ASN};
  bfd on;
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv6 {{ import none; export where source = RTS_STATIC; }};
}}
"#,
        v4 = node.lan_v4(),
        v6 = node.lan_v6(),
        lan = node.lan_ifname(),
        r4 = NODE_ROUTES[0].1,
        r6 = NODE_ROUTES[1].1,
    )
}

fn or_error(r: Result<String, ferrolb_e2e::topology::Error>) -> String {
    r.unwrap_or_else(|e| e.to_string())
}

#[test]
fn bird_on_a_node_and_frr_on_the_tor_establish_bgp_with_bfd() {
    if !require_root() {
        return;
    }
    let started = Instant::now();
    let topo = Topology::builder("bgp")
        .nodes(1)
        .tor(true)
        .client(true)
        .build()
        .expect("build");
    let node = topo.node(0);
    let tor = topo
        .run_frr(&TorConfig::for_nodes(&topo))
        .unwrap_or_else(|e| panic!("starting FRR: {e}"));
    let bird = topo
        .run_bird(0, &node_bird_config(&topo, 0))
        .unwrap_or_else(|e| panic!("starting BIRD: {e}"));

    for (protocol, _) in NODE_ROUTES {
        wait_for(
            &format!("BIRD's session {protocol} to be Established"),
            ROUTER_WAIT,
            || {
                Ok(bird
                    .protocol(protocol)?
                    .filter(|(_, info)| info.starts_with("Established")))
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- birdc show protocols all {protocol} ---\n{}\n--- bird log ---\n{}\n\
                 --- FRR show bgp summary ---\n{}\n{}",
                or_error(bird.birdc(&["show", "protocols", "all", protocol])),
                bird.log(),
                or_error(tor.vtysh(&["show bgp summary"])),
                tor.logs()
            )
        });
    }
    let protocols = bird.birdc(&["show", "protocols"]).expect("birdc");
    assert_eq!(protocols.matches("Established").count(), 2, "{protocols}");

    for peer in [IpAddr::from(node.lan_v4()), node.lan_v6().into()] {
        wait_for(
            &format!("FRR's BFD peer {peer} to be up"),
            ROUTER_WAIT,
            || Ok(tor.bfd_status(peer)?.filter(|s| s == "up")),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- show bfd peers ---\n{}\n--- birdc show bfd sessions ---\n{}",
                or_error(tor.vtysh(&["show bfd peers"])),
                or_error(bird.birdc(&["show", "bfd", "sessions"]))
            )
        });
    }
    let peers = tor.vtysh(&["show bfd peers"]).expect("vtysh");
    assert_eq!(peers.matches("Status: up").count(), 2, "{peers}");

    let next_hops = [IpAddr::from(node.lan_v4()), node.lan_link_local().into()];
    for ((_, prefix), next_hop) in NODE_ROUTES.into_iter().zip(next_hops) {
        let got = wait_for(&format!("{prefix} on the ToR"), ROUTER_WAIT, || {
            let nh = tor.route_nexthops(prefix)?;
            Ok((!nh.is_empty()).then_some(nh))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- show ip route / show ipv6 route ---\n{}\n--- show bgp all ---\n{}",
                or_error(tor.vtysh(&["show ip route", "show ipv6 route"])),
                or_error(tor.vtysh(&["show bgp all"]))
            )
        });
        assert_eq!(got, vec![next_hop], "next hops of {prefix}");
    }
    let routes = tor.vtysh(&["show ip route"]).expect("vtysh");
    assert!(
        routes.contains(&format!("B>* {}", NODE_ROUTES[0].1)),
        "{routes}"
    );
    let kernel = topo
        .run(
            topo.tor_ns().expect("tor"),
            &["ip", "route", "show", NODE_ROUTES[0].1],
        )
        .expect("ip route");
    assert!(
        kernel.contains(&format!("via {}", node.lan_v4())),
        "zebra installs it in the ToR's kernel: {kernel}"
    );
    // The client reaches the nodes only through the ToR, which forwards.
    let client = topo.client_ns().expect("client");
    for to in [IpAddr::from(node.lan_v4()), node.lan_v6().into()] {
        assert!(
            topo.ping(client, to),
            "client cannot reach {to} through the ToR"
        );
    }
    eprintln!(
        "BGP + BFD up and both routes on the ToR after {:?}",
        started.elapsed()
    );
}

#[test]
fn frr_on_the_tor_runs_ospf_when_asked_and_rejects_bad_config() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder("ospf")
        .nodes(1)
        .tor(true)
        .build()
        .expect("build");
    let mut config = TorConfig::for_nodes(&topo);
    config.ospf = true;
    let tor = topo
        .run_frr(&config)
        .unwrap_or_else(|e| panic!("starting FRR: {e}"));
    let ospf = tor.vtysh(&["show ip ospf"]).expect("vtysh");
    assert!(
        ospf.contains(&format!("OSPF Routing Process, Router ID: {TOR_LAN_V4}")),
        "{ospf}"
    );
    let interface = tor.vtysh(&["show ip ospf interface eth0"]).expect("vtysh");
    assert!(interface.contains("Area 0.0.0.0"), "{interface}");
    let bad = tor.configure("router bgp 64512\n neighbor 192.0.2.10 no-such-option\nexit\n");
    assert!(bad.is_err(), "vtysh accepted a bad line");
}

#[test]
fn cleanup_leftovers_removes_dead_runs_and_spares_live_ones() {
    if !require_root() {
        return;
    }
    let live = build("live", 1);
    let dead = build("dead", 1);
    let dead_prefix = dead.prefix().to_string();
    // Make `dead` look like the leftovers of a crashed run: an owner that does not exist.
    std::fs::write(format!("{RUN_DIR}/{dead_prefix}.pid"), "0 0\n").expect("pid file");

    cleanup_leftovers(NAME_PREFIX).expect("cleanup");
    let namespaces = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    )
    .into_owned();
    assert!(
        !namespaces.contains(&dead_prefix),
        "dead run's namespaces left: {namespaces}"
    );
    assert!(
        namespaces.contains(live.node(0).ns_name()),
        "live run's namespace removed: {namespaces}"
    );
    assert!(!dead.dir().exists(), "dead run's dir left");
    assert!(
        reachable(&live, 0, MGMT_HOST_V4.into()),
        "live run's management link removed"
    );
    // Its names may already belong to another run that took the freed slot.
    std::mem::forget(dead);
}
