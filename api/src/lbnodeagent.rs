//! The `LBNodeAgent` custom resource: how the node agent announces, per set of nodes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Node agent configuration. `default` applies to every node no other LBNodeAgent selects.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1",
    kind = "LBNodeAgent",
    shortname = "lbna",
    printcolumn = r#"{"name":"Local interface","type":"string","jsonPath":".spec.localInterface"}"#,
    printcolumn = r#"{"name":"Virtual interface","type":"string","jsonPath":".spec.virtualInterface"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LBNodeAgentSpec {
    /// Nodes that may announce (empty: all nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// "default" = the interface of the default route, per family; otherwise a regex of
    /// interface names.
    #[serde(default = "default_local_interface")]
    #[schemars(length(min = 1, max = 253))]
    pub local_interface: String,
    /// Interface that carries virtual addresses.
    #[serde(default = "default_virtual_interface")]
    #[schemars(length(min = 1, max = 15))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9][a-zA-Z0-9._-]*$')").message("spec.virtualInterface: must be an interface name (letters, digits, '.', '_', '-'; at most 15)"))]
    pub virtual_interface: String,
    #[serde(default)]
    pub gratuitous: Gratuitous,
    /// Valid lifetime of local addresses, whole seconds, at least 3s; renewed every third of it.
    #[serde(default = "default_lifetime")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,6}s$') && int(self.substring(0, self.size() - 1)) >= 3").message("spec.localAddressLifetime: whole seconds, at least 3s (e.g. 5s)"))]
    pub local_address_lifetime: String,
    /// How often a holder probes the LAN for another holder of its addresses.
    #[serde(default = "default_conflict_probe")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule()).message("spec.conflictProbe: a duration such as 500ms, 1s or 1m"))]
    pub conflict_probe: String,
    /// A starting agent claims nothing before its gossip view settles or this has passed.
    #[serde(default = "default_gossip_settle")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule()).message("spec.gossipSettle: a duration such as 500ms, 2s or 1m"))]
    pub gossip_settle: String,
    /// Graceful stop: time between route withdrawal and address removal.
    #[serde(default = "default_drain")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule()).message("spec.drain: a duration such as 500ms, 5s or 1m"))]
    pub drain: String,
}

const fn duration_rule() -> &'static str {
    "self.matches('^([0-9]+(ms|s|m))+$')"
}

/// Gratuitous ARP / unsolicited NA after a node takes an address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Gratuitous {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_count")]
    #[schemars(range(min = 1, max = 100))]
    pub count: u32,
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule()).message("spec.gratuitous.interval: a duration such as 500ms or 1s"))]
    pub interval: String,
    #[serde(default = "default_initial_delay")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule()).message("spec.gratuitous.initialDelay: a duration such as 0ms or 100ms"))]
    pub initial_delay: String,
}

impl Default for Gratuitous {
    fn default() -> Self {
        Self {
            enabled: true,
            count: default_count(),
            interval: default_interval(),
            initial_delay: default_initial_delay(),
        }
    }
}

impl Default for LBNodeAgentSpec {
    fn default() -> Self {
        Self {
            node_selector: None,
            local_interface: default_local_interface(),
            virtual_interface: default_virtual_interface(),
            gratuitous: Gratuitous::default(),
            local_address_lifetime: default_lifetime(),
            conflict_probe: default_conflict_probe(),
            gossip_settle: default_gossip_settle(),
            drain: default_drain(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_count() -> u32 {
    3
}
fn default_interval() -> String {
    "500ms".into()
}
fn default_initial_delay() -> String {
    "0ms".into()
}
fn default_local_interface() -> String {
    "default".into()
}
fn default_virtual_interface() -> String {
    crate::contracts::VIRTUAL_INTERFACE.into()
}
fn default_lifetime() -> String {
    "5s".into()
}
fn default_conflict_probe() -> String {
    "1s".into()
}
fn default_gossip_settle() -> String {
    "2s".into()
}
fn default_drain() -> String {
    "5s".into()
}
