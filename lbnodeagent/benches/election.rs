//! Benchmark of the election's failovers with the agent binary (release build): three nodes in
//! namespaces, their LAN, the ToR as the client's router, the shared control plane.
//!
//! Times come from the kernels: `ip -ts monitor address` runs in every node namespace, so the
//! instant the new holder's kernel has the address (and the instant an old copy expires) are
//! the kernel's own notifications, not polls. The ToR's neighbour entry for the address is
//! polled every 10 ms until it shows the new holder's MAC. Cases, each repeated:
//!
//! - graceful: SIGTERM to the holder → the next holder has the address;
//! - SIGKILL: the dead agent's copy lingers until its lifetime ends (DESIGN.md: respected, the
//!   others find it answering their probes); the figure is the gap between that copy's expiry
//!   and the next holder's add;
//! - link cut: the holder's LAN port goes down → the next holder has the address.
//!
//! Figures are printed and written to `target/bench/results.json` under `election`.

#[path = "../tests/world/mod.rs"]
mod world;

use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_e2e::results::{Tier, record};
use ferrolb_e2e::topology::Process;
use serde_json::{Value, json};
use world::sampler::{Sampler, elected, ip};
use world::{World, settings};

const V4: &str = "192.0.2.140";
const V6: &str = "2001:db8:1::140";
const REPEAT: usize = 5;
const BOUND: Duration = Duration::from_secs(20);

/// An address event from `ip -ts -o monitor address`: seconds of the day, added or deleted.
#[derive(Clone, Copy, Debug)]
struct KernelEvent {
    at: f64,
    deleted: bool,
}

/// Every event about `addr` in a monitor's log.
fn events(log: &str, addr: &str) -> Vec<KernelEvent> {
    let needle = format!(" {addr}/");
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split(']').next()?;
            let time = stamp.split('T').nth(1)?;
            let mut parts = time.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(KernelEvent {
                at: h * 3600.0 + m * 60.0 + s,
                deleted: l.contains("] Deleted "),
            })
        })
        .collect()
}

/// Seconds of the day now (UTC, like `ip -ts`).
fn now_of_day() -> f64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    (since.as_secs() % 86_400) as f64 + f64::from(since.subsec_micros()) / 1e6
}

struct Monitors(Vec<Process>);

impl Monitors {
    fn start(w: &World) -> Self {
        let procs = (0..w.nodes.len())
            .map(|i| {
                let mut cmd = Command::new("ip");
                cmd.args(["-ts", "-o", "monitor", "address", "dev", "eth0"])
                    .env("TZ", "UTC");
                w.topo.spawn_in(w.node_ns(i), &cmd).expect("ip monitor")
            })
            .collect();
        Self(procs)
    }

    /// The first add of `addr` on node `i` after `after` (seconds of the day).
    fn added(&self, i: usize, addr: &str, after: f64) -> Option<f64> {
        events(&self.0[i].log(), addr)
            .into_iter()
            .find(|e| !e.deleted && e.at >= after)
            .map(|e| e.at)
    }

    fn deleted(&self, i: usize, addr: &str, after: f64) -> Option<f64> {
        events(&self.0[i].log(), addr)
            .into_iter()
            .find(|e| e.deleted && e.at >= after)
            .map(|e| e.at)
    }
}

/// Waits (bounded) for `probe` to return `Some`.
async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < BOUND, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ToR's neighbour entry for `addr` shows `mac`.
fn tor_sees(w: &World, addr: &str, mac: &str) -> bool {
    w.neighbour(addr).contains(mac)
}

fn summary(ms: &[f64]) -> Value {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v.get(((v.len() - 1) as f64 * q).round() as usize).copied();
    json!({ "n": v.len(), "min": pick(0.0), "median": pick(0.5), "max": pick(1.0) })
}

#[derive(Default)]
struct Figures {
    graceful: Vec<f64>,
    graceful_neighbour: Vec<f64>,
    kill_gap: Vec<f64>,
    kill_lingered: Vec<f64>,
    kill_neighbour: Vec<f64>,
    cut: Vec<f64>,
    cut_neighbour: Vec<f64>,
}

/// Waits until the address is back on `h` only, and the ToR has a neighbour entry for it.
async fn back(w: &World, sampler: &Sampler, h: usize) {
    sampler
        .first(
            w,
            "the address is back on its holder",
            Instant::now(),
            BOUND,
            |s| s.holders(ip(V4)) == [h],
        )
        .await;
    let tor = w.tor().to_string();
    until("the ToR reaches the address", || {
        w.topo.ping(&tor, ip(V4)).then_some(())
    })
    .await;
    let mac = w.topo.node(h).mac().to_string();
    until("the ToR's entry shows the holder", || {
        tor_sees(w, V4, &mac).then_some(())
    })
    .await;
}

