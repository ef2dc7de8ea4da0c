//! The `LBNodeAgent` custom resource: how the node agent announces, per set of nodes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The bounds of each duration field, `(least, most)` in the CRD's own notation. The CEL rules
/// quote them and the agent parses with them ([`crate::duration::parse_within`]), so a value
/// the API server accepts is one the agent takes, and a value that slipped past (an object
/// stored before the rule) is refused by name instead of overflowing a clock.
pub mod bounds {
    pub type Bounds = (&'static str, &'static str);
    /// Probing every few ms would flood the LAN; a minute leaves a conflict unseen too long.
    pub const CONFLICT_PROBE: Bounds = ("100ms", "1m");
    pub const GOSSIP_SETTLE: Bounds = ("0ms", "1m");
    /// The chart's `terminationGracePeriodSeconds` must exceed it (default 30 s for the default
    /// 5 s drain); a drain of more than 5 minutes holds a node's shutdown too long.
    pub const DRAIN: Bounds = ("0ms", "5m");
    pub const GRATUITOUS_INTERVAL: Bounds = ("0ms", "1m");
    pub const GRATUITOUS_INITIAL_DELAY: Bounds = ("0ms", "1m");
}

/// Label selector operators the agent (and Kubernetes) know.
pub const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Node agent configuration. `default` applies to every node no other LBNodeAgent selects.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1",
    kind = "LBNodeAgent",
    shortname = "lbna",
    printcolumn = r#"{"name":"Node selector","type":"string","jsonPath":".spec.nodeSelector"}"#,
    printcolumn = r#"{"name":"Local interface","type":"string","jsonPath":".spec.localInterface"}"#,
    printcolumn = r#"{"name":"Virtual interface","type":"string","jsonPath":".spec.virtualInterface"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LBNodeAgentSpec {
    /// Nodes that may announce (empty: all nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::servicegroup::admission::bounded_selector)]
    #[x_kube(validation = Rule::new(SELECTOR_RULE).message("spec.nodeSelector.matchExpressions: operator must be In or NotIn (with values) or Exists or DoesNotExist (without values)"))]
    pub node_selector: Option<LabelSelector>,
    /// "default" = the interface of the default route, per family; otherwise a regex of
    /// interface names.
    #[serde(default = "default_local_interface")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(REGEX_RULE).message("spec.localInterface: must be \"default\" or a valid regular expression of interface names, e.g. ^(eth|en)"))]
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
    #[x_kube(validation = Rule::new(duration_rule(bounds::CONFLICT_PROBE)).message(duration_message("spec.conflictProbe", "500ms, 1s or 1m", bounds::CONFLICT_PROBE).as_str()))]
    pub conflict_probe: String,
    /// A starting agent claims nothing before its gossip view settles or this has passed.
    #[serde(default = "default_gossip_settle")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule(bounds::GOSSIP_SETTLE)).message(duration_message("spec.gossipSettle", "500ms, 2s or 1m", bounds::GOSSIP_SETTLE).as_str()))]
    pub gossip_settle: String,
    /// Graceful stop: time between route withdrawal and address removal.
    #[serde(default = "default_drain")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule(bounds::DRAIN)).message(duration_message("spec.drain", "500ms, 5s or 1m", bounds::DRAIN).as_str()))]
    pub drain: String,
}

/// A duration of the CRD's syntax within `bounds`. CEL's `duration()` reads the same syntax
/// (Go's); `&&` stops at a value that is no duration, and one too large for `duration()` is an
/// evaluation error, which the API server reports with this rule's message too.
fn duration_rule((min, max): bounds::Bounds) -> String {
    format!(
        "self.matches('^([0-9]+(ms|s|m))+$') && duration(self) >= duration('{min}') && \
         duration(self) <= duration('{max}')"
    )
}

fn duration_message(field: &str, examples: &str, (min, max): bounds::Bounds) -> String {
    format!("{field}: a duration such as {examples}, from {min} to {max}")
}

/// `matches` with `self` as the pattern fails to evaluate when the pattern does not compile
/// (RE2 on the API server); `x || !x` keeps that error instead of absorbing it. The agent
/// compiles it again with Rust's `regex` (nearly the same syntax) and ignores the LBNodeAgent,
/// with an Event, if that fails.
const REGEX_RULE: &str = "self == 'default' || ''.matches(self) || !''.matches(self)";

