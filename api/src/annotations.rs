//! Annotation names on Services, with the PureLB and MetalLB aliases we read.

/// Picks the ServiceGroup.
pub const SERVICE_GROUP: &str = "ferrolb.io/service-group";
pub const SERVICE_GROUP_ALIASES: &[&str] = &[
    "purelb.io/service-group",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];

/// Requested addresses, comma separated, at most one per family.
pub const ADDRESSES: &str = "ferrolb.io/addresses";
pub const ADDRESSES_ALIASES: &[&str] = &[
    "purelb.io/addresses",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];

/// Sharing key.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
pub const ALLOW_SHARED_IP_ALIASES: &[&str] = &[
    "purelb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];

/// Written by the allocator: always `ferrolb`.
pub const ALLOCATED_BY: &str = "ferrolb.io/allocated-by";
pub const ALLOCATED_BY_VALUE: &str = "ferrolb";
/// Written by the allocator: the ServiceGroup's name.
pub const ALLOCATED_FROM: &str = "ferrolb.io/allocated-from";
/// Written by the allocator: `local` or `virtual`.
pub const POOL_TYPE: &str = "ferrolb.io/pool-type";
/// Written by the allocator from the per-node Leases.
pub const ANNOUNCING_IPV4: &str = "ferrolb.io/announcing-IPv4";
pub const ANNOUNCING_IPV6: &str = "ferrolb.io/announcing-IPv6";
