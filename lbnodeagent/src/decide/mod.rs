//! Pure decisions: which addresses this node should carry, and the changes that get it there.
//!
//! No I/O, no async: `desired(snapshot, holds)` and `diff(desired, observed)` are functions of
//! plain values, so every rule of DESIGN.md "lbnodeagent" is tested here with tables.

mod config;
mod desired;
mod diff;
mod eligibility;
mod interfaces;
mod published;
mod retry;
mod strict_arp;

#[cfg(test)]
mod tests;

pub use config::{Rejected, Selection, agent_config};
pub use desired::{
    AddressKind, Desired, DesiredAddress, Holds, SkipReason, Skipped, desired, holds_every_address,
};
pub use diff::{Change, Observed, OwnedAddress, blocked, diff, renewal_due, renewal_period};
pub use eligibility::{local_eligibility, virtual_eligibility};
pub use interfaces::{
    local_interface, node_subnets, offered_subnets, own_macs, owned_local_addresses,
};
pub use published::{
    gossip_addr, gossip_published, held_local, lease_annotations, mac_text, services_by_address,
};
pub use retry::{BACKOFF_MAX, BACKOFF_MIN, Retries};
pub use strict_arp::{KUBE_IPVS_INTERFACE, StrictArp, applied_note, strict_arp};

/// `IFA_F_NODAD`: IPv6 addresses are usable at once; the election, not DAD, prevents duplicates.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_NOPREFIXROUTE`: a local address adds no route; the node's own address has it already.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;
/// The address flags the agent sets and so compares; the kernel adds others (secondary, ...).
pub const MANAGED_FLAGS: u32 = IFA_F_NODAD | IFA_F_NOPREFIXROUTE;
