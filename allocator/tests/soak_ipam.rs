//! Soak: the IPAM core under a long random run of allocations, releases, pool edits and
//! "restarts" (a rebuild from the owners' list, as the allocator does at start). Nothing held
//! is ever renumbered or handed out twice. `make soak` runs it long (FERROLB_SOAK=1) and writes
//! its figures; `make test` runs it short.

use ferrolb_e2e::rng::XorShift;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use ferrolb_allocator::ipam::{Ipam, Pool};
use ferrolb_api::pool::{AddrRange, Family};

fn range(s: &str) -> AddrRange {
    AddrRange::parse(s).expect("soak pool")
}

/// Pools the run moves between: grow, shrink (holders stay, out of pool), exclude, regrow.
fn pools() -> Vec<Pool> {
    let base = |v4: &str, v6: &str, avoid: bool| Pool {
        v4: vec![range(v4)],
        v6: vec![range(v6)],
        avoid_buggy_ips: avoid,
        reserved: vec!["192.0.2.0".parse().expect("ip")],
    };
    vec![
        base("192.0.2.0/24", "2001:db8:1::/120", false),
        base("192.0.2.0/25", "2001:db8:1::/121", false),
        base("192.0.2.0/23", "2001:db8:1::/119", true),
        base(
            "192.0.2.64-192.0.2.200",
            "2001:db8:1::40-2001:db8:1::c8",
            false,
        ),
    ]
}

fn run(ops: u64, seed: u64) -> serde_json::Value {
    let pools = pools();
    let mut rng = XorShift(seed);
    let mut ipam = Ipam::new(pools[0].clone()).expect("valid pool");
    // owner id -> address: what the "Services" hold.
    let mut owners: BTreeMap<u64, IpAddr> = BTreeMap::new();
    let (mut next_owner, mut restarts, mut edits, mut exhausted) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    for op in 0..ops {
        match rng.next() % 100 {
            0..=49 => {
                let family = if rng.next().is_multiple_of(2) {
                    Family::V4
                } else {
                    Family::V6
                };
                match ipam.allocate(family) {
                    Ok(addr) => {
                        assert!(
                            !owners.values().any(|a| *a == addr),
                            "op {op}: {addr} handed out twice"
                        );
                        owners.insert(next_owner, addr);
                        next_owner += 1;
                    }
                    Err(_) => exhausted += 1,
                }
            }
            50..=89 => {
                if let Some((&id, &addr)) = owners
                    .iter()
                    .nth((rng.next() as usize) % owners.len().max(1))
                {
                    assert!(
                        ipam.release(addr),
                        "op {op}: {addr} was held but not allocated"
                    );
                    owners.remove(&id);
                }
            }
            90..=95 => {
                let pool = pools[(rng.next() as usize) % pools.len()].clone();
                ipam.set_pool(pool).expect("soak pools are valid");
                edits += 1;
            }
            _ => {
                // A restart: rebuild from what the owners hold, in a shuffled order.
                let mut held: Vec<IpAddr> = owners.values().copied().collect();
                for i in (1..held.len()).rev() {
                    held.swap(i, (rng.next() as usize) % (i + 1));
                }
                let (rebuilt, adoption) =
                    Ipam::with_allocations(ipam.pool().clone(), held).expect("rebuild");
                assert!(
                    adoption.duplicates.is_empty(),
                    "op {op}: duplicates {:?}",
                    adoption.duplicates
                );
                assert_eq!(
                    rebuilt, ipam,
                    "op {op}: a rebuild differs from the running state"
                );
                ipam = rebuilt;
                restarts += 1;
            }
        }
        // Every held address is still allocated: nothing renumbered, nothing lost.
        if op % 97 == 0 {
            assert!(
                owners.values().all(|a| ipam.is_allocated(*a)),
                "op {op}: a held address was lost"
            );
            assert_eq!(
                ipam.allocated().count(),
                owners.len(),
                "op {op}: allocated set differs from holders"
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    serde_json::json!({
        "operations": ops,
        "restarts": restarts,
        "pool_edits": edits,
        "exhausted_allocations": exhausted,
        "held_at_end": owners.len(),
        "seconds": (secs * 1000.0).round() / 1000.0,
        "result": "no address renumbered, lost or handed out twice",
    })
}

#[test]
fn soak_ipam_never_renumbers_across_restarts_and_pool_edits() {
    let long = std::env::var_os("FERROLB_SOAK").is_some();
    let ops = if long { 2_000_000 } else { 20_000 };
    let figures = run(ops, 0x9e37_79b9_7f4a_7c15);
    println!("ipam soak: {figures}");
    if long {
        let path = ferrolb_e2e::results::record(ferrolb_e2e::results::Tier::Soak, "ipam", figures)
            .expect("soak results written");
        println!("written to {}", path.display());
    }
}
