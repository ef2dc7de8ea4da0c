//! A local ServiceGroup over two subnets (PureLB's multiPool) in the real `ferrolb-agent`
//! binary: a Service holds one address in each subnet of each family, and only the node whose
//! local interface carries a subnet may hold that subnet's address. Three nodes on the LAN;
//! node 2 and the ToR also have a second subnet (203.0.113.128/26, 2001:db8:6::/64) on their
//! LAN interfaces. Who holds what is read from the kernel (`world::sampler` to wait and to see
//! it over time, `holders` to look for overlaps); the ToR checks that each address answers from
//! its holder's MAC; the per-node Leases say which subnets each node offers.

mod holders;
mod world;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_api::contracts::{IneligibleReason, lease};
use ferrolb_api::election::{Contender, NotCandidate, elect};
use ferrolb_api::node_lease::NodeLease;
use ferrolb_api::servicegroup::{LocalSpec, Pool};
use ferrolb_api::{ServiceGroup, ServiceGroupSpec};
use ferrolb_e2e::controlplane::ControlPlane;
use holders::Holders;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use world::sampler::{Sample, Sampler, elected, ip};
use world::{World, settings};

/// The Service's addresses: one in the LAN's subnet and one in the second subnet, per family.
const LAN_V4: &str = "192.0.2.160";
const EXTRA_V4: &str = "203.0.113.140";
const LAN_V6: &str = "2001:db8:1::160";
const EXTRA_V6: &str = "2001:db8:6::140";
/// The second subnet, and the addresses of the ToR and of node 2 in it.
const EXTRA_SUBNETS: [&str; 2] = ["203.0.113.128/26", "2001:db8:6::/64"];
const TOR_EXTRA: [&str; 2] = ["203.0.113.129/26", "2001:db8:6::1/64"];
const NODE_EXTRA: [&str; 2] = ["203.0.113.130/26", "2001:db8:6::2/64"];
/// The only node with the second subnet.
const EXTRA_NODE: usize = 2;
const ALL: [usize; 3] = [0, 1, 2];
/// Loose functional bound: it catches breakage, not regressions of a few hundred ms.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// The test's own ServiceGroup, deleted on drop (also when the test panics).
struct Group {
    cp: &'static ControlPlane,
    name: String,
}

impl Group {
    /// A local multiPool group `<namespace>-multi` with a pool in each subnet of each family.
    async fn create(w: &World) -> Group {
        let pool = |subnet: &str, range: &str| Pool {
            subnet: subnet.into(),
            pool: range.into(),
            aggregation: None,
        };
        let spec = ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: vec![
                    pool("192.0.2.0/24", "192.0.2.160-192.0.2.170"),
                    pool(EXTRA_SUBNETS[0], "203.0.113.140-203.0.113.150"),
                ],
                v6pools: vec![
                    pool("2001:db8:1::/64", "2001:db8:1::160-2001:db8:1::170"),
                    pool(EXTRA_SUBNETS[1], "2001:db8:6::140-2001:db8:6::150"),
                ],
                multi_pool: true,
            }),
            auto_assign: Some(false),
            ..Default::default()
        };
        let group = Group {
            cp: w.cp,
            name: format!("{}-multi", w.name()),
        };
        Api::<ServiceGroup>::all(w.client.clone())
            .create(
                &PostParams::default(),
                &ServiceGroup::new(&group.name, spec),
            )
            .await
            .unwrap_or_else(|e| panic!("create ServiceGroup {}: {e}", group.name));
        group
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self
            .cp
            .kubectl()
            .args(["delete", "servicegroup", &self.name])
            .args(["--wait=false", "--ignore-not-found"])
            .output();
    }
}