async fn run(w: &mut World, f: &mut Figures) -> usize {
    let all = [0, 1, 2];
    let h = elected(w, ip(V4), &all);
    let rest: Vec<usize> = all.into_iter().filter(|&i| i != h).collect();
    let next = elected(w, ip(V4), &rest);
    let next_mac = w.topo.node(next).mac().to_string();
    let sampler = Sampler::start(w);
    let monitors = Monitors::start(w);
    back(w, &sampler, h).await;
    let begun = Instant::now();
    for round in 0..REPEAT {
        // Graceful.
        let t0 = now_of_day();
        w.agent(h).signal("TERM").expect("SIGTERM");
        let added = until("graceful takeover", || monitors.added(next, V4, t0)).await;
        until("the ToR follows", || {
            tor_sees(w, V4, &next_mac).then_some(())
        })
        .await;
        let seen = now_of_day();
        f.graceful.push((added - t0) * 1e3);
        f.graceful_neighbour.push((seen - t0) * 1e3);
        while w.agent(h).exit_status().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.start_agent(h);
        back(w, &sampler, h).await;

        // SIGKILL: the gap between the lingering copy's expiry and the takeover.
        let t0 = now_of_day();
        w.agent(h).kill();
        let expired = until("the dead agent's copy expires", || {
            monitors.deleted(h, V4, t0)
        })
        .await;
        let added = until("takeover after the crash", || monitors.added(next, V4, t0)).await;
        until("the ToR follows", || {
            tor_sees(w, V4, &next_mac).then_some(())
        })
        .await;
        let seen = now_of_day();
        f.kill_lingered.push((expired - t0) * 1e3);
        f.kill_gap.push((added - expired) * 1e3);
        f.kill_neighbour.push((seen - expired) * 1e3);
        w.start_agent(h);
        back(w, &sampler, h).await;

        // Link cut.
        let t0 = now_of_day();
        w.topo.cut_lan(h).expect("cut");
        let added = until("takeover after the cut", || monitors.added(next, V4, t0)).await;
        until("the ToR follows", || {
            tor_sees(w, V4, &next_mac).then_some(())
        })
        .await;
        let seen = now_of_day();
        f.cut.push((added - t0) * 1e3);
        f.cut_neighbour.push((seen - t0) * 1e3);
        w.topo.restore_lan(h).expect("restore");
        back(w, &sampler, h).await;
        println!(
            "round {round}: graceful {:.0} ms, SIGKILL gap {:.0} ms (lingered {:.0} ms), cut {:.0} ms",
            f.graceful[round], f.kill_gap[round], f.kill_lingered[round], f.cut[round]
        );
    }
    // Samples with the address on two nodes (a cut node's copy, which reaches nobody, counts
    // too).
    sampler
        .since(begun)
        .iter()
        .filter(|s| s.holders(ip(V4)).len() > 1)
        .count()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(mut w) = World::with_nodes("ebn", "electionbench", settings("3s", "1s"), 3).await
    else {
        eprintln!("SKIPPED: the election benchmark needs root and the control plane");
        return Ok(());
    };
    for i in 0..3 {
        w.start_agent(i);
    }
    w.service("web", &w.local_group(), &[V4, V6], false).await;
    let mut f = Figures::default();
    let overlaps = run(&mut w, &mut f).await;
    let figures = json!({
        "graceful_ms": summary(&f.graceful),
        "graceful_tor_neighbour_ms": summary(&f.graceful_neighbour),
        "sigkill_gap_after_expiry_ms": summary(&f.kill_gap),
        "sigkill_copy_lingered_ms": summary(&f.kill_lingered),
        "sigkill_tor_neighbour_after_expiry_ms": summary(&f.kill_neighbour),
        "link_cut_ms": summary(&f.cut),
        "link_cut_tor_neighbour_ms": summary(&f.cut_neighbour),
        "samples_with_two_holders": overlaps,
        "setup": "3 nodes, localAddressLifetime 3s, conflictProbe 1s, gossip 50 ms; times from \
                  the kernels' address notifications (ip -ts monitor); the ToR's neighbour \
                  entry polled every 10 ms",
    });
    println!("election: {figures:#}");
    let path = record(Tier::Bench, "election", figures)?;
    println!("figures: {}", path.display());
    Ok(())
}
