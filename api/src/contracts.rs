//! The Contracts table of DESIGN.md: every shared name, port, key and number, in one place.

use std::time::Duration;

/// API group of ferrolb's CRDs.
pub const GROUP: &str = "ferrolb.io";
/// API version of ferrolb's CRDs.
pub const VERSION: &str = "v1";
/// Namespace ferrolb is installed in; per-node Leases and the allocator Lease live here.
pub const INSTALL_NAMESPACE: &str = "ferrolb-system";
/// `spec.loadBalancerClass` that selects ferrolb.
pub const LOAD_BALANCER_CLASS: &str = "ferrolb.io/ferrolb";
/// The ServiceGroup used when a Service names none.
pub const DEFAULT_SERVICE_GROUP: &str = "default";
/// The LBNodeAgent that applies to every node no other LBNodeAgent selects.
pub const DEFAULT_LBNODEAGENT: &str = "default";

/// Field manager of the allocator's server-side apply patches.
pub const FIELD_MANAGER_ALLOCATOR: &str = "ferrolb-allocator";
/// Field manager of the agent's server-side apply patches.
pub const FIELD_MANAGER_AGENT: &str = "ferrolb-agent";

/// Finalizer on a ServiceGroup that Services use.
pub const FINALIZER_IN_USE: &str = "ferrolb.io/in-use";

/// The allocator's leader-election Lease (in [`INSTALL_NAMESPACE`]).
pub const ALLOCATOR_LEASE: &str = "ferrolb-allocator";
pub const ALLOCATOR_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const ALLOCATOR_RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const ALLOCATOR_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Prefix of a node's Lease: `ferrolb-node-<node name>` in [`INSTALL_NAMESPACE`].
pub const NODE_LEASE_PREFIX: &str = "ferrolb-node-";
pub const NODE_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const NODE_LEASE_RENEW: Duration = Duration::from_secs(5);

/// Name of the per-node Lease of `node`.
pub fn node_lease_name(node: &str) -> String {
    format!("{NODE_LEASE_PREFIX}{node}")
}

/// Annotations on the per-node Lease.
pub mod lease {
    /// The node's LAN address and gossip port, `address:7947`.
    pub const GOSSIP_ADDR: &str = "ferrolb.io/gossip-addr";
    /// The node's local interface for IPv4.
    pub const INTERFACE_V4: &str = "ferrolb.io/interface-v4";
    /// The node's local interface for IPv6.
    pub const INTERFACE_V6: &str = "ferrolb.io/interface-v6";
    /// Sorted CIDRs on the local interfaces, space-separated.
    pub const SUBNETS: &str = "ferrolb.io/subnets";
    /// LAN MAC of each local interface, `interface=mac`, space-separated.
    pub const MAC: &str = "ferrolb.io/mac";
    /// `true`, or `false,<reason>`.
    pub const ELIGIBLE: &str = "ferrolb.io/eligible";
    /// Local addresses the node holds, sorted, space-separated.
    pub const HOLDING: &str = "ferrolb.io/holding";
    /// `"true"` when [`HOLDING`] was cut at [`super::HOLDING_LIMIT`] addresses.
    pub const HOLDING_TRUNCATED: &str = "ferrolb.io/holding-truncated";
    /// Number of virtual addresses on the node.
    pub const VIRTUAL_COUNT: &str = "ferrolb.io/virtual-count";
}

/// At most this many addresses are listed in the Lease's `holding` annotation.
pub const HOLDING_LIMIT: usize = 4096;

/// Why a node is not eligible to hold local addresses (`false,<reason>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IneligibleReason {
    NotSelected,
    ExcludedLabel,
    NotReady,
    NetworkUnavailable,
    CarrierDown,
    Stopping,
}

impl IneligibleReason {
    pub const ALL: [IneligibleReason; 6] = [
        IneligibleReason::NotSelected,
        IneligibleReason::ExcludedLabel,
        IneligibleReason::NotReady,
        IneligibleReason::NetworkUnavailable,
        IneligibleReason::CarrierDown,
        IneligibleReason::Stopping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IneligibleReason::NotSelected => "not-selected",
            IneligibleReason::ExcludedLabel => "excluded-label",
            IneligibleReason::NotReady => "not-ready",
            IneligibleReason::NetworkUnavailable => "network-unavailable",
            IneligibleReason::CarrierDown => "carrier-down",
            IneligibleReason::Stopping => "stopping",
        }
    }
}

/// The value of the `eligible` key (gossip) and annotation (Lease).
pub fn eligible_value(reason: Option<IneligibleReason>) -> String {
    match reason {
        None => "true".to_string(),
        Some(r) => format!("false,{}", r.as_str()),
    }
}

