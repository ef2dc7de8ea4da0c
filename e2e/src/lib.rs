//! ferrolb's test world: a real control plane, namespaced nodes and real routers, for tests,
//! benchmarks, soak runs and `make demo`.

pub mod catalogue;
pub mod cluster;
pub mod controlplane;
pub mod env;
pub mod kubelet;
pub mod process;
pub mod results;
pub mod rng;
pub mod routing;
pub mod topology;
pub mod world;
