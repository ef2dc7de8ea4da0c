//! Apply: carries out the changes `decide::diff` returns, with netlink, and reports each one;
//! the per-node Lease and the agent's Events are written here too.

mod events;
mod lease;

pub use events::NodeEvents;
pub use lease::LeasePublisher;

use std::collections::BTreeMap;

use ferrolb_api::contracts::IFA_PROTO_FERROLB;
use nix::errno::Errno;
use tracing::{info, warn};

use crate::decide::{Change, DesiredAddress};
use crate::netlink::{AddressSpec, Netlink, Write};
use crate::{Error, Result};

/// How one change went.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// A removal found nothing to remove.
    AlreadyGone,
    /// An addition found the address there already (EEXIST): someone else's, or ours added
    /// since the dump. Left alone; the next round sees which.
    AlreadyThere,
    Failed(Error),
}

#[derive(Debug)]
pub struct Applied {
    pub change: Change,
    pub outcome: Outcome,
}

impl Applied {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// Carries out `changes` in order. A change that fails does not stop the others (each address
/// is independent); the report says what happened to each.
pub async fn apply(netlink: &Netlink, changes: &[Change]) -> Vec<Applied> {
    let mut indexes = Indexes::default();
    let mut report = Vec::with_capacity(changes.len());
    for change in changes {
        let outcome = match one(netlink, &mut indexes, change).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(e),
        };
        match &outcome {
            Outcome::Failed(e) => warn!(change = %change, error = %e, "change failed"),
            Outcome::AlreadyThere => {
                warn!(change = %change, "address already there, not ours: left alone")
            }
            Outcome::Done | Outcome::AlreadyGone => info!(change = %change, ?outcome, "applied"),
        }
        report.push(Applied {
            change: change.clone(),
            outcome,
        });
    }
    report
}

async fn one(netlink: &Netlink, indexes: &mut Indexes, change: &Change) -> Result<Outcome> {
    match change {
        Change::CreateVirtualInterface(name) => {
            indexes.forget(name);
            netlink.ensure_virtual_interface(name).await?;
            Ok(Outcome::Done)
        }
        Change::RemoveVirtualInterface(name) => {
            indexes.forget(name);
            Ok(if netlink.delete_link(name).await? {
                Outcome::Done
            } else {
                Outcome::AlreadyGone
            })
        }
        Change::Remove(owned) => {
            match netlink
                .delete_address(owned.index, owned.address, owned.prefix_len)
                .await
            {
                Ok(()) => Ok(Outcome::Done),
                Err(e) if is_gone(&e) => Ok(Outcome::AlreadyGone),
                Err(e) => Err(e),
            }
        }
        Change::Add(want) => {
            let spec = spec(netlink, indexes, want).await?;
            match netlink.write_address(&spec, Write::Create).await {
                Ok(()) => Ok(Outcome::Done),
                Err(e) if e.errno() == Some(Errno::EEXIST) => Ok(Outcome::AlreadyThere),
                Err(e) => Err(e),
            }
        }
        Change::Renew(want) => {
            let spec = spec(netlink, indexes, want).await?;
            netlink.write_address(&spec, Write::Replace).await?;
            Ok(Outcome::Done)
        }
    }
}

/// The kernel says EADDRNOTAVAIL for an address that is not there, ENODEV for a link that is
/// not; ENOENT is matched too for safety.
fn is_gone(e: &Error) -> bool {
    matches!(
        e.errno(),
        Some(Errno::EADDRNOTAVAIL | Errno::ENOENT | Errno::ENODEV)
    )
}

async fn spec(
    netlink: &Netlink,
    indexes: &mut Indexes,
    want: &DesiredAddress,
) -> Result<AddressSpec> {
    Ok(AddressSpec {
        index: indexes.get(netlink, &want.interface).await?,
        address: want.address,
        prefix_len: want.prefix_len,
        flags: want.flags,
        proto: IFA_PROTO_FERROLB,
        valid: want.valid,
        preferred: want.preferred,
    })
}

/// Interface indexes by name, looked up once per apply.
#[derive(Default)]
struct Indexes(BTreeMap<String, u32>);

impl Indexes {
    async fn get(&mut self, netlink: &Netlink, name: &str) -> Result<u32> {
        if let Some(index) = self.0.get(name) {
            return Ok(*index);
        }
        let index = netlink
            .link_index(name)
            .await?
            .ok_or_else(|| Error::NoSuchInterface(name.into()))?;
        self.0.insert(name.into(), index);
        Ok(index)
    }

    fn forget(&mut self, name: &str) {
        self.0.remove(name);
    }
}
