//! The local interface per family, and the subnets this node offers on it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::contracts::IFA_PROTO_FERROLB;
use ferrolb_api::pool::Family;
use ipnetwork::IpNetwork;

use crate::snapshot::{AgentConfig, Interface, InterfaceAddress, KernelFacts, LocalInterface};

/// The interface local addresses of `family` go on: the interface of the default route with
/// the lowest metric (ties: lowest interface index), or the first interface by index whose name
/// the configured regex matches (unanchored, as Go's and PureLB's `MatchString`), preferring one
/// that carries an address of the family. Loopback and the virtual interface are never local.
pub fn local_interface<'k>(
    kernel: &'k KernelFacts,
    config: &AgentConfig,
    family: Family,
) -> Option<&'k Interface> {
    match &config.local_interface {
        LocalInterface::DefaultRoute => kernel
            .default_routes
            .iter()
            .filter(|r| r.family == family)
            .min_by_key(|r| (r.metric, r.interface_index))
            .and_then(|r| {
                kernel
                    .interfaces
                    .iter()
                    .find(|i| i.index == r.interface_index)
            }),
        LocalInterface::Matching(regex) => {
            let mut matching = kernel
                .interfaces
                .iter()
                .filter(|i| i.name != "lo" && i.name != config.virtual_interface)
                .filter(|i| regex.is_match(&i.name))
                .collect::<Vec<_>>();
            matching.sort_by_key(|i| i.index);
            matching
                .iter()
                .find(|i| i.addresses.iter().any(|a| offers(a, family)))
                .or(matching.first())
                .copied()
        }
    }
}

/// An address the node itself has (not one of ours, not IPv6 link-local) of `family`: its
/// subnet is one the node offers.
fn offers(addr: &InterfaceAddress, family: Family) -> bool {
    Family::of(addr.address) == family
        && addr.proto != IFA_PROTO_FERROLB
        && !is_link_local(addr.address)
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    }
}

/// The subnets (networks of the node's own addresses) on an interface, for `family`.
pub fn offered_subnets(interface: &Interface, family: Family) -> BTreeSet<IpNetwork> {
    interface
        .addresses
        .iter()
        .filter(|a| offers(a, family))
        .filter_map(|a| IpNetwork::new(a.address, a.prefix_len).ok())
        .filter_map(|n| IpNetwork::new(n.network(), n.prefix()).ok())
        .collect()
}

/// The node's own addresses (not ours, not IPv6 link-local) of `family` on an interface, in the
/// kernel's order (the first is the primary).
pub(crate) fn own_addresses(interface: &Interface, family: Family) -> Vec<IpAddr> {
    interface
        .addresses
        .iter()
        .filter(|a| offers(a, family))
        .map(|a| a.address)
        .collect()
}

/// The interface whose own addresses (see [`own_addresses`]) are `own` carries one inside
/// `subnet`. Our own addresses do not count: otherwise an address would keep its subnet alive
/// after the node's own address went away. The caller lists `own` once per round: the
/// interface may carry thousands of our addresses, and this is asked for each of them.
pub(crate) fn carries_subnet(own: &[IpAddr], subnet: IpNetwork) -> bool {
    own.iter().any(|a| subnet.contains(*a))
}

/// Both local interfaces (v4, v6), each at most once.
fn local_interfaces<'k>(kernel: &'k KernelFacts, config: &AgentConfig) -> Vec<&'k Interface> {
    let v4 = local_interface(kernel, config, Family::V4);
    let v6 = local_interface(kernel, config, Family::V6);
    let mut out: Vec<&Interface> = v4.into_iter().collect();
    out.extend(v6.filter(|i| v4.is_none_or(|v| v.index != i.index)));
    out
}

/// The subnets this node offers: those of its own addresses on its local interfaces.
pub fn node_subnets(kernel: &KernelFacts, config: &AgentConfig) -> BTreeSet<IpNetwork> {
    let v4 = local_interface(kernel, config, Family::V4);
    let v6 = local_interface(kernel, config, Family::V6);
    v4.map(|i| offered_subnets(i, Family::V4))
        .into_iter()
        .chain(v6.map(|i| offered_subnets(i, Family::V6)))
        .flatten()
        .collect()
}

/// The addresses this agent added (IFA_PROTO [`IFA_PROTO_FERROLB`]) that are on a local
/// interface now: the local addresses it holds in the kernel's eyes.
pub fn owned_local_addresses(kernel: &KernelFacts, config: &AgentConfig) -> BTreeSet<IpAddr> {
    local_interfaces(kernel, config)
        .into_iter()
        .flat_map(|i| &i.addresses)
        .filter(|a| a.proto == IFA_PROTO_FERROLB)
        .map(|a| a.address)
        .collect()
}

/// The MAC of every interface of this node (Ethernet-sized, not all zeros as loopback's): an
/// answer to a probe from one of them is the node itself, never a conflict. A second port on
/// the local interface's LAN answers ARP for the node's addresses (Linux answers for any local
/// address on any interface unless `arp_ignore` says otherwise).
pub fn own_macs(kernel: &KernelFacts) -> BTreeSet<[u8; 6]> {
    kernel
        .interfaces
        .iter()
        .filter_map(|i| <[u8; 6]>::try_from(i.mac.as_deref()?).ok())
        .filter(|mac| mac.iter().any(|&b| b != 0))
        .collect()
}
