//! ferrolb's node agent: decides which addresses this node carries and puts them in the kernel.

pub mod apply;
pub mod conflict;
pub mod decide;
pub mod gossip;
pub mod gratuitous;
pub mod health;
pub mod metrics;
pub mod netlink;
pub mod observe;
pub mod run;
pub mod snapshot;

mod error;

pub use error::{Error, Result};
