//! Whether this node may carry local and virtual addresses, with the reason when it may not.

use ferrolb_api::contracts::{EXCLUDE_LABEL, IneligibleReason};

use crate::snapshot::{AgentConfig, Interface, Lifecycle, NodeFacts};

/// Eligibility for local addresses (published on gossip and the Lease): `None` is eligible.
/// A stopping agent says so first, whatever else holds; cordoned nodes stay eligible (KEP-3458).
/// `local_interfaces` are the local interfaces of both families; the node publishes one value,
/// so a carrier down on any of them makes it ineligible for both.
pub fn local_eligibility(
    node: &NodeFacts,
    config: &AgentConfig,
    lifecycle: Lifecycle,
    local_interfaces: &[&Interface],
) -> Option<IneligibleReason> {
    if lifecycle != Lifecycle::Running {
        return Some(IneligibleReason::Stopping);
    }
    node_reason(node, config).or_else(|| {
        local_interfaces
            .iter()
            .any(|i| !i.link_up())
            .then_some(IneligibleReason::CarrierDown)
    })
}

/// Eligibility for virtual addresses: carrier and gossip do not gate them (routing protocols
/// handle link loss), and a stopping agent keeps them until its drain is over.
pub fn virtual_eligibility(
    node: &NodeFacts,
    config: &AgentConfig,
    lifecycle: Lifecycle,
) -> Option<IneligibleReason> {
    if lifecycle == Lifecycle::Drained {
        return Some(IneligibleReason::Stopping);
    }
    node_reason(node, config)
}

fn node_reason(node: &NodeFacts, config: &AgentConfig) -> Option<IneligibleReason> {
    if !config.selects_node {
        Some(IneligibleReason::NotSelected)
    } else if node.labels.contains_key(EXCLUDE_LABEL) {
        Some(IneligibleReason::ExcludedLabel)
    } else if !node.ready {
        Some(IneligibleReason::NotReady)
    } else if node.network_unavailable {
        Some(IneligibleReason::NetworkUnavailable)
    } else {
        None
    }
}
