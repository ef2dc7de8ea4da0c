//! Conflicts on the wire in the real `ferrolb-agent` binary: a foreign host claiming a held
//! address, gossip blocked while the LAN works, and a real LAN partition. Who holds an address
//! is read from the kernel (every node's LAN interface, every 50 ms).

mod world;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use world::sampler::{Sampler, elected, ip};
use world::{World, settings};

const V4: &str = "192.0.2.130";
const V6: &str = "2001:db8:1::130";
/// Loose functional bounds for `make test`.
const BOUND: Duration = Duration::from_secs(10);
/// The LBNodeAgent's `conflictProbe` (the default).
const PROBE: Duration = Duration::from_secs(1);

/// Agents on `agents` of `nodes` nodes, one Service with a v4 and a v6 address; returns once
/// each address is on its elected node only.
async fn world(tag: &str, test: &str, nodes: usize, agents: &[usize]) -> Option<(World, Sampler)> {
    let mut w = World::with_nodes(tag, test, settings("3s", "1s"), nodes).await?;
    for &i in agents {
        w.start_agent(i);
    }
    w.service("web", &w.local_group(), &[V4, V6], false).await;
    let sampler = Sampler::start(&w);
    let (h4, h6) = (elected(&w, ip(V4), agents), elected(&w, ip(V6), agents));
    sampler
        .first(
            &w,
            "each address is on its elected node only",
            Instant::now(),
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4] && s.holders(ip(V6)) == [h6],
        )
        .await;
    Some((w, sampler))
}

/// Waits until every agent in `agents` sees `n` live peers.
async fn live_peers(w: &World, agents: &[usize], n: usize) {
    let line = format!("ferrolb_agent_gossip_live_peers {n}\n");
    w.eventually_within(&format!("every agent sees {n} live peers"), BOUND, || {
        agents.iter().all(|&i| w.metrics(i).contains(&line))
    })
    .await;
}

#[tokio::test]
async fn a_foreign_host_claiming_a_held_address_is_reported_and_the_holder_keeps_it() {
    // Node 2 runs no agent: it is a foreign host on the LAN.
    let Some((w, sampler)) = world("cf", "conflict-foreign", 3, &[0, 1]).await else {
        return;
    };
    let agents = [0, 1];
    let (h4, h6) = (elected(&w, ip(V4), &agents), elected(&w, ip(V6), &agents));
    let foreign = w.node_ns(2).to_string();
    let claimed = Instant::now();
    for (addr, extra) in [
        (format!("{V4}/24"), None),
        (format!("{V6}/64"), Some("nodad")),
    ] {
        let mut argv = vec!["ip", "addr", "add", addr.as_str(), "dev", "eth0"];
        argv.extend(extra);
        w.topo
            .run(&foreign, &argv)
            .expect("the foreign host claims the address");
    }
    for (addr, holder, family) in [(V4, h4, "ipv4"), (V6, h6, "ipv6")] {
        w.eventually_async(
            &format!("an AddressConflict Event on node {holder} reports the foreign {addr}"),
            || async {
                w.conflict_events(holder, addr)
                    .await
                    .iter()
                    .any(|n| n.contains("no ferrolb agent") && n.contains("keeps it"))
            },
        )
        .await;
        let metric = format!(
            "ferrolb_agent_address_conflicts_total{{family=\"{family}\",with=\"foreign\"}}"
        );
        w.eventually(&format!("{metric} on node {holder}"), || {
            w.metrics(holder).contains(&metric)
        })
        .await;
    }
    // Two more probe intervals: the holder keeps both, the other agent never takes them.
    tokio::time::sleep(2 * PROBE).await;
    for s in sampler.since(claimed) {
        for (addr, holder) in [(V4, h4), (V6, h6)] {
            let agents_holding: Vec<usize> = s
                .holders(ip(addr))
                .into_iter()
                .filter(|i| agents.contains(i))
                .collect();
            assert_eq!(agents_holding, [holder], "{addr}: {s:?}\n{}", w.logs());
        }
    }
    println!(
        "foreign claim of {V4}/{V6}: reported, holders {h4}/{h6} kept them for {:?}",
        claimed.elapsed()
    );
}

/// The addresses' holders in every sample since `from` (as sets of nodes).
fn holders_since(sampler: &Sampler, addr: IpAddr, from: Instant) -> BTreeSet<Vec<usize>> {
    sampler
        .since(from)
        .iter()
        .map(|s| s.holders(addr))
        .collect()
}

