//! ferrolb's allocator: assigns addresses from ServiceGroup pools to LoadBalancer Services.
//!
//! Layers: [`observe`] (reflectors → a plain snapshot), [`decide`] (pure: snapshot → plan →
//! changes), [`apply`] (the only writer), with the allocation book in [`state`] and the pure
//! IPAM core in [`ipam`]. [`run`] ties them together behind leader election.

pub mod apply;
pub mod decide;
mod error;
pub mod ipam;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod run;
pub mod state;

pub use error::{Backoff, Error, Result};
pub use run::{RunConfig, run};
