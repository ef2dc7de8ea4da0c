//! What this node publishes on its per-node Lease and on gossip, from the desired state and
//! the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ferrolb_api::contracts::{HOLDING_LIMIT, eligible_value, gossip, lease};
use ferrolb_api::pool::Family;

use super::desired::{AddressKind, Desired};
use super::interfaces::own_addresses;
use crate::gossip::view::Published;
use crate::snapshot::{Interface, KernelFacts, ServiceAddresses};

/// For each address, the Service (`namespace/name`) an Event about it relates to: the first by
/// name when Services share it. Events of one reason on one Node are one series per related
/// object, so each address's problem gets its own Event instead of counting up under the
/// first one's message.
pub fn services_by_address(services: &[ServiceAddresses]) -> BTreeMap<IpAddr, String> {
    let mut out: BTreeMap<IpAddr, String> = BTreeMap::new();
    for s in services {
        for a in &s.addresses {
            out.entry(*a)
                .and_modify(|k| {
                    if s.key < *k {
                        k.clone_from(&s.key);
                    }
                })
                .or_insert_with(|| s.key.clone());
        }
    }
    out
}

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
    if let Some(address) = gossip_addr(desired, kernel) {
        put(lease::GOSSIP_ADDR, address.to_string());
    }
    if let Some(name) = &desired.local_interface_v4 {
        put(lease::INTERFACE_V4, name.clone());
    }
    if let Some(name) = &desired.local_interface_v6 {
        put(lease::INTERFACE_V6, name.clone());
    }
    put(lease::SUBNETS, join(desired.subnets.iter()));
    let macs = local_macs(desired, kernel);
    put(
        lease::MAC,
        join(macs.iter().map(|(name, mac)| format!("{name}={mac}"))),
    );
    put(lease::ELIGIBLE, eligible_value(desired.eligible));
    put(lease::HOLDING, join(holding.iter().take(HOLDING_LIMIT)));
    if holding.len() > HOLDING_LIMIT {
        put(lease::HOLDING_TRUNCATED, "true".into());
    }
    put(lease::VIRTUAL_COUNT, desired.virtual_count().to_string());
    out
}

/// What this node publishes on gossip: the same facts as its Lease, `h/` keys for `holding`.
pub fn gossip_published(
    desired: &Desired,
    kernel: &KernelFacts,
    holding: &BTreeSet<IpAddr>,
) -> Published {
    Published {
        ineligible: desired.eligible,
        subnets: desired.subnets.clone(),
        macs: local_macs(desired, kernel),
        holding: holding.clone(),
    }
}

/// Where this node gossips: the local interface's own IPv4 address, else its IPv6 address, and
/// the gossip port (the Lease's `gossip-addr`).
pub fn gossip_addr(desired: &Desired, kernel: &KernelFacts) -> Option<SocketAddr> {
    let (v4, v6) = local_interfaces(desired, kernel);
    let address = v4
        .and_then(|i| own_addresses(i, Family::V4).into_iter().next())
        .or_else(|| v6.and_then(|i| own_addresses(i, Family::V6).into_iter().next()))?;
    Some(SocketAddr::new(address, gossip::PORT))
}

fn local_interfaces<'k>(
    desired: &Desired,
    kernel: &'k KernelFacts,
) -> (Option<&'k Interface>, Option<&'k Interface>) {
    let local = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| kernel.interfaces.iter().find(|i| &i.name == n))
    };
    (
        local(&desired.local_interface_v4),
        local(&desired.local_interface_v6),
    )
}

/// The MAC of each local interface, by name.
fn local_macs(desired: &Desired, kernel: &KernelFacts) -> BTreeMap<String, String> {
    let (v4, v6) = local_interfaces(desired, kernel);
    [v4, v6]
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i.name.clone(), mac_text(i.mac.as_deref()?))))
        .collect()
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

/// The local addresses this node holds after a round, as (interface, address): the desired ones
/// whose add or renewal did not fail and that nobody else's copy blocks, and also those whose
/// removal failed or waits for its back-off, which are still on the kernel. What the node
/// publishes as held must never be less than what the kernel has: another node takes an
/// address only after this one stops publishing it (break before make).
pub fn held_local(
    desired: &Desired,
    failed: &BTreeSet<(String, IpAddr)>,
    blocked: &BTreeSet<(String, IpAddr)>,
    not_removed: &BTreeSet<(String, IpAddr)>,
) -> BTreeSet<(String, IpAddr)> {
    desired
        .addresses
        .values()
        .filter(|a| a.kind == AddressKind::Local)
        .map(|a| (a.interface.clone(), a.address))
        .filter(|k| !failed.contains(k) && !blocked.contains(k))
        .chain(
            not_removed
                .iter()
                .filter(|(interface, _)| interface != ferrolb_api::contracts::VIRTUAL_INTERFACE)
                .cloned(),
        )
        .collect()
}
