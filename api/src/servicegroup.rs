//! The `ServiceGroup` custom resource: an address pool, local or virtual, and its status.

pub mod admission;
pub mod selection;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::contracts::DEFAULT_SERVICE_GROUP;

/// Longest CIDR or range text: two full IPv6 addresses and a dash.
const ADDR_TEXT_MAX: u32 = 96;

/// An address pool for LoadBalancer Services. Exactly one of `local` or `virtual`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1",
    kind = "ServiceGroup",
    shortname = "sg",
    status = "ServiceGroupStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.type"}"#,
    printcolumn = r#"{"name":"Pools","type":"string","jsonPath":".status.pools"}"#,
    printcolumn = r#"{"name":"Allocated","type":"string","jsonPath":".status.usage"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Exhausted","type":"string","jsonPath":".status.conditions[?(@.type==\"Exhausted\")].status"}"#,
    printcolumn = r#"{"name":"Out of pool","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"OutOfPoolAllocations\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.local) != has(self.virtual)").message("spec: set exactly one of spec.local or spec.virtual"))]
#[x_kube(validation = Rule::new("!has(self.namespaceDefault) || !self.namespaceDefault || !has(self.autoAssign) || self.autoAssign").message("spec.namespaceDefault: a namespace default auto-assigns; remove autoAssign: false or namespaceDefault"))]
#[serde(rename_all = "camelCase")]
pub struct ServiceGroupSpec {
    /// Addresses on the nodes' own LAN: one elected node holds each, the kernel answers ARP/ND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSpec>,
    /// Routed addresses: on kube-lb0 of every eligible node, exported by BIRD over BGP/OSPF.
    #[serde(default, rename = "virtual", skip_serializing_if = "Option::is_none")]
    pub virtual_: Option<VirtualSpec>,
    /// Whether Services that name no group may get addresses from this group. Unset: true for
    /// the group named "default" and for a namespaceDefault group, false for any other. Among
    /// the groups that auto-assign and admit a Service, the first in priority order (a default
    /// of its namespace first) with a free address of every family the Service needs serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Order among the groups with autoAssign (as MetalLB's serviceAllocation.priority): lower
    /// numbers are tried first, groups without one after all that have one, ties by name. Only
    /// new allocations follow it: a Service keeps the group its addresses came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Only Services in these namespaces may use this group (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(n, n.size() <= 63)").message("spec.namespaces: each namespace name is at most 63 characters"))]
    pub namespaces: Vec<String>,
    /// Only Services in namespaces whose labels match this selector may use this group, by
    /// name or by auto-assign (unset: all). Applies together with spec.namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::bounded_selector)]
    #[x_kube(validation = Rule::new(admission::OPERATOR_RULE).message("spec.namespaceSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"))]
    #[x_kube(validation = Rule::new(admission::VALUES_RULE).message("spec.namespaceSelector.matchExpressions: In and NotIn need at least one value, Exists and DoesNotExist take none"))]
    pub namespace_selector: Option<LabelSelector>,
    /// Only Services whose own labels match this selector may use this group, by name or by
    /// auto-assign (unset: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = admission::bounded_selector)]
    #[x_kube(validation = Rule::new(admission::OPERATOR_RULE).message("spec.serviceSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"))]
    #[x_kube(validation = Rule::new(admission::VALUES_RULE).message("spec.serviceSelector.matchExpressions: In and NotIn need at least one value, Exists and DoesNotExist take none"))]
    pub service_selector: Option<LabelSelector>,
    /// The default group of the namespaces it admits (spec.namespaces and
    /// spec.namespaceSelector): it auto-assigns, and for Services of those namespaces it is
    /// tried before every other auto-assign candidate, whatever their priority.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub namespace_default: bool,
    /// Makes the namespaces this group admits by spec.namespaces and spec.namespaceSelector its
    /// tenants: their Services may use only the groups with enforceNamespaces that admit them,
    /// by name or by auto-assign. No effect without spec.namespaces or spec.namespaceSelector.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enforce_namespaces: bool,
    /// Skip IPv4 addresses ending in .0 and .255 (some clients treat them as broadcast).
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Spread new allocations evenly over the pools (as PureLB's balancePools): each new
    /// address of a family comes from the pool of that family with the fewest allocated
    /// addresses (ties: the pool listed first), instead of the lowest free address of the
    /// group. Requested and shared addresses are unaffected; nothing is renumbered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub balance_pools: bool,
}

/// Pools of a local group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("size(self.v4pools) + size(self.v6pools) > 0").message("spec.local: give at least one pool in v4pools or v6pools"))]
#[x_kube(validation = Rule::new("self.v4pools.all(p, !has(p.aggregation)) && self.v6pools.all(p, !has(p.aggregation))").message("spec.local: aggregation applies to virtual groups only; remove it from the local pools"))]
pub struct LocalSpec {
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, !isCIDR(p.subnet) || cidr(p.subnet).ip().family() == 4)").message("spec.local.v4pools: every subnet must be an IPv4 CIDR"))]
    pub v4pools: Vec<Pool>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, !isCIDR(p.subnet) || cidr(p.subnet).ip().family() == 6)").message("spec.local.v6pools: every subnet must be an IPv6 CIDR"))]
    pub v6pools: Vec<Pool>,
    /// One address in each subnet of the pools, per family, for every Service of this group
    /// (PureLB's multiPool), each held by a node on that subnet. A Service overrides it with
    /// the ferrolb.io/multi-pool annotation ("true" or "false"); a Service that requests
    /// addresses gets exactly those.
    #[serde(
        default,
        rename = "multiPool",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub multi_pool: bool,
}

