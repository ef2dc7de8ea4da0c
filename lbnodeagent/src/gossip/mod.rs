//! Membership over chitchat on the node's LAN: who is alive, eligible, and holds what.

pub mod auth;
pub mod leases;
pub mod membership;
pub mod replay;
pub mod view;
