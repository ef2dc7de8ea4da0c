//! The allocator binary against a real API server: each test runs its own allocator process,
//! scoped to the test's namespace and ServiceGroups, on the control plane shared by this binary.

mod allocation;
mod announcing;
mod backoff;
mod election;
mod groups;
mod ha;
mod migrated;
mod node_leases;
mod restart;
mod sharing;
mod support;
mod tenancy;
mod told;
