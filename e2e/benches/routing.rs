//! Routing benchmark on the whole world (3 node namespaces with agent, bird-sidecar and BIRD,
//! an FRR ToR, the allocator and a real control plane):
//!
//! - Service created → ECMP route with every node as a next hop in the ToR's kernel;
//! - a node's LAN link cut → its next hop gone from the ToR's route, with BFD (100 ms × 3) and
//!   with the BGP hold timer only (9 s, the ToR's 3/9 s timers).
//!
//! Times come from `ip monitor route` in the ToR namespace (stamped as read), so they are what
//! the ToR forwards with, not what vtysh reports later. Figures are printed and written to
//! `target/bench/results.json` under `routing`. Bounded: every wait has a limit, the whole run
//! a deadline. The ferrolb binaries come from the bench's target directory (`cargo build
//! --release --workspace --bins`) or `FERROLB_BIN_DIR`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::env::{require, require_root};
use ferrolb_e2e::results::{self, Tier};
use ferrolb_e2e::routing::{
    self, RouteMonitor, VirtualGroup, create_service, hops_of, ingress, nexthops, prefix,
    restart_sidecar_with, service, sidecar_values,
};
use ferrolb_e2e::topology::TOR_ASN;
use ferrolb_e2e::world::World;
use serde_json::json;

const GROUP: VirtualGroup<'static> = VirtualGroup {
    name: "bench",
    v4: "203.0.113.128/25",
    v4_aggregation: "/32",
    v6: None,
    communities: &["64512:100"],
    large_communities: &[],
    local_preference: None,
};
const WAIT: Duration = Duration::from_secs(60);
/// The whole run stops with an error after this.
const DEADLINE: Duration = Duration::from_secs(600);

fn samples(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // World starts its per-node responders by re-running the current executable with
    // `--respond NAME PORT` (meant for ferrolb-demo): here that must not start another world.
    // routing::start_responders is not needed: the bench sends no requests.
    if std::env::args().nth(1).as_deref() == Some("--respond") {
        return;
    }
    if !require_root() || !require("the control-plane tools", ControlPlane::missing()) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(bench()) {
        eprintln!("routing bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "p50_ms": pct(&v, 50.0),
        "p99_ms": pct(&v, 99.0),
        "min_ms": v.first().copied().unwrap_or(f64::NAN),
        "max_ms": v.last().copied().unwrap_or(f64::NAN),
        "samples_ms": v,
    })
}

