//! The wire before the first add, in the real `ferrolb-agent` binary: a pool address that a
//! live host (no agent) already has is never taken while that host answers, and is taken once
//! it lets go; a node with a second port on the same LAN, which answers ARP probes for the
//! node's own addresses, reports no conflict with itself. Who holds an address is read from
//! the kernel (every node's LAN interface, every 50 ms).

mod world;

use std::time::{Duration, Instant};

use world::sampler::{Sampler, elected, ip};
use world::{World, settings};

const V4: &str = "192.0.2.131";
const V6: &str = "2001:db8:1::131";
/// Loose functional bounds for `make test`.
const BOUND: Duration = Duration::from_secs(10);
/// The LBNodeAgent's `conflictProbe` (the default).
const PROBE: Duration = Duration::from_secs(1);
/// The LAN bridge in the topology's LAN namespace (e2e's topology).
const LAN_BRIDGE: &str = "br0";

/// `ip addr add|del` of `V4/24` and `V6/64` on node `i`'s LAN interface.
fn foreign_addresses(w: &World, i: usize, verb: &str) {
    for (addr, extra) in [
        (format!("{V4}/24"), None),
        (format!("{V6}/64"), Some("nodad")),
    ] {
        let mut argv = vec!["ip", "addr", verb, addr.as_str(), "dev", "eth0"];
        argv.extend(extra);
        w.topo
            .run(w.node_ns(i), &argv)
            .unwrap_or_else(|e| panic!("ip addr {verb} {addr} on node {i}: {e}"));
    }
}

/// The ToR's neighbour entry for `addr` names `mac`.
fn tor_knows(w: &World, addr: &str, mac: &str) -> bool {
    w.neighbour(addr).contains(&format!("lladdr {mac}"))
}

/// Issue 16 item 12: the agent added a new local address before any probe, so a pool that
/// overlaps a live host took that host's address (and moved its clients with gratuitous ARP).
#[tokio::test]
async fn an_address_a_live_host_has_is_taken_only_once_that_host_lets_go() {
    // Node 2 runs no agent: it is a host on the LAN that already has both addresses.
    let Some(mut w) = World::with_nodes("pf", "probe-first", settings("3s", "1s"), 3).await else {
        return;
    };
    let agents = [0, 1];
    let foreign = 2;
    let foreign_mac = w.topo.node(foreign).mac().to_string();
    foreign_addresses(&w, foreign, "add");
    for addr in [V4, V6] {
        w.eventually(
            &format!("the ToR reaches {addr} on the foreign host"),
            || w.topo.ping(w.tor(), ip(addr)) && tor_knows(&w, addr, &foreign_mac),
        )
        .await;
    }
    for &i in &agents {
        w.start_agent(i);
    }
    let sampler = Sampler::start(&w);
    let (h4, h6) = (elected(&w, ip(V4), &agents), elected(&w, ip(V6), &agents));
    let asked = Instant::now();
    w.service("web", &w.local_group(), &[V4, V6], false).await;

    for (family, holder) in [("ipv4", h4), ("ipv6", h6)] {
        let metric = format!(
            "ferrolb_agent_address_conflicts_total{{family=\"{family}\",with=\"foreign\"}}"
        );
        w.eventually(&format!("{metric} on node {holder}"), || {
            w.metrics(holder).contains(&metric)
        })
        .await;
    }
    // kube's Event recorder folds one node's AddressConflict Events into one series, so a node
    // elected for both addresses may show one note for the two.
    for holder in [h4, h6] {
        let mine: Vec<&str> = [(V4, h4), (V6, h6)]
            .into_iter()
            .filter(|&(_, h)| h == holder)
            .map(|(a, _)| a)
            .collect();
        w.eventually_async(
            &format!("an AddressConflict Event on node {holder}: {mine:?} not taken"),
            || async {
                let mut notes = Vec::new();
                for addr in &mine {
                    notes.extend(w.conflict_events(holder, addr).await);
                }
                notes
                    .iter()
                    .any(|n| n.contains("no ferrolb agent") && n.contains("does not take it"))
            },
        )
        .await;
    }
    // Three more probe intervals: no agent ever has either address, and the ToR still sends
    // their traffic to the host that has them.
    tokio::time::sleep(3 * PROBE).await;
    for s in sampler.since(asked) {
        for addr in [V4, V6] {
            let on_agents: Vec<usize> = s
                .holders(ip(addr))
                .into_iter()
                .filter(|i| agents.contains(i))
                .collect();
            assert!(
                on_agents.is_empty(),
                "{addr} taken from the foreign host by {on_agents:?} after {:?}\n{}",
                s.at.duration_since(asked),
                w.logs()
            );
        }
    }
    for addr in [V4, V6] {
        assert!(
            tor_knows(&w, addr, &foreign_mac),
            "the ToR's entry for {addr} moved away from the foreign host: {}\n{}",
            w.neighbour(addr),
            w.logs()
        );
        assert!(
            w.topo.ping(w.tor(), ip(addr)),
            "the foreign host serves {addr}"
        );
    }
    println!(
        "a live host's {V4}/{V6}: not taken for {:?}",
        asked.elapsed()
    );

    // The host lets go: the elected agents take the addresses and move the ToR to them.
    let released = Instant::now();
    foreign_addresses(&w, foreign, "del");
    for (addr, holder) in [(V4, h4), (V6, h6)] {
        let took = sampler
            .first(
                &w,
                &format!("node {holder} takes {addr}"),
                released,
                BOUND,
                |s| s.holders(ip(addr)) == [holder],
            )
            .await;
        let mac = w.topo.node(holder).mac().to_string();
        w.eventually_within(
            &format!("the ToR's entry for {addr} names node {holder}"),
            BOUND,
            || tor_knows(&w, addr, &mac),
        )
        .await;
        println!(
            "released by the host: {addr} on node {holder} after {:?}",
            took.at.duration_since(released)
        );
    }
}

