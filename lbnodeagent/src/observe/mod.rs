//! Observe: cluster objects (as reflector stores hold them) and kernel dumps, as a plain snapshot.

mod cluster;
mod kernel;

pub use cluster::{group, groups, node_facts, ready_endpoint_nodes, services};
pub use kernel::kernel_facts;
