//! Table-driven tests of the IPAM core's behaviour; helpers shared by its submodules.

mod allocation;
mod balanced;
mod pool_changes;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// A pool from range strings of either family.
fn pool(ranges: &[&str]) -> Pool {
    let mut pool = Pool::default();
    for r in ranges {
        let range = AddrRange::parse(r).expect("test range");
        match range.family() {
            Family::V4 => pool.v4.push(range),
            Family::V6 => pool.v6.push(range),
        }
    }
    pool
}

trait PoolExt {
    fn avoiding_buggy(self) -> Pool;
    fn reserving(self, addrs: &[&str]) -> Pool;
}

impl PoolExt for Pool {
    fn avoiding_buggy(mut self) -> Pool {
        self.avoid_buggy_ips = true;
        self
    }

    fn reserving(mut self, addrs: &[&str]) -> Pool {
        self.reserved.extend(ips(addrs));
        self
    }
}

fn ipam(pool: Pool) -> Ipam {
    Ipam::new(pool).expect("valid test pool")
}

/// Allocates until exhausted (at most `limit` times).
fn drain(ipam: &mut Ipam, family: Family, limit: usize) -> Vec<IpAddr> {
    let mut got = Vec::new();
    while got.len() < limit {
        match ipam.allocate(family) {
            Ok(a) => got.push(a),
            Err(Error::Exhausted { family: f }) => {
                assert_eq!(f, family);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    got
}