/// Pools of a virtual group and the BGP attributes of its routes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("size(self.v4pools) + size(self.v6pools) > 0").message("spec.virtual: give at least one pool in v4pools or v6pools"))]
pub struct VirtualSpec {
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, !isCIDR(p.subnet) || cidr(p.subnet).ip().family() == 4)").message("spec.virtual.v4pools: every subnet must be an IPv4 CIDR"))]
    #[x_kube(validation = Rule::new("self.all(p, !has(p.aggregation) || !p.aggregation.matches('^/[0-9]{1,3}$') || int(p.aggregation.substring(1)) <= 32)").message("spec.virtual.v4pools: aggregation of an IPv4 pool is at most /32"))]
    pub v4pools: Vec<Pool>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, !isCIDR(p.subnet) || cidr(p.subnet).ip().family() == 6)").message("spec.virtual.v6pools: every subnet must be an IPv6 CIDR"))]
    pub v6pools: Vec<Pool>,
    /// Attributes BIRD adds to this group's routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpAttributes>,
}

/// One pool: a range or CIDR inside a subnet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !isCIDR(self.pool) || cidr(self.subnet).containsCIDR(self.pool)").message("pool: the CIDR must lie inside subnet"))]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || isCIDR(self.pool) || self.pool.split('-').size() != 2 || !isIP(self.pool.split('-')[0]) || !isIP(self.pool.split('-')[1]) || (cidr(self.subnet).containsIP(self.pool.split('-')[0]) && cidr(self.subnet).containsIP(self.pool.split('-')[1]))").message("pool: both ends of the range must lie inside subnet"))]
#[x_kube(validation = Rule::new("!has(self.aggregation) || self.aggregation == 'default' || !isCIDR(self.subnet) || !self.aggregation.matches('^/[0-9]{1,3}$') || int(self.aggregation.substring(1)) >= cidr(self.subnet).prefixLength()").message("aggregation: must not be shorter than the subnet's prefix"))]
#[x_kube(validation = Rule::new("!has(self.aggregation) || self.aggregation == 'default' || !self.aggregation.matches('^/[0-9]{1,3}$') || int(self.aggregation.substring(1)) <= 128").message("aggregation: an IPv6 aggregation is at most /128"))]
pub struct Pool {
    /// A subnet the addresses belong to, as a CIDR with no host bits (e.g. 192.0.2.0/24).
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("subnet: must be a CIDR such as 192.0.2.0/24 or 2001:db8::/64"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self) == cidr(self).masked()").message("subnet: has host bits set; use the network address (e.g. 192.0.2.0/24)"))]
    pub subnet: String,
    /// The addresses handed out: a range "a-b" or a CIDR inside subnet ("x/32" for one address).
    #[schemars(length(min = 1, max = ADDR_TEXT_MAX))]
    #[x_kube(validation = Rule::new("isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))").message("pool: must be one range \"a-b\" or one CIDR (no lists, no spaces)"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self) == cidr(self).masked()").message("pool: the CIDR has host bits set; use the network address"))]
    #[x_kube(validation = Rule::new("isCIDR(self) || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()").message("pool: both ends of a range must be of one family"))]
    pub pool: String,
    /// Virtual groups only: the prefix length of the addresses on kube-lb0, "default" (the
    /// subnet's) or "/N".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 7))]
    #[x_kube(validation = Rule::new("self == 'default' || self.matches('^/[0-9]{1,3}$')").message("aggregation: must be \"default\" or \"/N\" with the slash, e.g. /28"))]
    pub aggregation: Option<String>,
}

