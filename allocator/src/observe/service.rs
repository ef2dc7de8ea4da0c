//! A Service as the allocator sees it: a plain view with annotations and their aliases resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::jiff::Timestamp;

/// Namespace and name of a namespaced object.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy`: the selection rule's own.
pub use ferrolb_api::servicegroup::selection::Policy;
use ferrolb_api::servicegroup::selection::families_and_policy;

/// The annotations the allocator writes on a Service.
pub const WRITTEN_ANNOTATIONS: [&str; 5] = [
    ann::ALLOCATED_BY,
    ann::ALLOCATED_FROM,
    ann::POOL_TYPE,
    ann::ANNOUNCING_IPV4,
    ann::ANNOUNCING_IPV6,
];

/// Addresses a Service asks for, from `ferrolb.io/addresses`, an alias, or `spec.loadBalancerIP`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub addrs: BTreeMap<Family, IpAddr>,
    /// Why the request cannot be used as written (unparsable, two of one family).
    pub errors: Vec<String>,
    /// The deprecated `spec.loadBalancerIP` is set.
    pub deprecated_field: bool,
}

/// Everything the decisions need to know about one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SvcView {
    pub key: ObjKey,
    pub uid: String,
    /// The version this view was made from: every write about it carries it as a
    /// precondition, so a write decided on an older version (a paused leader's, woken after
    /// another took over) is refused instead of undoing newer ones.
    pub resource_version: String,
    pub created: Timestamp,
    pub load_balancer: bool,
    pub class: Option<String>,
    /// `spec.ipFamilies` in order (the API server fills it in).
    pub families: Vec<Family>,
    pub policy: Policy,
    pub requested: Requested,
    pub group: Option<String>,
    pub sharing_key: Option<String>,
    /// `ferrolb.io/multi-pool` (or its alias): overrides the group's `multiPool`.
    pub multi_pool: Option<bool>,
    /// (protocol, port) of every port.
    pub ports: BTreeSet<(String, i32)>,
    pub etp_local: bool,
    pub selector: BTreeMap<String, String>,
    /// `metadata.labels`: a ServiceGroup's serviceSelector reads them.
    pub labels: BTreeMap<String, String>,
    /// Addresses in `status.loadBalancer.ingress`, in order (entries without an IP left out).
    pub ingress: Vec<IpAddr>,
    /// Every ingress entry has an IP, ipMode VIP and nothing else (what we would write).
    pub ingress_exact: bool,
    /// The allocator-written annotations present on the Service.
    pub written: BTreeMap<String, String>,
    /// Ours and an alias disagree: one message per annotation.
    pub annotation_conflicts: Vec<String>,
    /// PureLB/MetalLB annotations ferrolb does not implement, with what it does instead.
    pub unsupported: Vec<(&'static str, &'static str)>,
}

impl SvcView {
    pub fn from_service(svc: &Service) -> Self {
        let meta = &svc.metadata;
        let (no_annotations, no_spec) = (BTreeMap::new(), ServiceSpec::default());
        let annotations = meta.annotations.as_ref().unwrap_or(&no_annotations);
        let spec = svc.spec.as_ref().unwrap_or(&no_spec);
        let mut conflicts = Vec::new();
        let mut pick = |ours: &str, aliases: &[&str]| {
            let (value, conflict) = resolve(annotations, ours, aliases);
            conflicts.extend(conflict);
            value
        };
        let group = pick(ann::SERVICE_GROUP, ann::SERVICE_GROUP_ALIASES);
        let sharing_key = pick(ann::ALLOW_SHARED_IP, ann::ALLOW_SHARED_IP_ALIASES);
        let addresses = pick(ann::ADDRESSES, ann::ADDRESSES_ALIASES);
        let multi_pool = match pick(ann::MULTI_POOL, ann::MULTI_POOL_ALIASES).as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                conflicts.push(format!(
                    "{}={v:?} is neither \"true\" nor \"false\" and is ignored (the group's spec.local.multiPool applies)",
                    ann::MULTI_POOL
                ));
                None
            }
        };
        let lb_ip = spec.load_balancer_ip.clone().filter(|s| !s.is_empty());
        let requested = parse_requested(addresses.as_deref().or(lb_ip.as_deref()), lb_ip.is_some());
        let (families, policy) = families_and_policy(
            spec.ip_families.as_deref().unwrap_or_default(),
            spec.ip_family_policy.as_deref(),
        );
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
            .collect();
        let entries = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default();
        let ingress: Vec<IpAddr> = entries
            .iter()
            .filter_map(|e| e.ip.as_deref().and_then(|ip| ip.parse().ok()))
            .collect();
        let ingress_exact = ingress.len() == entries.len()
            && entries.iter().all(|e| {
                e.ip_mode.as_deref() == Some("VIP") && e.hostname.is_none() && e.ports.is_none()
            });
        let written = WRITTEN_ANNOTATIONS
            .iter()
            .filter_map(|k| annotations.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        SvcView {
            key: ObjKey::new(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            ),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            created: meta
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            class: spec.load_balancer_class.clone(),
            families,
            policy,
            requested,
            group,
            sharing_key,
            multi_pool,
            ports,
            etp_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            selector: spec.selector.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            ingress,
            ingress_exact,
            written,
            annotation_conflicts: conflicts,
            unsupported: ann::unsupported(annotations),
        }
    }
}

