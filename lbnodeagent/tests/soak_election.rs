//! Soak: 200 local addresses over 5 nodes while agents are killed (SIGKILL), stopped (SIGTERM)
//! and LAN links cut and restored. After each round settles every address is on exactly its
//! elected node and no node carries a stale copy. `make soak` runs 50 rounds (FERROLB_SOAK=1)
//! and writes its figures; `make test` runs 5.

mod world;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_e2e::results::{Tier, record};
use ferrolb_e2e::rng::XorShift;
use serde_json::json;
use world::sampler::{Sample, Sampler, elected};
use world::{World, settings};

const NODES: usize = 5;
/// Services, each with one IPv4 and one IPv6 address: 200 addresses.
const SERVICES: usize = 100;
/// How long one round may take to settle (loose: the agents' copies live 3 s).
const SETTLE_BOUND: Duration = Duration::from_secs(60);
/// How long a settled state must hold to count.
const STABLE: Duration = Duration::from_millis(500);

/// The soak's addresses: 192.0.2.151-250 and 2001:db8:1::200-263, pairwise.
fn addresses() -> Vec<(String, String)> {
    (0..SERVICES)
        .map(|i| {
            (
                format!("192.0.2.{}", 151 + i),
                format!("2001:db8:1::{:x}", 0x200 + i),
            )
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill(usize),
    Stop(usize),
    Cut(usize),
    KillAndCut(usize, usize),
}

/// Round `round`'s fault: the kinds take turns (so a short run sees each), the nodes are random.
fn fault(round: usize, rng: &mut XorShift) -> Fault {
    let i = rng.below(NODES);
    match round % 4 {
        0 => Fault::Kill(i),
        1 => Fault::Stop(i),
        2 => Fault::Cut(i),
        _ => Fault::KillAndCut(i, (i + 1 + rng.below(NODES - 1)) % NODES),
    }
}

/// Every soak address on its elected node and on no other.
fn settled(s: &Sample, pool: &BTreeSet<IpAddr>, want: &[BTreeSet<IpAddr>]) -> bool {
    s.held
        .iter()
        .zip(want)
        .all(|(held, want)| &held.intersection(pool).copied().collect::<BTreeSet<_>>() == want)
}

/// What differs from the settled state in `s`, for the failure message.
fn stale(s: &Sample, pool: &BTreeSet<IpAddr>, want: &[BTreeSet<IpAddr>]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (held, want)) in s.held.iter().zip(want).enumerate() {
        let held: BTreeSet<IpAddr> = held.intersection(pool).copied().collect();
        for a in held.difference(want) {
            out.push(format!("{a} stale on node {i}"));
        }
        for a in want.difference(&held) {
            out.push(format!("{a} missing on node {i}"));
        }
    }
    out
}

async fn wait_exit(w: &mut World, i: usize) {
    let stopped = Instant::now();
    while w.agent(i).exit_status().is_none() {
        assert!(
            stopped.elapsed() < world::TIMEOUT,
            "agent {i} did not exit\n{}",
            w.logs()
        );
        tokio::time::sleep(world::STEP).await;
    }
}

#[tokio::test]
async fn soak_election_keeps_one_holder_per_address_under_kills_and_cuts() {
    let long = std::env::var_os("FERROLB_SOAK").is_some();
    let rounds = if long { 50 } else { 5 };
    let Some(mut w) = World::with_nodes("se", "soak-election", settings("3s", "1s"), NODES).await
    else {
        return;
    };
    w.create_soak_group("192.0.2.151-192.0.2.250", "2001:db8:1::200-2001:db8:1::263")
        .await;
    for i in 0..NODES {
        w.start_agent(i);
    }
    let group = w.soak_group();
    let pairs = addresses();
    for (k, (v4, v6)) in pairs.iter().enumerate() {
        w.service(
            &format!("soak-{k}"),
            &group,
            &[v4.as_str(), v6.as_str()],
            false,
        )
        .await;
    }
    let all: Vec<usize> = (0..NODES).collect();
    let pool: BTreeSet<IpAddr> = pairs
        .iter()
        .flat_map(|(a, b)| [a.parse().expect("ip"), b.parse().expect("ip")])
        .collect();
    let mut want = vec![BTreeSet::new(); NODES];
    for &a in &pool {
        want[elected(&w, a, &all)].insert(a);
    }
    let per_node: Vec<usize> = want.iter().map(BTreeSet::len).collect();
    println!("{} addresses over {NODES} nodes: {per_node:?}", pool.len());
    let sampler = Sampler::start(&w);
    let start = Instant::now();
    let first = sampler
        .first(
            &w,
            "every address on its elected node",
            start,
            SETTLE_BOUND,
            |s| settled(s, &pool, &want),
        )
        .await;
    println!(
        "initial placement settled in {:?}",
        first.at.duration_since(start)
    );

    let mut rng = XorShift(0x5eed_e1ec);
    let mut settle_times = Vec::new();
    let mut log = Vec::new();
    for round in 0..rounds {
        let f = fault(round, &mut rng);
        let down = Duration::from_millis(200 + rng.below(1800) as u64);
        match f {
            Fault::Kill(i) => w.agent(i).kill(),
            Fault::Stop(i) => {
                w.agent(i).signal("TERM").expect("SIGTERM");
                wait_exit(&mut w, i).await;
            }
            Fault::Cut(i) => w.topo.cut_lan(i).expect("cut the LAN"),
            Fault::KillAndCut(i, j) => {
                w.agent(i).kill();
                w.topo.cut_lan(j).expect("cut the LAN");
            }
        }
        tokio::time::sleep(down).await;
        match f {
            Fault::Kill(i) | Fault::Stop(i) => w.start_agent(i),
            Fault::Cut(i) => w.topo.restore_lan(i).expect("restore the LAN"),
            Fault::KillAndCut(i, j) => {
                w.start_agent(i);
                w.topo.restore_lan(j).expect("restore the LAN");
            }
        }
        let restored = Instant::now();
        // A restarted agent first lets go of what it had (it claims nothing before its view
        // settles): its node's lingering copies do not count as settled before it is ready.
        let mut from = restored;
        if let Fault::Kill(i) | Fault::Stop(i) | Fault::KillAndCut(i, _) = f {
            let ns = w.node_ns(i).to_string();
            let ready = ["curl", "-sf", "http://127.0.0.1:9471/readyz"];
            w.eventually(&format!("agent {i} is ready again"), || {
                w.topo.exec(&ns, &ready).is_ok_and(|o| o.status.success())
            })
            .await;
            from = Instant::now();
        }
        let ok = sampler
            .first(
                &w,
                &format!("round {round} ({f:?}) settles"),
                from,
                SETTLE_BOUND,
                |s| settled(s, &pool, &want),
            )
            .await;
        let took = ok.at.duration_since(restored);
        tokio::time::sleep(STABLE).await;
        for s in sampler.since(ok.at) {
            let wrong = stale(&s, &pool, &want);
            assert!(
                wrong.is_empty(),
                "round {round} ({f:?}): settled, then {:?} later: {wrong:?}\n{}",
                s.at.duration_since(ok.at),
                w.logs()
            );
        }
        println!("round {round}: {f:?}, down {down:?}, settled {took:?} after the restore");
        log.push(format!("{f:?}"));
        settle_times.push(took);
    }
    settle_times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let figures = json!({
        "nodes": NODES,
        "addresses": pool.len(),
        "rounds": rounds,
        "faults": log,
        "settle_ms_median": settle_times.get(settle_times.len() / 2).map(ms),
        "settle_ms_max": settle_times.last().map(ms),
        "per_node": per_node,
        "note": "settle = from the restore (agent restarted or link up) to the first 50 ms \
                 sample with every address on exactly its elected node",
    });
    println!("election soak: {figures}");
    if long {
        let path = record(Tier::Soak, "election", figures).expect("soak results written");
        println!("written to {}", path.display());
    }
    drop(sampler);
}