/// BGP attributes of a virtual group's routes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BgpAttributes {
    /// Standard communities, "ASN:value" (each 0-65535).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 11)))]
    #[x_kube(validation = Rule::new("self.all(c, c.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(c.split(':')[0]) <= 65535 && int(c.split(':')[1]) <= 65535)").message("spec.virtual.bgp.communities: each must be \"ASN:value\" with both parts 0-65535"))]
    pub communities: Vec<String>,
    /// Large communities, "global:local1:local2" (each 0-4294967295).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    #[x_kube(validation = Rule::new("self.all(c, c.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && c.split(':').all(p, int(p) <= 4294967295))").message("spec.virtual.bgp.largeCommunities: each must be \"global:local1:local2\" with parts 0-4294967295"))]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF of the routes (iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub local_preference: Option<u32>,
}

/// What the allocator reports about a group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGroupStatus {
    /// `local` or `virtual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The pools, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<String>,
    /// Allocated/capacity per family, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// Allocatable addresses per family, as decimal strings (an IPv6 /64 holds 2^64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<FamilyStrings>,
    /// Allocated addresses per family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<FamilyCounts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct FamilyStrings {
    pub ipv4: String,
    pub ipv6: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct FamilyCounts {
    pub ipv4: u64,
    pub ipv6: u64,
}

/// Condition types on a ServiceGroup.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const EXHAUSTED: &str = "Exhausted";
    pub const OVERLAPPING: &str = "Overlapping";
    pub const INVALID_RANGE: &str = "InvalidRange";
    pub const OUT_OF_POOL_ALLOCATIONS: &str = "OutOfPoolAllocations";
    pub const IN_USE: &str = "InUse";
}

/// Local or virtual.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    Local,
    Virtual,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Local => "local",
            GroupType::Virtual => "virtual",
        }
    }
}

impl ServiceGroupSpec {
    /// The group's type; `None` when the spec has both or neither (the CRD refuses that).
    pub fn group_type(&self) -> Option<GroupType> {
        match (&self.local, &self.virtual_) {
            (Some(_), None) => Some(GroupType::Local),
            (None, Some(_)) => Some(GroupType::Virtual),
            _ => None,
        }
    }

    /// Whether the group named `name` serves Services that name no group: `autoAssign`, which
    /// when unset is true for the group named "default" and for a namespace default.
    pub fn auto_assigns(&self, name: &str) -> bool {
        self.auto_assign
            .unwrap_or(name == DEFAULT_SERVICE_GROUP || self.namespace_default)
    }

    /// The IPv4 and IPv6 pools, whichever type the group is.
    pub fn pools(&self) -> (&[Pool], &[Pool]) {
        match (&self.local, &self.virtual_) {
            (Some(l), _) => (&l.v4pools, &l.v6pools),
            (None, Some(v)) => (&v.v4pools, &v.v6pools),
            (None, None) => (&[], &[]),
        }
    }
}
