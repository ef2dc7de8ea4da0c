//! `kubectl ferrolb migrate --from metallb|purelb FILE`: turns MetalLB and PureLB objects into
//! ferrolb objects and says, for each, what has no equivalent.

mod metallb;
mod purelb;

use std::net::IpAddr;

use ferrolb_api::pool::{AddrRange, Family, SyntaxError, from_u128, non_host_addresses, to_u128};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

/// Where the objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    MetalLb,
    PureLb,
}

/// ferrolb objects and what the reader must know about the conversion.
#[derive(Debug, Default)]
pub struct Migration {
    pub objects: Vec<Value>,
    /// One line each: `<source kind>/<name>: what was not carried over, and what to do`.
    pub notes: Vec<String>,
}

impl Migration {
    fn note(&mut self, object: &str, text: impl Into<String>) {
        self.notes.push(format!("{object}: {}", text.into()));
    }
}

/// Converts the given objects; objects of kinds it does not know are noted and skipped.
pub fn migrate(source: Source, objects: &[Value]) -> Migration {
    match source {
        Source::MetalLb => metallb::migrate(objects),
        Source::PureLb => purelb::migrate(objects),
    }
}

/// An object's `metadata.name` ("?" when it has none), for names and notes.
fn name_of(o: &Value) -> String {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

/// A ferrolb pool entry.
fn pool(subnet: IpNetwork, pool: &str, aggregation: Option<&str>) -> Value {
    let mut p = json!({ "subnet": subnet.to_string(), "pool": pool });
    if let Some(a) = aggregation {
        p["aggregation"] = a.into();
    }
    p
}

/// A ferrolb ServiceGroup of `kind` ("local" or "virtual") with `body` as that section.
fn service_group(name: &str, kind: &str, body: Value, extra: Value) -> Value {
    let mut spec = json!({ kind: body });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "ferrolb.io/v1",
        "kind": "ServiceGroup",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// The smallest CIDR holding every address of `range`.
fn covering_cidr(range: &AddrRange) -> IpNetwork {
    let family = range.family();
    let bits = u32::from(family.bits());
    let (a, b) = (to_u128(range.start), to_u128(range.end));
    let differing = 128 - (a ^ b).leading_zeros();
    let prefix = bits.saturating_sub(differing.min(bits));
    let mask = if differing >= 128 {
        0
    } else {
        !((1u128 << differing) - 1)
    };
    let network = from_u128(family, a & mask).expect("a masked address stays in its family");
    IpNetwork::new(network, prefix as u8).expect("the prefix fits the family")
}

/// The smallest CIDR around `range` whose non-host addresses (IPv4 network and broadcast,
/// IPv6 Subnet-Router anycast; ferrolb never hands them out) are all outside it: the old system
/// may have handed out every address of the range, so none may become unusable.
fn host_safe_cidr(range: &AddrRange) -> IpNetwork {
    let mut net = covering_cidr(range);
    while net.prefix() > 0 && non_host_addresses(net).iter().any(|a| range.contains(*a)) {
        let wider = IpNetwork::new(net.ip(), net.prefix() - 1).expect("a shorter prefix fits");
        net = IpNetwork::new(wider.network(), wider.prefix()).expect("a network of a valid CIDR");
    }
    net
}

/// The addresses of `range` that are the edges of its /`prefix` aggregation blocks (ferrolb
/// reserves them: on `kube-lb0` a kernel takes them for a block's network or broadcast
/// address): how many, and the first few.
fn block_edges(range: &AddrRange, prefix: u8) -> (u128, Vec<IpAddr>) {
    let family = range.family();
    let Ok(block) = IpNetwork::new(range.start, prefix) else {
        return (0, Vec::new());
    };
    if non_host_addresses(block).is_empty() {
        return (0, Vec::new());
    }
    let host_bits = u32::from(family.bits() - prefix);
    let size = 1u128.checked_shl(host_bits).unwrap_or(0);
    if size == 0 {
        return (0, Vec::new());
    }
    let (a, b) = (to_u128(range.start), to_u128(range.end));
    // Multiples of `size` (block starts) in a..=b, and for IPv4 the addresses before them
    // (block ends).
    let count_aligned = |lo: u128, hi: u128| {
        if lo > hi {
            return 0;
        }
        let first = lo.div_ceil(size);
        (hi / size)
            .saturating_sub(first)
            .saturating_add(u128::from(hi / size >= first))
    };
    let mut count = count_aligned(a, b);
    if family == Family::V4 {
        count += count_aligned(a.saturating_add(1), b.saturating_add(1));
    }
    let mut first = Vec::new();
    let mut block_start = a - a % size;
    while first.len() < 3 && block_start <= b {
        let mut edges = vec![block_start];
        if family == Family::V4 {
            edges.push(block_start + size - 1);
        }
        for e in edges.into_iter().filter(|e| (a..=b).contains(e)) {
            if let Some(addr) = from_u128(family, e) {
                first.push(addr);
            }
        }
        match block_start.checked_add(size) {
            Some(next) => block_start = next,
            None => break,
        }
    }
    first.truncate(3);
    (count, first)
}

/// A MetalLB/PureLB address entry ("a-b" or CIDR, possibly with spaces) in ferrolb syntax, and
/// a note when it was rewritten. A CIDR with host bits set stands for its whole network, as
/// both peers read it (Go's `net.ParseCIDR`): `198.51.100.10/24` is `198.51.100.0/24`.
fn parse_entry(entry: &str) -> Option<(AddrRange, String, Option<String>)> {
    let compact: String = entry.chars().filter(|c| !c.is_whitespace()).collect();
    match AddrRange::parse(&compact) {
        Ok(r) => Some((r, compact, None)),
        Err(SyntaxError::HostBitsSet(_, network)) => {
            let r = AddrRange::parse(&network).ok()?;
            let note = format!(
                "{compact} has host bits set; written as {network}, the network it stands for (as the old system read it)"
            );
            Some((r, network, Some(note)))
        }
        Err(_) => None,
    }
}

fn family_of(range: &AddrRange) -> Family {
    Family::of(range.start)
}

fn is_v4(addr: IpAddr) -> bool {
    addr.is_ipv4()
}

#[cfg(test)]
mod tests;