/// Issue 16 item 13: a node with a second interface on the same LAN answers the agent's ARP
/// probe from that interface (Linux answers for any local address on any interface), and the
/// agent reported a conflict with "a host that is no agent" every probe interval.
#[tokio::test]
async fn a_second_port_of_the_node_on_the_same_lan_is_no_conflict() {
    let Some(mut w) = World::with_nodes("pm", "probe-own-mac", settings("3s", "1s"), 2).await
    else {
        return;
    };
    let agents = [0, 1];
    let h4 = elected(&w, ip(V4), &agents);
    // The holder's second port: a veth from the LAN bridge, up, without an address of its own.
    let port = format!("n{h4}x");
    let second_mac = format!("02:fb:{:02x}:0e:00:{h4:02x}", w.topo.slot());
    let lan = w.topo.lan_ns().to_string();
    let node_ns = w.node_ns(h4).to_string();
    for (ns, argv) in [
        (
            lan.as_str(),
            vec![
                "ip",
                "link",
                "add",
                "name",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth1",
                "address",
                &second_mac,
                "netns",
                &node_ns,
            ],
        ),
        (
            lan.as_str(),
            vec!["ip", "link", "set", "dev", &port, "master", LAN_BRIDGE],
        ),
        (lan.as_str(), vec!["ip", "link", "set", "dev", &port, "up"]),
        (
            node_ns.as_str(),
            vec!["ip", "link", "set", "dev", "eth1", "up"],
        ),
    ] {
        w.topo
            .run(ns, &argv)
            .unwrap_or_else(|e| panic!("{argv:?} in {ns}: {e}"));
    }
    for i in agents {
        w.start_agent(i);
    }
    let sampler = Sampler::start(&w);
    w.service("web", &w.local_group(), &[V4, V6], false).await;
    let taken = sampler
        .first(
            &w,
            &format!("{V4} on node {h4}"),
            Instant::now(),
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4],
        )
        .await;
    // Four probe intervals: every probe of the held address is answered by the second port.
    tokio::time::sleep(4 * PROBE).await;
    let metrics = w.metrics(h4);
    assert!(
        !metrics.contains("ferrolb_agent_address_conflicts_total{"),
        "a conflict counted against the node's own second port:\n{}\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("conflicts_total{"))
            .collect::<Vec<_>>()
            .join("\n"),
        w.logs()
    );
    for addr in [V4, V6] {
        let events = w.conflict_events(h4, addr).await;
        assert!(
            events.is_empty(),
            "AddressConflict Events about the node itself: {events:?}"
        );
    }
    assert!(
        !w.agent(h4)
            .log()
            .contains("conflict with a host that is no agent"),
        "{}",
        w.logs()
    );
    for s in sampler.since(taken.at) {
        assert_eq!(s.holders(ip(V4)), [h4], "{V4} kept: {s:?}\n{}", w.logs());
    }
}
