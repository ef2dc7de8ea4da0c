//! `kubectl ferrolb migrate --from metallb|purelb FILE`: turns MetalLB and PureLB objects into
//! ferrolb objects and says, for each, what has no equivalent.

mod metallb;
mod purelb;

use std::net::IpAddr;

use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};
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

/// A MetalLB/PureLB address entry ("a-b" or CIDR, possibly with spaces) in ferrolb syntax.
fn parse_entry(entry: &str) -> Option<(AddrRange, String)> {
    let compact: String = entry.chars().filter(|c| !c.is_whitespace()).collect();
    AddrRange::parse(&compact).ok().map(|r| (r, compact))
}

fn family_of(range: &AddrRange) -> Family {
    Family::of(range.start)
}

fn is_v4(addr: IpAddr) -> bool {
    addr.is_ipv4()
}

#[cfg(test)]
mod tests;
