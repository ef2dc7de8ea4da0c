//! ferrolb's allocator: assigns addresses from ServiceGroup pools to LoadBalancer Services.

pub mod ipam;