/// The second subnet on the ToR's and node 2's LAN interfaces (inside the world's namespaces,
/// which go with the world).
fn add_second_subnet(w: &World) {
    let node = w.topo.node(EXTRA_NODE);
    let (node_ns, node_if) = (node.ns_name().to_string(), node.lan_ifname().to_string());
    let tor_if = ferrolb_e2e::topology::TOR_LAN_IF;
    for (ns, dev, addrs) in [
        (w.tor(), tor_if, TOR_EXTRA),
        (node_ns.as_str(), node_if.as_str(), NODE_EXTRA),
    ] {
        for a in addrs {
            let mut argv = vec!["ip", "addr", "add", a, "dev", dev];
            if a.contains(':') {
                argv.push("nodad");
            }
            w.topo
                .run(ns, &argv)
                .unwrap_or_else(|e| panic!("{a} on {dev} in {ns}: {e}"));
        }
    }
}

/// The node whose LAN MAC a neighbour entry names, for messages.
fn node_of_mac(w: &World, entry: &str) -> Option<usize> {
    ALL.into_iter()
        .find(|&i| entry.to_lowercase().contains(w.topo.node(i).mac()))
}

/// The ToR reaches `addr` and its neighbour entry names node `holder`'s MAC.
async fn answers_from(w: &World, addr: &str, holder: usize) {
    let mac = w.topo.node(holder).mac().to_string();
    w.eventually(
        &format!("the ToR reaches {addr} at node {holder}'s MAC {mac}"),
        || w.topo.ping(w.tor(), ip(addr)) && w.neighbour(addr).to_lowercase().contains(&mac),
    )
    .await;
    println!("ToR -> {addr}: answered, {}", w.neighbour(addr).trim());
}

/// Every node's per-node Lease, read back as the allocator and the CLI read it.
async fn leases(w: &World) -> Vec<NodeLease> {
    let mut out = Vec::new();
    for i in ALL {
        let l = w
            .lease(i)
            .await
            .unwrap_or_else(|| panic!("node {i} has a Lease"));
        out.push(NodeLease::from_lease(&l).unwrap_or_else(|| panic!("node {i}'s Lease reads")));
    }
    out
}

/// The election over what the Leases publish (as the allocator's NoCandidate check runs it).
fn elect_from(leases: &[NodeLease], addr: IpAddr) -> (Option<String>, Vec<(String, NotCandidate)>) {
    let now = Timestamp::now();
    let contenders: Vec<Contender> = leases
        .iter()
        .map(|l| Contender {
            name: l.node.clone(),
            ineligible: l.ineligible,
            alive: l.alive(now),
            subnets: l.subnets.clone(),
            has_local_endpoint: false,
        })
        .collect();
    let (holder, rejected) = elect(addr, &contenders, false);
    (
        holder.map(str::to_string),
        rejected
            .into_iter()
            .map(|(n, why)| (n.to_string(), why))
            .collect(),
    )
}

fn subnets_text(l: &NodeLease) -> String {
    let s: Vec<String> = l.subnets.iter().map(ToString::to_string).collect();
    s.join(" ")
}

/// Who holds each of `addrs` in a sample.
fn held_by(s: &Sample, addrs: &[(&str, Vec<usize>)]) -> bool {
    addrs.iter().all(|(a, want)| s.holders(ip(a)) == *want)
}

