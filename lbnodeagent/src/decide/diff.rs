//! The changes that turn the kernel's addresses (the ones we own) into the desired ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_api::contracts::IFA_PROTO_FERROLB;

use super::MANAGED_FLAGS;
use super::desired::{Desired, DesiredAddress};
use crate::snapshot::{KernelFacts, Lifetime};

/// An address in the kernel that carries our IFA_PROTO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedAddress {
    pub interface: String,
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub flags: u32,
    pub valid: Lifetime,
    pub preferred: Lifetime,
}

/// What diff reads of the kernel: the addresses we own, the ones we do not (never touched, and
/// never stacked upon), and the interface names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: BTreeSet<String>,
    pub owned: Vec<OwnedAddress>,
    /// (interface, address) of every address without our IFA_PROTO.
    pub foreign: BTreeSet<(String, IpAddr)>,
}

impl Observed {
    pub fn from_kernel(kernel: &KernelFacts) -> Self {
        let mut observed = Observed::default();
        for interface in &kernel.interfaces {
            observed.links.insert(interface.name.clone());
            for a in &interface.addresses {
                if a.proto == IFA_PROTO_FERROLB {
                    observed.owned.push(OwnedAddress {
                        interface: interface.name.clone(),
                        index: interface.index,
                        address: a.address,
                        prefix_len: a.prefix_len,
                        flags: a.flags,
                        valid: a.valid,
                        preferred: a.preferred,
                    });
                } else {
                    observed.foreign.insert((interface.name.clone(), a.address));
                }
            }
        }
        observed
    }
}

/// One step of [`crate::apply::apply`], in the order [`diff`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create the virtual interface (dummy, or ifb where the kernel lacks dummy).
    CreateVirtualInterface(String),
    /// Remove an address we own (break before make: removals come before additions).
    Remove(OwnedAddress),
    /// Add an address that is not there (exclusive: never takes over an address someone else
    /// added between our dump and this request).
    Add(DesiredAddress),
    /// Re-assert an address we own: its lifetimes (and IPv6 flags) are set again.
    Renew(DesiredAddress),
    /// Remove the virtual interface after the drain.
    RemoveVirtualInterface(String),
}

impl Change {
    /// The address it adds, renews or removes; `None` for a link change.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Change::Remove(o) => Some(o.address),
            Change::Add(d) | Change::Renew(d) => Some(d.address),
            Change::CreateVirtualInterface(_) | Change::RemoveVirtualInterface(_) => None,
        }
    }
}

/// As in log lines: `add eth0 192.0.2.10/24`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateVirtualInterface(n) => write!(f, "create {n}"),
            Change::RemoveVirtualInterface(n) => write!(f, "remove link {n}"),
            Change::Remove(o) => write!(f, "remove {} {}/{}", o.interface, o.address, o.prefix_len),
            Change::Add(d) => write!(f, "add {} {}/{}", d.interface, d.address, d.prefix_len),
            Change::Renew(d) => write!(f, "renew {} {}/{}", d.interface, d.address, d.prefix_len),
        }
    }
}

/// The changes from `observed` to `desired`. Only addresses with our IFA_PROTO are removed or
/// renewed; an owned address with the wrong prefix, flags or interface is removed and added
/// again; a desired address someone else already put on that interface is left alone (see
/// [`blocked`]).
pub fn diff(desired: &Desired, observed: &Observed) -> Vec<Change> {
    let mut creates = Vec::new();
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    let mut renews = Vec::new();
    let mut link_removes = Vec::new();

    if desired.keep_virtual_interface && !observed.links.contains(&desired.virtual_interface) {
        creates.push(Change::CreateVirtualInterface(
            desired.virtual_interface.clone(),
        ));
    }

    // A desired address is satisfied by at most one owned address; any other copy goes.
    let mut satisfied: BTreeMap<(String, IpAddr), &DesiredAddress> = BTreeMap::new();
    for owned in &observed.owned {
        let key = (owned.interface.clone(), owned.address);
        match desired.addresses.get(&key) {
            Some(want) if !satisfied.contains_key(&key) && matches(want, owned) => {
                if renewal_needed(want, owned) {
                    renews.push(Change::Renew(want.clone()));
                }
                satisfied.insert(key, want);
            }
            _ => removes.push(Change::Remove(owned.clone())),
        }
    }
    for (key, want) in &desired.addresses {
        if !satisfied.contains_key(key) && !observed.foreign.contains(key) {
            adds.push(Change::Add(want.clone()));
        }
    }

    if !desired.keep_virtual_interface && observed.links.contains(&desired.virtual_interface) {
        link_removes.push(Change::RemoveVirtualInterface(
            desired.virtual_interface.clone(),
        ));
    }

    removes.sort_by_key(sort_key);
    renews.sort_by_key(sort_key);
    let mut changes = creates;
    changes.extend(removes);
    changes.extend(adds);
    changes.extend(renews);
    changes.extend(link_removes);
    changes
}

fn sort_key(change: &Change) -> (String, IpAddr, u8) {
    match change {
        Change::Remove(o) => (o.interface.clone(), o.address, o.prefix_len),
        Change::Add(d) | Change::Renew(d) => (d.interface.clone(), d.address, d.prefix_len),
        Change::CreateVirtualInterface(n) | Change::RemoveVirtualInterface(n) => {
            (n.clone(), IpAddr::from([0u8; 4]), 0)
        }
    }
}

/// Desired addresses that someone else's address (same interface, same address, without our
/// IFA_PROTO) keeps out: worth an Event, since the node does not announce them.
pub fn blocked<'d>(desired: &'d Desired, observed: &Observed) -> Vec<&'d DesiredAddress> {
    desired
        .addresses
        .iter()
        .filter(|(key, _)| observed.foreign.contains(key))
        .map(|(_, want)| want)
        .collect()
}

fn matches(want: &DesiredAddress, owned: &OwnedAddress) -> bool {
    want.prefix_len == owned.prefix_len && (owned.flags & MANAGED_FLAGS) == want.flags
}

fn renewal_needed(want: &DesiredAddress, owned: &OwnedAddress) -> bool {
    let valid = match (want.valid, owned.valid) {
        (Lifetime::Forever, Lifetime::Forever) => false,
        (Lifetime::Seconds(lifetime), Lifetime::Seconds(left)) => renewal_due(lifetime, left),
        _ => true,
    };
    let preferred = match want.preferred {
        Lifetime::Forever => owned.preferred != Lifetime::Forever,
        Lifetime::Seconds(0) => owned.preferred != Lifetime::Seconds(0),
        // A preferred lifetime equal to the valid one runs down with it and is renewed with it.
        Lifetime::Seconds(_) => owned.preferred == Lifetime::Forever,
    };
    valid || preferred
}

/// A local address with valid lifetime `lifetime` and `left` seconds remaining is renewed once
/// a third of its lifetime has passed, or when it has more left than the lifetime (the setting
/// was shortened).
pub fn renewal_due(lifetime: u32, left: u32) -> bool {
    left > lifetime || 3 * u64::from(lifetime - left) >= u64::from(lifetime)
}

/// How often the agent should look at its local addresses so that each is renewed every third
/// of its lifetime.
pub fn renewal_period(lifetime: u32) -> Duration {
    Duration::from_millis(u64::from(lifetime) * 1000 / 3)
}