const SELECTOR_RULE: &str = "!has(self.matchExpressions) || self.matchExpressions.all(e, \
     (e.operator in ['In', 'NotIn'] && has(e.values) && size(e.values) > 0) || \
     (e.operator in ['Exists', 'DoesNotExist'] && (!has(e.values) || size(e.values) == 0)))";

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
    #[x_kube(validation = Rule::new(duration_rule(bounds::GRATUITOUS_INTERVAL)).message(duration_message("spec.gratuitous.interval", "500ms or 1s", bounds::GRATUITOUS_INTERVAL).as_str()))]
    pub interval: String,
    #[serde(default = "default_initial_delay")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(duration_rule(bounds::GRATUITOUS_INITIAL_DELAY)).message(duration_message("spec.gratuitous.initialDelay", "0ms or 100ms", bounds::GRATUITOUS_INITIAL_DELAY).as_str()))]
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::offline::validate;

    fn agent(spec: Value) -> Value {
        json!({"apiVersion": "ferrolb.io/v1", "kind": "LBNodeAgent",
               "metadata": {"name": "a"}, "spec": spec})
    }

    fn expression(operator: &str, values: Option<Vec<&str>>) -> Value {
        let mut e = json!({"key": "zone", "operator": operator});
        if let Some(values) = values {
            e["values"] = json!(values);
        }
        json!({"nodeSelector": {"matchExpressions": [e]}})
    }

    /// The same cases run against the real API server in lbnodeagent/tests/lbnodeagent_crd.rs.
    #[test]
    fn cel_refuses_what_would_stop_an_agent_and_names_the_field() {
        // (name, spec, None when valid or the text the problem contains)
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            (
                "the default interface",
                json!({"localInterface": "default"}),
                None,
            ),
            (
                "a regex",
                json!({"localInterface": "^(eth|en)[0-9]+$"}),
                None,
            ),
            (
                "a regex that does not compile",
                json!({"localInterface": "eth("}),
                // An evaluation error: the API server adds the rule's message, kube-cel only
                // the field.
                Some("spec.localInterface"),
            ),
            (
                "an unknown selector operator",
                expression("Equals", Some(vec!["a"])),
                Some("spec.nodeSelector.matchExpressions: operator must be"),
            ),
            (
                "In without values",
                expression("In", None),
                Some("spec.nodeSelector.matchExpressions"),
            ),
            (
                "Exists with values",
                expression("Exists", Some(vec!["a"])),
                Some("spec.nodeSelector.matchExpressions"),
            ),
            (
                "In with values",
                expression("In", Some(vec!["a", "b"])),
                None,
            ),
            ("Exists", expression("Exists", None), None),
            (
                "labels only",
                json!({"nodeSelector": {"matchLabels": {"zone": "edge"}}}),
                None,
            ),
            ("the longest drain", json!({"drain": "5m"}), None),
            (
                "a drain past the bound",
                json!({"drain": "5m1ms"}),
                Some("spec.drain: a duration such as 500ms, 5s or 1m, from 0ms to 5m"),
            ),
            (
                "a drain of u64::MAX seconds",
                json!({"drain": "18446744073709551615s"}),
                Some("spec.drain"),
            ),
            (
                "a conflict probe that floods the LAN",
                json!({"conflictProbe": "10ms"}),
                Some("spec.conflictProbe"),
            ),
            (
                "a long gossip settle",
                json!({"gossipSettle": "2m"}),
                Some("spec.gossipSettle"),
            ),
            (
                "a long gratuitous interval",
                json!({"gratuitous": {"interval": "90s"}}),
                Some("spec.gratuitous.interval"),
            ),
            (
                "a long initial delay",
                json!({"gratuitous": {"initialDelay": "1m1s"}}),
                Some("spec.gratuitous.initialDelay"),
            ),
        ];
        for (name, spec, want) in cases {
            let problems: Vec<String> = validate(&agent(spec))
                .iter()
                .map(ToString::to_string)
                .collect();
            match want {
                None => assert!(problems.is_empty(), "{name}: {problems:?}"),
                Some(text) => assert!(
                    problems.iter().any(|p| p.contains(text)),
                    "{name}: want {text:?} in {problems:?}"
                ),
            }
        }
    }
}