#[tokio::test]
async fn each_subnet_address_goes_to_a_node_with_that_subnet_and_leaves_with_it() {
    let Some(mut w) = World::with_nodes("ms", "agent-subnets", settings("3s", "1s"), 3).await
    else {
        return;
    };
    add_second_subnet(&w);
    let group = Group::create(&w).await;
    for i in ALL {
        w.start_agent(i);
    }
    w.service(
        "multi",
        &group.name,
        &[LAN_V4, EXTRA_V4, LAN_V6, EXTRA_V6],
        false,
    )
    .await;
    let addrs = [LAN_V4, EXTRA_V4, LAN_V6, EXTRA_V6].map(ip);
    let sampler = Sampler::start(&w);
    let holders = Holders::start(&w, &addrs);
    let (h4, h6) = (elected(&w, ip(LAN_V4), &ALL), elected(&w, ip(LAN_V6), &ALL));
    println!(
        "elected among all: {LAN_V4} node {h4}, {LAN_V6} node {h6}; second subnet: node {EXTRA_NODE}"
    );
    let want = [
        (LAN_V4, vec![h4]),
        (LAN_V6, vec![h6]),
        (EXTRA_V4, vec![EXTRA_NODE]),
        (EXTRA_V6, vec![EXTRA_NODE]),
    ];
    let start = Instant::now();
    sampler
        .first(
            &w,
            "each address is on its node only",
            start,
            world::TIMEOUT,
            |s| held_by(s, &want),
        )
        .await;
    // It stays that way: a second of samples, each with exactly these holders.
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for s in sampler.since(steady) {
        assert!(
            held_by(&s, &want),
            "want {want:?}, sampled {s:?}\n{}",
            w.logs()
        );
    }
    for a in addrs {
        holders.assert_no_overlap(&w, a, start, "placement over two subnets");
    }
    // The address really is on the subnet's prefix: the kernel answers for it on that link.
    let extra = w.addrs(EXTRA_NODE, "eth0");
    for cidr in ["203.0.113.140/26", "2001:db8:6::140/64"] {
        assert!(world::has_cidr(&extra, cidr), "{cidr} on node 2:\n{extra}");
    }

    // From another namespace: every address answers, from its holder's MAC.
    for (a, h) in [
        (LAN_V4, h4),
        (LAN_V6, h6),
        (EXTRA_V4, EXTRA_NODE),
        (EXTRA_V6, EXTRA_NODE),
    ] {
        answers_from(&w, a, h).await;
    }

    // What the agents publish: each node's subnets on its Lease; node 2 holds the second
    // subnet's addresses. An election over the Leases says why nodes 0 and 1 do not.
    let names = w.nodes.clone();
    w.eventually_async(
        "the Leases list the subnets and node 2's holding",
        || async {
            let ls = leases(&w).await;
            let h = &ls[EXTRA_NODE].holding;
            ls.iter().all(|l| l.ineligible.is_none())
                && h.contains(&ip(EXTRA_V4))
                && h.contains(&ip(EXTRA_V6))
        },
    )
    .await;
    let ls = leases(&w).await;
    for (i, l) in ls.iter().enumerate() {
        println!(
            "node {i} Lease: {}={:?} {}={:?}",
            lease::SUBNETS,
            subnets_text(l),
            lease::HOLDING,
            l.holding
        );
    }
    assert_eq!(
        subnets_text(&ls[EXTRA_NODE]),
        "192.0.2.0/24 203.0.113.128/26 2001:db8:1::/64 2001:db8:6::/64"
    );
    for i in [0, 1] {
        assert_eq!(
            subnets_text(&ls[i]),
            "192.0.2.0/24 2001:db8:1::/64",
            "node {i}"
        );
    }
    for a in [EXTRA_V4, EXTRA_V6] {
        let (holder, rejected) = elect_from(&ls, ip(a));
        assert_eq!(holder.as_deref(), Some(names[EXTRA_NODE].as_str()), "{a}");
        let mut rejected = rejected;
        rejected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            rejected,
            [
                (names[0].clone(), NotCandidate::NoSubnet),
                (names[1].clone(), NotCandidate::NoSubnet),
            ],
            "{a}"
        );
    }
    // Each holder's /metrics lists the addresses it announces, two of one family on node 2.
    for (a, h) in [
        (LAN_V4, h4),
        (LAN_V6, h6),
        (EXTRA_V4, EXTRA_NODE),
        (EXTRA_V6, EXTRA_NODE),
    ] {
        let m = w.metrics(h);
        let series = format!("address=\"{a}\"");
        assert!(
            m.lines().any(|l| l.starts_with("ferrolb_agent_announced{")
                && l.contains(&series)
                && l.contains("service_name=\"multi\"")
                && l.contains("kind=\"local\"")),
            "node {h} does not announce {a}:\n{m}"
        );
    }
    // And the agents of nodes 0 and 1 say so in their own words (debug log, per round).
    for i in [0, 1] {
        let log = w.agent(i).log();
        let said = log.lines().find(|l| {
            l.contains("not on this node")
                && l.contains(EXTRA_V4)
                && l.contains("SubnetNotOnLocalInterface")
        });
        assert!(
            said.is_some(),
            "node {i}'s agent does not say why it skips {EXTRA_V4}\n{}",
            w.logs()
        );
        println!("node {i} says: {}", said.unwrap_or_default().trim());
    }

    // Node 2 stops gracefully: the second subnet's addresses leave it and nobody else takes
    // them; the LAN's addresses stay held by one node each.
    let rest = [0, 1];
    let after = |h: usize, a: &str| {
        if h == EXTRA_NODE {
            elected(&w, ip(a), &rest)
        } else {
            h
        }
    };
    let (n4, n6) = (after(h4, LAN_V4), after(h6, LAN_V6));
    let want_after = [
        (LAN_V4, vec![n4]),
        (LAN_V6, vec![n6]),
        (EXTRA_V4, vec![]),
        (EXTRA_V6, vec![]),
    ];
    let stopped = Instant::now();
    w.agent(EXTRA_NODE).signal("TERM").expect("SIGTERM");
    let gone = sampler
        .first(
            &w,
            "node 2's addresses are gone and the LAN's are held",
            stopped,
            TAKEOVER_BOUND,
            |s| held_by(s, &want_after),
        )
        .await;
    println!(
        "node 2 stopped: second-subnet addresses unheld and {LAN_V4} on node {n4}, {LAN_V6} on node {n6} in the first sample begun {:?} after the SIGTERM",
        gone.at.duration_since(stopped)
    );
    while w.agent(EXTRA_NODE).exit_status().is_none() {
        assert!(
            stopped.elapsed() < world::TIMEOUT,
            "node 2's agent did not exit\n{}",
            w.logs()
        );
        tokio::time::sleep(world::STEP).await;
    }
    // Longer than the address lifetime and the gossip settle time: nobody takes them later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for s in sampler.since(stopped) {
        for a in [EXTRA_V4, EXTRA_V6] {
            let h = s.holders(ip(a));
            assert!(
                h.is_empty() || (h == [EXTRA_NODE] && s.at < gone.at),
                "{a} on {h:?} {:?} after node 2 stopped\n{}",
                s.at.duration_since(stopped),
                w.logs()
            );
        }
    }
    for s in sampler.since(gone.at) {
        assert!(
            held_by(&s, &want_after),
            "want {want_after:?}, sampled {s:?}\n{}",
            w.logs()
        );
    }
    for a in addrs {
        holders.assert_no_overlap(&w, a, start, "node 2's graceful stop");
    }
    for (a, h) in [(LAN_V4, n4), (LAN_V6, n6)] {
        answers_from(&w, a, h).await;
    }
    for a in [EXTRA_V4, EXTRA_V6] {
        assert!(
            !w.topo.ping(w.tor(), ip(a)),
            "{a} still answers after node 2 stopped (neighbour entry {:?}, node {:?})",
            w.neighbour(a),
            node_of_mac(&w, &w.neighbour(a))
        );
    }
    // Node 2's Lease says it is stopping and holds nothing; the election over the Leases finds
    // no holder for the second subnet, and says why for each node.
    let ls = leases(&w).await;
    let l2 = &ls[EXTRA_NODE];
    println!(
        "node 2 Lease after the stop: {}={:?} {}={:?}",
        lease::ELIGIBLE,
        l2.eligible_text,
        lease::HOLDING,
        l2.holding
    );
    assert_eq!(l2.ineligible, Some(IneligibleReason::Stopping));
    assert!(l2.holding.is_empty(), "{:?}", l2.holding);
    for a in [EXTRA_V4, EXTRA_V6] {
        let (holder, mut rejected) = elect_from(&ls, ip(a));
        rejected.sort_by(|x, y| x.0.cmp(&y.0));
        println!("election over the Leases for {a}: holder {holder:?}, rejected {rejected:?}");
        assert_eq!(holder, None, "{a}");
        assert_eq!(
            rejected,
            [
                (names[0].clone(), NotCandidate::NoSubnet),
                (names[1].clone(), NotCandidate::NoSubnet),
                (
                    names[2].clone(),
                    NotCandidate::Ineligible(IneligibleReason::Stopping)
                ),
            ],
            "{a}"
        );
    }
}
