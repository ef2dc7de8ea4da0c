//! Observe: cluster objects (as reflector stores hold them) and kernel dumps, as a plain snapshot.

mod cluster;
mod kernel;

pub use cluster::{
    StoredService, group, groups, node_facts, ready_endpoint_nodes, services, strip_endpoint_slice,
    strip_node,
};
pub use kernel::kernel_facts;
