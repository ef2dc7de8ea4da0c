//! Benchmarks of the IPAM core: allocation and release rates, memory per address, rebuild time.
//!
//! Criterion measures the operations; the figures written to `target/bench/results.json` under
//! `"ipam"` come from this file's own timed loops (median of a few rounds), so they do not
//! depend on criterion's internals. The figures are computed only under `cargo bench` (criterion's
//! test mode, e.g. `cargo test --all-targets`, runs each bench once and writes nothing).

use ferrolb_e2e::rng::XorShift;
use std::alloc::System;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cap::Cap;
use criterion::{BatchSize, Criterion, Throughput};
use ferrolb_allocator::ipam::{Ipam, Pool};
use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};

// Counts live heap bytes for the bytes-per-address figure. The workspace forbids `unsafe_code`
// (and `forbid` cannot be relaxed per file), so the GlobalAlloc impl comes from the `cap` crate.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// 2^20 addresses.
const POOL: &str = "2001:db8::/108";
const SEQUENTIAL: usize = 1_000_000;
const HELD: usize = 100_000;
const ROUNDS: usize = 5;

fn pool() -> Pool {
    Pool {
        v6: vec![AddrRange::parse(POOL).expect("valid pool")],
        ..Pool::default()
    }
}

fn empty_ipam() -> Ipam {
    Ipam::new(pool()).expect("valid pool")
}

/// `HELD` allocated addresses in a pool, sequentially from its start.
fn held() -> (Ipam, Vec<IpAddr>) {
    let mut ipam = empty_ipam();
    let addrs = (0..HELD)
        .map(|_| {
            ipam.allocate(Family::V6)
                .expect("pool holds HELD addresses")
        })
        .collect();
    (ipam, addrs)
}

/// Every other address of the pool, `HELD` of them: no two adjacent, the worst case for runs.
fn scattered() -> Vec<IpAddr> {
    let start = to_u128(AddrRange::parse(POOL).expect("valid pool").start);
    (0..HELD as u128)
        .map(|k| from_u128(Family::V6, start + 2 * k).expect("IPv6"))
        .collect()
}

fn shuffled(mut list: Vec<IpAddr>, rng: &mut XorShift) -> Vec<IpAddr> {
    for i in (1..list.len()).rev() {
        list.swap(i, rng.below(i + 1));
    }
    list
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipam");

    group.throughput(Throughput::Elements(SEQUENTIAL as u64));
    group.bench_function("allocate_1m_sequential", |b| {
        b.iter_batched(
            empty_ipam,
            |mut ipam| {
                for _ in 0..SEQUENTIAL {
                    black_box(ipam.allocate(Family::V6).expect("pool holds 2^20"));
                }
                ipam
            },
            BatchSize::PerIteration,
        )
    });

    group.throughput(Throughput::Elements(1));
    let (mut ipam, mut addrs) = held();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    group.bench_function("release_reallocate_with_100k_held", |b| {
        b.iter(|| {
            let i = rng.below(addrs.len());
            ipam.release(addrs[i]);
            addrs[i] = ipam.allocate(Family::V6).expect("one was just freed");
        })
    });

    group.throughput(Throughput::Elements(HELD as u64));
    let list = shuffled(scattered(), &mut rng);
    group.bench_function("rebuild_100k_scattered", |b| {
        b.iter_batched(
            || list.clone(),
            |list| {
                let mut ipam = empty_ipam();
                ipam.rebuild(pool(), list).expect("valid pool");
                ipam
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn allocations_per_second() -> f64 {
    let samples = (0..ROUNDS)
        .map(|_| {
            let mut ipam = empty_ipam();
            let start = Instant::now();
            for _ in 0..SEQUENTIAL {
                black_box(ipam.allocate(Family::V6).expect("pool holds 2^20"));
            }
            let elapsed = start.elapsed();
            drop(black_box(ipam));
            elapsed
        })
        .collect();
    SEQUENTIAL as f64 / median(samples).as_secs_f64()
}

fn release_reallocate_per_second() -> f64 {
    const OPS: usize = 1_000_000;
    let (mut ipam, mut addrs) = held();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let samples = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..OPS {
                let i = rng.below(addrs.len());
                ipam.release(addrs[i]);
                addrs[i] = ipam.allocate(Family::V6).expect("one was just freed");
            }
            start.elapsed()
        })
        .collect();
    OPS as f64 / median(samples).as_secs_f64()
}

/// Live heap bytes per allocated address once `HELD` scattered addresses are allocated, by how
/// the state was built: (requested one by one in address order, in random order, rebuilt).
fn bytes_per_allocated_address(rng: &mut XorShift) -> (f64, f64, f64) {
    let list = scattered();
    let random = shuffled(list.clone(), rng);
    let per_address = |build: &dyn Fn() -> Ipam| {
        let before = ALLOCATOR.allocated();
        let ipam = build();
        let bytes = ALLOCATOR.allocated() - before;
        assert_eq!(ipam.utilization(Family::V6).allocated, HELD as u128);
        bytes as f64 / HELD as f64
    };
    let requested = |order: &[IpAddr]| {
        let mut ipam = empty_ipam();
        for &a in order {
            ipam.request(a).expect("free address of the pool");
        }
        ipam
    };
    let ascending = per_address(&|| requested(&list));
    let random_order = per_address(&|| requested(&random));
    let rebuilt = per_address(&|| {
        let mut ipam = empty_ipam();
        // Clone inside, so the input list's own heap is freed before the count is read.
        ipam.rebuild(pool(), random.clone()).expect("valid pool");
        ipam
    });
    (ascending, random_order, rebuilt)
}

fn rebuild_100k_ms(rng: &mut XorShift) -> f64 {
    let list = shuffled(scattered(), rng);
    let samples = (0..ROUNDS)
        .map(|_| {
            let input = list.clone();
            let start = Instant::now();
            let mut ipam = empty_ipam();
            ipam.rebuild(pool(), input).expect("valid pool");
            let elapsed = start.elapsed();
            drop(black_box(ipam));
            elapsed
        })
        .collect();
    median(samples).as_secs_f64() * 1e3
}

/// Services in the pass figure.
const PASS_SERVICES: usize = 10_000;

/// A snapshot of `n` Services that already show addresses from one virtual group, with the
/// allocator's annotations: what every pass of a settled allocator looks at.
fn settled_snapshot(n: usize) -> ferrolb_allocator::observe::Snapshot {
    use ferrolb_allocator::observe::{GroupView, Snapshot, SvcView};
    use std::sync::Arc;
    let group: ferrolb_api::ServiceGroup = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
        "metadata": { "name": "bench", "uid": "g", "creationTimestamp": "2026-01-01T00:00:00Z" },
        "spec": { "virtual": { "v6pools": [{ "subnet": "2001:db8:b::/64", "pool": "2001:db8:b::/112", "aggregation": "/64" }] } },
    }))
    .expect("a valid group");
    let services = (0..n)
        .map(|i| {
            let svc: k8s_openapi::api::core::v1::Service =
                serde_json::from_value(serde_json::json!({
                    "metadata": {
                        "name": format!("s-{i:05}"), "namespace": "bench", "uid": format!("u{i}"),
                        "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
                        "annotations": {
                            "ferrolb.io/service-group": "bench",
                            "ferrolb.io/allocated-by": "ferrolb",
                            "ferrolb.io/allocated-from": "bench",
                            "ferrolb.io/pool-type": "virtual",
                            "ferrolb.io/announcing-IPv6": "0 nodes,kube-lb0",
                        },
                    },
                    "spec": { "type": "LoadBalancer", "ipFamilies": ["IPv6"],
                              "ipFamilyPolicy": "SingleStack",
                              "ports": [{ "port": 80, "protocol": "TCP" }] },
                    "status": { "loadBalancer": { "ingress": [
                        { "ip": format!("2001:db8:b::{:x}", i + 1), "ipMode": "VIP" } ] } },
                }))
                .expect("a valid Service");
            Arc::new(SvcView::from_service(&svc))
        })
        .collect();
    Snapshot {
        services,
        groups: vec![GroupView::from_group(&group)],
        ..Snapshot::default()
    }
}