/// kube's recorder folds Events of one reason about one Node into one series (counting up under
/// the first note) unless their related objects differ: two addresses in conflict on one node
/// showed as one Event naming only the first. Each address's Event relates to its Service and
/// address, so each is told.
#[tokio::test]
async fn two_addresses_in_conflict_on_one_node_get_an_event_each() {
    // One agent holds both addresses; node 1 runs none: a foreign host on the LAN.
    let Some((w, _sampler)) = world("ce", "conflict-each", 2, &[0]).await else {
        return;
    };
    let foreign = w.node_ns(1).to_string();
    // One after the other: the second Event is published once the first is known.
    for (addr, cidr, extra) in [
        (V4, format!("{V4}/24"), None),
        (V6, format!("{V6}/64"), Some("nodad")),
    ] {
        let mut argv = vec!["ip", "addr", "add", cidr.as_str(), "dev", "eth0"];
        argv.extend(extra);
        w.topo
            .run(&foreign, &argv)
            .expect("the foreign host claims the address");
        w.eventually_async(
            &format!("an AddressConflict Event of its own on node 0 for {addr}"),
            || async { !w.conflict_events(0, addr).await.is_empty() },
        )
        .await;
    }
}

#[tokio::test]
async fn split_gossip_and_a_lan_partition_end_with_one_holder_per_address() {
    let all = [0, 1, 2, 3];
    let Some((w, sampler)) = world("cs", "conflict-split", 4, &all).await else {
        return;
    };
    let (a, b) = ([0, 1], [2, 3]);
    let addrs = [ip(V4), ip(V6)];
    let global: Vec<usize> = addrs.iter().map(|&x| elected(&w, x, &all)).collect();
    // The elected node of the half without the global holder.
    let other_half: Vec<usize> = addrs
        .iter()
        .zip(&global)
        .map(|(&x, g)| elected(&w, x, if a.contains(g) { &b } else { &a }))
        .collect();

    // Gossip blocked, the LAN working: each half declares the other dead and elects its own
    // holder, but that one finds the address answered on the wire and waits.
    let blocked = Instant::now();
    w.block_gossip(&a, &b);
    live_peers(&w, &all, 1).await;
    let split = Instant::now();
    println!(
        "gossip split seen by every agent after {:?}",
        split.duration_since(blocked)
    );
    tokio::time::sleep(2 * PROBE).await;
    for (k, &addr) in addrs.iter().enumerate() {
        sampler.assert_no_overlap(&w, addr, blocked, "gossip split");
        let seen = holders_since(&sampler, addr, split);
        assert_eq!(
            seen,
            BTreeSet::from([vec![global[k]]]),
            "{addr}: one holder, the global one, 2 probe intervals after the split\n{}",
            w.logs()
        );
        let waiting = other_half[k];
        let text = addr.to_string();
        w.eventually_async(
            &format!(
                "node {waiting} reports that {addr} is answered by node {}",
                global[k]
            ),
            || async {
                w.conflict_events(waiting, &text)
                    .await
                    .iter()
                    .any(|n| n.contains(&w.nodes[global[k]]))
            },
        )
        .await;
    }

    // Healed: still one holder each.
    w.unblock_gossip();
    live_peers(&w, &all, 3).await;
    let healed = Instant::now();
    tokio::time::sleep(2 * PROBE).await;
    for (k, &addr) in addrs.iter().enumerate() {
        sampler.assert_no_overlap(&w, addr, blocked, "gossip split and heal");
        assert_eq!(
            holders_since(&sampler, addr, healed),
            BTreeSet::from([vec![global[k]]]),
            "{addr} after the heal\n{}",
            w.logs()
        );
    }

    // A real partition: each half serves its own clients.
    let parted = Instant::now();
    w.topo.partition(&a, &b).expect("partition the LAN");
    for (k, &addr) in addrs.iter().enumerate() {
        let mut want = vec![global[k], other_half[k]];
        want.sort();
        sampler
            .first(&w, &format!("each half holds {addr}"), parted, BOUND, |s| {
                s.holders(addr) == want
            })
            .await;
        for holder in [global[k], other_half[k]] {
            let half = if a.contains(&holder) { a } else { b };
            let client = half
                .into_iter()
                .find(|&i| i != holder)
                .expect("two per half");
            w.eventually_within(
                &format!("node {client} reaches {addr} on node {holder} in its half"),
                BOUND,
                || w.topo.ping(w.node_ns(client), addr),
            )
            .await;
        }
    }
    println!(
        "partition: each half holds and serves both addresses after {:?}",
        parted.elapsed()
    );

    // Healed: gossip and the probes leave one holder, the global one.
    let joined = Instant::now();
    w.topo.heal().expect("heal the LAN");
    for (k, &addr) in addrs.iter().enumerate() {
        let took = sampler
            .first(
                &w,
                &format!("one holder of {addr} after the heal"),
                joined,
                BOUND,
                |s| s.holders(addr) == [global[k]],
            )
            .await;
        println!(
            "partition healed: {addr} on node {} only after {:?}",
            global[k],
            took.at.duration_since(joined)
        );
    }
    let settled = Instant::now();
    tokio::time::sleep(2 * PROBE).await;
    for (k, &addr) in addrs.iter().enumerate() {
        assert_eq!(
            holders_since(&sampler, addr, settled),
            BTreeSet::from([vec![global[k]]]),
            "{addr} stays on one node after the heal\n{}",
            w.logs()
        );
    }
}
