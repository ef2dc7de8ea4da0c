//! The addresses this node should carry, from a snapshot of the cluster and the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::contracts::IneligibleReason;
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::GroupType;
use ipnetwork::IpNetwork;

use super::interfaces::{carries_subnet, local_interface, offered_subnets, own_addresses};
use super::{IFA_F_NODAD, IFA_F_NOPREFIXROUTE, local_eligibility, virtual_eligibility};
use crate::snapshot::{
    Group, GroupPool, Interface, Lifecycle, Lifetime, ServiceAddresses, Snapshot,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKind {
    /// On the local interface, held by one elected node.
    Local,
    /// On the virtual interface of every eligible node, exported by BIRD.
    Virtual,
}

/// One address as it should be in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub kind: AddressKind,
    /// `IFA_F_*` flags, a subset of [`super::MANAGED_FLAGS`].
    pub flags: u32,
    pub valid: Lifetime,
    pub preferred: Lifetime,
}

/// Why an address of a Service is not on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The ServiceGroup named by `ferrolb.io/allocated-from` does not exist (or has no type).
    UnknownGroup,
    /// No pool of the group has a subnet that contains the address.
    OutsideGroup,
    NotEligible(IneligibleReason),
    NoLocalInterface(Family),
    /// The local interface has no address of its own in the pool's subnet.
    SubnetNotOnLocalInterface {
        interface: String,
        subnet: IpNetwork,
    },
    /// `externalTrafficPolicy: Local` and no ready endpoint on this node.
    NoReadyLocalEndpoint,
    /// Another node holds it.
    NotHolder,
    /// The aggregation is longer than the family allows (the CRD refuses that).
    InvalidAggregation(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub service: String,
    pub address: IpAddr,
    pub why: SkipReason,
}

/// What this node should look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// By (interface, address).
    pub addresses: BTreeMap<(String, IpAddr), DesiredAddress>,
    /// Eligibility for local addresses, as published: `None` is eligible.
    pub eligible: Option<IneligibleReason>,
    pub local_interface_v4: Option<String>,
    pub local_interface_v6: Option<String>,
    /// Subnets on the local interfaces, as published.
    pub subnets: BTreeSet<IpNetwork>,
    /// The virtual interface's name, and whether it should exist (not after the drain).
    pub virtual_interface: String,
    pub keep_virtual_interface: bool,
    /// Every Service address not on this node, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Desired {
    /// Local addresses this node holds, sorted (the Lease's `holding`).
    pub fn holding(&self) -> Vec<IpAddr> {
        let set: BTreeSet<IpAddr> = self
            .addresses
            .values()
            .filter(|a| a.kind == AddressKind::Local)
            .map(|a| a.address)
            .collect();
        set.into_iter().collect()
    }

    pub fn virtual_count(&self) -> usize {
        self.addresses
            .values()
            .filter(|a| a.kind == AddressKind::Virtual)
            .count()
    }
}

/// Says whether this node holds a local address it is a candidate for. The second argument is
/// `Some(nodes with a ready endpoint)` for a Service with `externalTrafficPolicy: Local`, whose
/// candidates are those nodes only.
pub type Holds<'a> = dyn Fn(&IpAddr, Option<&BTreeSet<String>>) -> bool + 'a;

/// The holder rule without an election: this node holds every local address whose subnet it
/// has (tests of one node).
pub fn holds_every_address(_: &IpAddr, _: Option<&BTreeSet<String>>) -> bool {
    true
}

/// The addresses this node should carry. `holds` says whether this node is the holder of a
/// local address among the candidates (it is asked only when this node is a candidate).
pub fn desired(snapshot: &Snapshot, holds: &Holds<'_>) -> Desired {
    let v4 = local_interface(&snapshot.kernel, &snapshot.config, Family::V4);
    let v6 = local_interface(&snapshot.kernel, &snapshot.config, Family::V6);
    let locals: Vec<&Interface> = [v4, v6].into_iter().flatten().collect();
    let ctx = Context {
        snapshot,
        holds,
        v4,
        v6,
        own_v4: v4.map(|i| own_addresses(i, Family::V4)).unwrap_or_default(),
        own_v6: v6.map(|i| own_addresses(i, Family::V6)).unwrap_or_default(),
        eligible: local_eligibility(
            &snapshot.node,
            &snapshot.config,
            snapshot.lifecycle,
            &locals,
        ),
        virtual_eligible: virtual_eligibility(&snapshot.node, &snapshot.config, snapshot.lifecycle),
    };
    let mut out = Desired {
        addresses: BTreeMap::new(),
        eligible: ctx.eligible,
        local_interface_v4: v4.map(|i| i.name.clone()),
        local_interface_v6: v6.map(|i| i.name.clone()),
        subnets: v4
            .map(|i| offered_subnets(i, Family::V4))
            .into_iter()
            .chain(v6.map(|i| offered_subnets(i, Family::V6)))
            .flatten()
            .collect(),
        virtual_interface: snapshot.config.virtual_interface.clone(),
        keep_virtual_interface: snapshot.lifecycle != Lifecycle::Drained,
        skipped: Vec::new(),
    };
    let mut services: Vec<&ServiceAddresses> = snapshot.services.iter().collect();
    services.sort_by(|a, b| a.key.cmp(&b.key));
    for service in services {
        for &address in &service.addresses {
            match ctx.place(service, address) {
                Ok(want) => {
                    out.addresses
                        .entry((want.interface.clone(), want.address))
                        .or_insert(want);
                }
                Err(why) => out.skipped.push(Skipped {
                    service: service.key.clone(),
                    address,
                    why,
                }),
            }
        }
    }
    out
}

