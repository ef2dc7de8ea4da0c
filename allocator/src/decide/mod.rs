//! The decisions: pure functions from a [`Snapshot`] to what the cluster should show, and the
//! changes that get it there. No async, no kube client.

mod announce;
pub mod diff;
mod group_status;
pub mod order;
mod plan;
mod select;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::ServiceGroupStatus;
use ferrolb_api::pool::Family;

pub use diff::{Change, diff};
pub use ferrolb_api::servicegroup::selection::{self, Selection};
pub use group_status::{GroupChecks, news as group_news};
pub use order::{Rounds, rounds};
pub use plan::plan;
pub use select::{Settings, auto_select, families, is_ours, named_group};

use crate::observe::ObjKey;

/// Something to tell a user in an Event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Note {
    pub reason: &'static str,
    pub warning: bool,
    pub message: String,
}

impl Note {
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Note {
            reason,
            warning: true,
            message: message.into(),
        }
    }

    pub fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Note {
            reason,
            warning: false,
            message: message.into(),
        }
    }
}

/// What one Service should show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SvcPlan {
    pub key: ObjKey,
    pub uid: String,
    /// `status.loadBalancer.ingress` addresses, in the Service's family order.
    pub ingress: Vec<IpAddr>,
    /// The allocator-written annotations.
    pub annotations: BTreeMap<String, String>,
    /// Standing problems: told once while they last.
    pub problems: Vec<Note>,
    /// Told once, when the Service's writes succeed.
    pub news: Vec<Note>,
    /// The group the addresses come from.
    pub group: Option<String>,
    /// Addresses newly allocated in this pass.
    pub allocated: Vec<IpAddr>,
    /// Why an allocation failed (an Event reason), for the metrics.
    pub failure: Option<&'static str>,
}

/// What one ServiceGroup should show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupPlan {
    pub name: String,
    pub status: ServiceGroupStatus,
    /// The `ferrolb.io/in-use` finalizer belongs on it.
    pub finalizer: bool,
    /// (family, capacity, allocated) for the metrics.
    pub usage: Vec<(Family, u128, u64)>,
}

/// The whole desired state.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub services: Vec<SvcPlan>,
    pub groups: Vec<GroupPlan>,
}