/// Our annotation wins over its aliases; an alias is read when ours is absent (the first one in
/// the list's order). Returns the value and a message when another annotation disagrees.
pub fn resolve(
    annotations: &BTreeMap<String, String>,
    ours: &str,
    aliases: &[&str],
) -> (Option<String>, Option<String>) {
    let present: Vec<(&str, &str)> = std::iter::once(ours)
        .chain(aliases.iter().copied())
        .filter_map(|k| annotations.get(k).map(|v| (k, v.trim())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let Some(&(winner, value)) = present.first() else {
        return (None, None);
    };
    let losers: Vec<String> = present[1..]
        .iter()
        .filter(|(_, v)| *v != value)
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let conflict = (!losers.is_empty()).then(|| {
        format!(
            "{winner}={value:?} is used and {} is ignored; remove the annotation you do not mean",
            losers.join(", ")
        )
    });
    (Some(value.to_string()), conflict)
}

/// Parses a comma-separated list of addresses, at most one per family.
pub fn parse_requested(value: Option<&str>, deprecated_field: bool) -> Requested {
    let mut req = Requested {
        deprecated_field,
        ..Default::default()
    };
    for part in value.unwrap_or_default().split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        match part.parse::<IpAddr>() {
            Ok(addr) => {
                let family = Family::of(addr);
                if let Some(first) = req.addrs.get(&family) {
                    req.errors.push(format!(
                        "{first} and {addr} are both {family}; request at most one address per family"
                    ));
                } else {
                    req.addrs.insert(family, addr);
                }
            }
            Err(_) => req.errors.push(format!(
                "{part:?} is not an IP address; list addresses like 192.0.2.10,2001:db8::10"
            )),
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ours_win_over_aliases() {
        let cases: &[(&str, &[(&str, &str)], Option<&str>, bool)] = &[
            ("none", &[], None, false),
            ("ours only", &[(ann::SERVICE_GROUP, "a")], Some("a"), false),
            (
                "alias only",
                &[("metallb.io/address-pool", "b")],
                Some("b"),
                false,
            ),
            (
                "ours and agreeing alias",
                &[(ann::SERVICE_GROUP, "a"), ("purelb.io/service-group", "a")],
                Some("a"),
                false,
            ),
            (
                "ours and conflicting alias",
                &[(ann::SERVICE_GROUP, "a"), ("purelb.io/service-group", "b")],
                Some("a"),
                true,
            ),
            (
                "two conflicting aliases",
                &[
                    ("purelb.io/service-group", "a"),
                    ("metallb.io/address-pool", "b"),
                ],
                Some("a"),
                true,
            ),
        ];
        for (name, pairs, want, conflict) in cases {
            let (got, c) = resolve(&map(pairs), ann::SERVICE_GROUP, ann::SERVICE_GROUP_ALIASES);
            assert_eq!(got.as_deref(), *want, "{name}");
            assert_eq!(c.is_some(), *conflict, "{name}: {c:?}");
        }
    }

    #[test]
    fn parses_requested_addresses() {
        let cases: &[(&str, &str, &[&str], usize)] = &[
            ("one v4", "192.0.2.5", &["192.0.2.5"], 0),
            (
                "dual",
                "192.0.2.5, 2001:db8::5",
                &["192.0.2.5", "2001:db8::5"],
                0,
            ),
            ("two v4", "192.0.2.5,192.0.2.6", &["192.0.2.5"], 1),
            ("garbage", "nope", &[], 1),
            ("empty", "", &[], 0),
        ];
        for (name, input, want, errors) in cases {
            let r = parse_requested(Some(input), false);
            let got: Vec<String> = r.addrs.values().map(|a| a.to_string()).collect();
            assert_eq!(got, *want, "{name}");
            assert_eq!(r.errors.len(), *errors, "{name}: {:?}", r.errors);
        }
    }
}