/// Parses an `eligible` value: `Ok(None)` is eligible, `Ok(Some(reason))` is not.
pub fn parse_eligible(value: &str) -> Result<Option<IneligibleReason>, String> {
    if value == "true" {
        return Ok(None);
    }
    let reason = value.strip_prefix("false,").ok_or_else(|| {
        format!("eligible value {value:?} is neither \"true\" nor \"false,<reason>\"")
    })?;
    IneligibleReason::ALL
        .into_iter()
        .find(|r| r.as_str() == reason)
        .map(Some)
        .ok_or_else(|| format!("unknown ineligibility reason {reason:?}"))
}

/// Gossip (chitchat) settings.
pub mod gossip {
    use std::time::Duration;

    pub const PORT: u16 = 7947;
    pub const CLUSTER_ID: &str = "ferrolb";
    pub const INTERVAL: Duration = Duration::from_millis(50);
    pub const KEY_ELIGIBLE: &str = "eligible";
    pub const KEY_SUBNETS: &str = "subnets";
    pub const KEY_MAC: &str = "mac";
    /// Prefix of the key that says this node holds an address: `h/<address>`.
    pub const KEY_HOLDING_PREFIX: &str = "h/";
    /// Secret holding the gossip HMAC keys.
    pub const SECRET: &str = "ferrolb-gossip";
    pub const SECRET_KEY: &str = "key";
    pub const SECRET_PREVIOUS_KEY: &str = "previousKey";
    /// Bytes of a gossip key (hex-encoded in the Secret).
    pub const KEY_BYTES: usize = 32;
}

/// TCP ports of the metrics/health endpoints.
pub const PORT_ALLOCATOR: u16 = 9470;
pub const PORT_AGENT: u16 = 9471;
pub const PORT_BIRD_SIDECAR: u16 = 9472;

/// BIRD, run by bird-sidecar.
pub mod bird {
    pub const TEMPLATE_CONFIGMAP: &str = "ferrolb-bird";
    pub const TEMPLATE_KEY: &str = "bird.conf.tmpl";
    pub const CONFIG_PATH: &str = "/etc/bird/bird.conf";
    pub const CONTROL_SOCKET: &str = "/run/bird/bird.ctl";
    /// RFC 8326 graceful-shutdown community.
    pub const GRACEFUL_SHUTDOWN_COMMUNITY: (u16, u16) = (65535, 0);
}

/// `IFA_PROTO` value on every address the agent adds.
pub const IFA_PROTO_FERROLB: u8 = 0x66;

/// The virtual interface's default name.
pub const VIRTUAL_INTERFACE: &str = "kube-lb0";

/// Node label that excludes a node from announcing (upstream well-known label).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Pattern of a duration in a CRD (`500ms`, `3s`, `1m`, `1m30s`).
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m))+$";

/// Event reasons (CamelCase, as Kubernetes shows them).
pub mod reason {
    // allocator, on Services
    pub const ADDRESS_ALLOCATED: &str = "AddressAllocated";
    pub const ADDRESS_RELEASED: &str = "AddressReleased";
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    pub const REQUESTED_ADDRESS_UNAVAILABLE: &str = "RequestedAddressUnavailable";
    pub const SHARING_CONFLICT: &str = "SharingConflict";
    pub const DEPRECATED_FIELD: &str = "DeprecatedField";
    pub const ANNOTATION_CONFLICT: &str = "AnnotationConflict";
    pub const HOLDER_CHANGED: &str = "HolderChanged";
    pub const NO_CANDIDATE: &str = "NoCandidate";
    /// The Service carries a PureLB or MetalLB annotation ferrolb does not implement.
    pub const UNSUPPORTED_ANNOTATION: &str = "UnsupportedAnnotation";
    // agent and sidecar, on their Node (Events in namespace "default")
    pub const ANNOUNCEMENT_FAILED: &str = "AnnouncementFailed";
    pub const ADDRESS_CONFLICT: &str = "AddressConflict";
    pub const ROUTER_CONFIG_REJECTED: &str = "RouterConfigRejected";
    pub const ROUTER_CONFIG_APPLIED: &str = "RouterConfigApplied";
    /// The agent made the local interface answer ARP only for its own addresses, because
    /// kube-proxy's IPVS mode (`kube-ipvs0`) would make every node answer for every address.
    pub const STRICT_ARP_APPLIED: &str = "StrictARPApplied";
    /// An LBNodeAgent does not parse and is ignored by the agent on this node.
    pub const INVALID_LBNODEAGENT: &str = "InvalidLBNodeAgent";
}

/// Namespace where Events about cluster-scoped objects (Nodes) live.
pub const CLUSTER_EVENTS_NAMESPACE: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligible_values_round_trip() {
        assert_eq!(parse_eligible(&eligible_value(None)), Ok(None));
        for r in IneligibleReason::ALL {
            assert_eq!(parse_eligible(&eligible_value(Some(r))), Ok(Some(r)));
        }
        assert!(parse_eligible("false,bored").is_err());
        assert!(parse_eligible("yes").is_err());
    }

    #[test]
    fn node_lease_is_named_after_the_node() {
        assert_eq!(node_lease_name("worker-1"), "ferrolb-node-worker-1");
    }
}
