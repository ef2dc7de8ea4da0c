//! What this node publishes on its per-node Lease, from the desired state and the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ferrolb_api::contracts::{HOLDING_LIMIT, eligible_value, gossip, lease};
use ferrolb_api::pool::Family;

use super::desired::Desired;
use super::interfaces::own_addresses;
use crate::snapshot::KernelFacts;

/// The Lease annotations: `holding` lists the local addresses the node really carries (the
/// caller leaves out those it failed to add), at most [`HOLDING_LIMIT`] of them.
pub fn lease_annotations(
    desired: &Desired,
    kernel: &KernelFacts,
    holding: &BTreeSet<IpAddr>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        out.insert(key.to_string(), value);
    };
    let local = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| kernel.interfaces.iter().find(|i| &i.name == n))
    };
    let v4 = local(&desired.local_interface_v4);
    let v6 = local(&desired.local_interface_v6);
    let gossip_addr = v4
        .and_then(|i| own_addresses(i, Family::V4).into_iter().next())
        .or_else(|| v6.and_then(|i| own_addresses(i, Family::V6).into_iter().next()));
    if let Some(address) = gossip_addr {
        put(
            lease::GOSSIP_ADDR,
            SocketAddr::new(address, gossip::PORT).to_string(),
        );
    }
    if let Some(name) = &desired.local_interface_v4 {
        put(lease::INTERFACE_V4, name.clone());
    }
    if let Some(name) = &desired.local_interface_v6 {
        put(lease::INTERFACE_V6, name.clone());
    }
    put(lease::SUBNETS, join(desired.subnets.iter()));
    let macs: BTreeSet<String> = [v4, v6]
        .into_iter()
        .flatten()
        .filter_map(|i| Some(format!("{}={}", i.name, mac_text(i.mac.as_deref()?))))
        .collect();
    put(lease::MAC, join(macs.iter()));
    put(lease::ELIGIBLE, eligible_value(desired.eligible));
    put(lease::HOLDING, join(holding.iter().take(HOLDING_LIMIT)));
    if holding.len() > HOLDING_LIMIT {
        put(lease::HOLDING_TRUNCATED, "true".into());
    }
    put(lease::VIRTUAL_COUNT, desired.virtual_count().to_string());
    out
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