/// One pass (plan, then diff) over a settled snapshot, in ms; the diff must be empty.
fn pass_ms(snap: &ferrolb_allocator::observe::Snapshot) -> f64 {
    use ferrolb_allocator::decide::{Settings, diff, plan};
    let settings = Settings::default();
    let samples = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let p = plan(black_box(snap), &settings);
            let changes = diff(&p, snap);
            let took = t.elapsed();
            assert!(
                changes.iter().all(|c| matches!(
                    c,
                    ferrolb_allocator::decide::Change::GroupStatus { .. }
                        | ferrolb_allocator::decide::Change::GroupFinalizer { .. }
                )),
                "a settled Service is written: {:?}",
                changes.first()
            );
            took
        })
        .collect();
    median(samples).as_secs_f64() * 1e3
}

fn figures() {
    let mut rng = XorShift(0x853c_49e6_748f_ea9b);
    let allocations = allocations_per_second();
    let release_reallocate = release_reallocate_per_second();
    let (ascending, random_order, rebuilt) = bytes_per_allocated_address(&mut rng);
    let worst_bytes = ascending.max(random_order).max(rebuilt);
    let rebuild_ms = rebuild_100k_ms(&mut rng);
    let pass = pass_ms(&settled_snapshot(PASS_SERVICES));
    let figures = serde_json::json!({
        "allocations_per_second": allocations.round(),
        "release_reallocate_per_second": release_reallocate.round(),
        "bytes_per_allocated_address": (worst_bytes * 10.0).round() / 10.0,
        "bytes_per_allocated_address_by_build": {
            "requested_ascending": (ascending * 10.0).round() / 10.0,
            "requested_random_order": (random_order * 10.0).round() / 10.0,
            "rebuilt": (rebuilt * 10.0).round() / 10.0,
        },
        "rebuild_100k_ms": (rebuild_ms * 1000.0).round() / 1000.0,
        "pass_10k_settled_ms": (pass * 100.0).round() / 100.0,
        "pool": POOL,
        "method": format!("median of {ROUNDS} timed rounds on one thread; bytes are live heap \
            bytes (counting global allocator) for {HELD} non-adjacent addresses, worst of the \
            three ways of building the state"),
    });
    println!("ipam figures:");
    println!("  allocations/s (1M sequential, {POOL}): {allocations:.0}");
    println!("  release+reallocate/s ({HELD} held):        {release_reallocate:.0}");
    println!(
        "  bytes per allocated address ({HELD} scattered): {worst_bytes:.1} worst \
         (requested ascending {ascending:.1}, random order {random_order:.1}, rebuilt {rebuilt:.1})"
    );
    println!("  rebuild of {HELD} scattered: {rebuild_ms:.2} ms");
    println!("  one pass (plan + diff) over {PASS_SERVICES} settled Services: {pass:.2} ms");
    match ferrolb_e2e::results::record(ferrolb_e2e::results::Tier::Bench, "ipam", figures) {
        Ok(path) => println!("  written to {}", path.display()),
        Err(e) => eprintln!("could not write bench results: {e}"),
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        figures();
    }
}