async fn bench() -> anyhow::Result<()> {
    let begun = Instant::now();
    for bin in ["ferrolb-allocator", "ferrolb-agent", "bird-sidecar"] {
        let path = ferrolb_e2e::env::binary(bin);
        anyhow::ensure!(
            path.exists(),
            "{} is missing: run `cargo build --release --workspace --bins` (make bench does), or set FERROLB_BIN_DIR",
            path.display()
        );
    }
    let mut world = World::start("rtb", 3).await?;
    let yaml = [GROUP.yaml(), "apiVersion: ferrolb.io/v1\nkind: LBNodeAgent\nmetadata:\n  name: default\nspec:\n  localInterface: default\n".to_string()].join("---\n");
    routing::apply(&world, "bench", &yaml)?;
    let api = routing::services(&world).await?;
    let monitor = RouteMonitor::start(&world, false)?;
    stable_sessions(&world, true).await?;
    let all = hops_of(&world, &[0, 1, 2], false);

    // Service created → ECMP route on the ToR.
    let n = samples("FERROLB_BENCH_ROUTE_SAMPLES", 30);
    let mut created = Vec::new();
    let mut anchor = None;
    for k in 0..n {
        anyhow::ensure!(begun.elapsed() < DEADLINE, "deadline");
        let name = format!("b{k}");
        let t0 = Instant::now();
        create_service(&api, &service(&name, GROUP.name, false, false)).await?;
        let addr = ingress(&api, &name, 1, WAIT).await?[0];
        let pfx = prefix(addr, 32);
        let want = all.clone();
        let t1 = monitor.wait(&pfx, t0, WAIT, |hops, deleted| {
            !deleted && sorted(hops) == want
        })?;
        created.push(ms(t1 - t0));
        anchor.get_or_insert(pfx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let anchor = anchor.ok_or_else(|| anyhow::anyhow!("no samples"))?;
    println!("Service created -> ECMP route (3 next hops) on the ToR: {created:?} ms");

    // Link cut → next hop withdrawn, with BFD.
    let n = samples("FERROLB_BENCH_BFD_SAMPLES", 6);
    let bfd = withdrawals(&world, &monitor, &anchor, n, begun, true).await?;
    println!("link cut -> next hop gone, BFD 100 ms x 3: {bfd:?} ms");

    // The same with the hold timer only: BFD off on the ToR and in every BIRD.
    let mut conf = format!("router bgp {TOR_ASN}\n");
    for peer in world.topo.nodes() {
        for addr in [IpAddr::from(peer.lan_v4()), IpAddr::from(peer.lan_v6())] {
            conf += &format!(" no neighbor {addr} bfd\n");
        }
    }
    conf += "exit\n";
    world.frr.configure(&conf)?;
    for i in 0..3 {
        restart_sidecar_with(&mut world, i, &sidecar_values(false))?;
    }
    wait_hops(&world, &anchor, &all).await?;
    stable_sessions(&world, false).await?;
    let n = samples("FERROLB_BENCH_HOLD_SAMPLES", 3);
    let hold = withdrawals(&world, &monitor, &anchor, n, begun, false).await?;
    println!("link cut -> next hop gone, hold timer 9 s only: {hold:?} ms");

    let figures = json!({
        "service_created_to_ecmp_route": summary(created),
        "link_cut_to_nexthop_withdrawn_bfd": summary(bfd),
        "link_cut_to_nexthop_withdrawn_hold_timer": summary(hold),
        "setup": "3 nodes (agent + bird-sidecar + BIRD 2 each), FRR ToR eBGP maximum-paths 16, BFD 100 ms x 3, BGP timers 3/9 s; times from `ip monitor route` in the ToR namespace",
        "targets": { "service_to_route_p99_ms": 200, "bfd_withdrawal_ms": 500 },
        "binaries": ferrolb_e2e::env::binary("ferrolb-agent")
            .parent()
            .map(|d| d.display().to_string()),
    });
    println!("{}", serde_json::to_string_pretty(&figures)?);
    let path = results::record(Tier::Bench, "routing", figures)?;
    println!("written to {}", path.display());
    Ok(())
}

fn sorted(hops: &[IpAddr]) -> Vec<IpAddr> {
    let mut v = hops.to_vec();
    v.sort();
    v.dedup();
    v
}

async fn wait_hops(world: &World, pfx: &str, want: &[IpAddr]) -> anyhow::Result<()> {
    world
        .wait(&format!("{pfx} via {want:?}"), WAIT, |w| {
            (nexthops(&w.frr, pfx) == want).then_some(())
        })
        .await
}

/// Every BGP session of the ToR up for 3 s (past FRR's BFD re-registration flap), and with BFD
/// every BFD session up.
async fn stable_sessions(world: &World, bfd: bool) -> anyhow::Result<()> {
    world
        .wait("6 stable BGP sessions", WAIT, |w| {
            let up = routing::established_for(&w.frr, 3000)?;
            let bfd_up = !bfd
                || w.frr
                    .vtysh_json("show bfd peers json")
                    .ok()?
                    .as_array()?
                    .iter()
                    .filter(|p| p.get("status").and_then(|s| s.as_str()) == Some("up"))
                    .count()
                    >= 6;
            (up == 6 && bfd_up).then_some(())
        })
        .await
        .map_err(|e| {
            let logs: Vec<String> = world
                .sidecars
                .iter()
                .flatten()
                .map(|p| {
                    let log = p.log();
                    let tail: Vec<&str> = log.lines().rev().take(10).collect();
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                })
                .collect();
            anyhow::anyhow!(
                "{e}\n{}\n--- sidecars ---\n{}",
                world
                    .frr
                    .vtysh(&["show bgp summary", "show bfd peers brief"])
                    .unwrap_or_else(|e| e.to_string()),
                logs.join("\n---\n")
            )
        })
}

/// Cuts node `k % 3`'s link `n` times (nodes in turn, so BIRD's error back-off stays short),
/// timing the cut → the ToR's route without that next hop; restores and waits for a stable
/// world between samples.
async fn withdrawals(
    world: &World,
    monitor: &RouteMonitor,
    pfx: &str,
    n: usize,
    begun: Instant,
    bfd: bool,
) -> anyhow::Result<Vec<f64>> {
    let all = hops_of(world, &[0, 1, 2], false);
    let mut out = Vec::new();
    for k in 0..n {
        anyhow::ensure!(begun.elapsed() < DEADLINE, "deadline");
        let i = k % 3;
        let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
        let want = hops_of(world, &others, false);
        let t0 = Instant::now();
        world.topo.cut_lan(i)?;
        let t1 = monitor.wait(pfx, t0, WAIT, |hops, deleted| {
            !deleted && sorted(hops) == want
        });
        world.topo.restore_lan(i)?;
        out.push(ms(t1? - t0));
        wait_hops(world, pfx, &all).await?;
        stable_sessions(world, bfd).await?;
    }
    Ok(out)
}