struct Context<'s> {
    snapshot: &'s Snapshot,
    holds: &'s Holds<'s>,
    v4: Option<&'s Interface>,
    v6: Option<&'s Interface>,
    /// The node's own addresses on the local interface of each family.
    own_v4: Vec<IpAddr>,
    own_v6: Vec<IpAddr>,
    eligible: Option<IneligibleReason>,
    virtual_eligible: Option<IneligibleReason>,
}

impl Context<'_> {
    fn place(
        &self,
        service: &ServiceAddresses,
        address: IpAddr,
    ) -> Result<DesiredAddress, SkipReason> {
        let group = self
            .snapshot
            .groups
            .get(&service.group)
            .ok_or(SkipReason::UnknownGroup)?;
        let pool = pool_for(group, address).ok_or(SkipReason::OutsideGroup)?;
        match group.kind {
            GroupType::Local => self.local(service, address, pool),
            GroupType::Virtual => self.virtual_(service, address, pool),
        }
    }

    fn has_ready_endpoint(&self, service: &ServiceAddresses) -> bool {
        !service.local_traffic_policy
            || service
                .ready_endpoint_nodes
                .contains(&self.snapshot.node.name)
    }

    fn local(
        &self,
        service: &ServiceAddresses,
        address: IpAddr,
        pool: &GroupPool,
    ) -> Result<DesiredAddress, SkipReason> {
        if let Some(reason) = self.eligible {
            return Err(SkipReason::NotEligible(reason));
        }
        let family = Family::of(address);
        let (interface, own) = match family {
            Family::V4 => (self.v4, &self.own_v4),
            Family::V6 => (self.v6, &self.own_v6),
        };
        let interface = interface.ok_or(SkipReason::NoLocalInterface(family))?;
        if !carries_subnet(own, pool.subnet) {
            return Err(SkipReason::SubnetNotOnLocalInterface {
                interface: interface.name.clone(),
                subnet: pool.subnet,
            });
        }
        if !self.has_ready_endpoint(service) {
            return Err(SkipReason::NoReadyLocalEndpoint);
        }
        let endpoint_nodes = service
            .local_traffic_policy
            .then_some(&service.ready_endpoint_nodes);
        if !(self.holds)(&address, endpoint_nodes) {
            return Err(SkipReason::NotHolder);
        }
        let lifetime = Lifetime::Seconds(self.snapshot.config.local_address_lifetime);
        let (flags, preferred) = match family {
            Family::V4 => (IFA_F_NOPREFIXROUTE, lifetime),
            // Preferred 0: never chosen as a source address.
            Family::V6 => (IFA_F_NOPREFIXROUTE | IFA_F_NODAD, Lifetime::Seconds(0)),
        };
        Ok(DesiredAddress {
            interface: interface.name.clone(),
            address,
            prefix_len: pool.subnet.prefix(),
            kind: AddressKind::Local,
            flags,
            valid: lifetime,
            preferred,
        })
    }

    fn virtual_(
        &self,
        service: &ServiceAddresses,
        address: IpAddr,
        pool: &GroupPool,
    ) -> Result<DesiredAddress, SkipReason> {
        if let Some(reason) = self.virtual_eligible {
            return Err(SkipReason::NotEligible(reason));
        }
        if !self.has_ready_endpoint(service) {
            return Err(SkipReason::NoReadyLocalEndpoint);
        }
        let family = Family::of(address);
        let prefix_len = pool.aggregation.prefix_for(pool.subnet);
        if prefix_len > family.bits() {
            return Err(SkipReason::InvalidAggregation(prefix_len));
        }
        Ok(DesiredAddress {
            interface: self.snapshot.config.virtual_interface.clone(),
            address,
            prefix_len,
            kind: AddressKind::Virtual,
            // The prefix route stays: it is what BIRD exports.
            flags: match family {
                Family::V4 => 0,
                Family::V6 => IFA_F_NODAD,
            },
            valid: Lifetime::Forever,
            preferred: Lifetime::Forever,
        })
    }
}

/// The pool an address belongs to: the first whose range contains it, else (an allocation kept
/// after the range shrank) the first whose subnet contains it.
fn pool_for(group: &Group, address: IpAddr) -> Option<&GroupPool> {
    group
        .pools
        .iter()
        .find(|p| p.range.contains(address) && p.subnet.contains(address))
        .or_else(|| group.pools.iter().find(|p| p.subnet.contains(address)))
}
