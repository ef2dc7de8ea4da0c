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

/// One address in each subnet of a local group (PureLB's multiPool), per Service: `true` or
/// `false`, overriding the group's `spec.local.multiPool`.
pub const MULTI_POOL: &str = "ferrolb.io/multi-pool";
pub const MULTI_POOL_ALIASES: &[&str] = &["purelb.io/multi-pool"];

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

/// The entries of an `announcing-IPv4/-IPv6` value that are about `addr`. A local group's value
/// lists `node,interface,address` per holder, of every address of the family the Service has
/// (several with multiPool); a virtual group's (`<n> nodes,<interface>`) is about all of them.
pub fn announcing_for(value: &str, addr: std::net::IpAddr) -> String {
    if value.contains(" nodes,") {
        return value.to_string();
    }
    value
        .split_whitespace()
        .filter(|entry| {
            entry
                .rsplit(',')
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                == Some(addr)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Annotations of PureLB and MetalLB that ferrolb does not implement, each with what ferrolb
/// does instead (the advice a Warning Event carries). Those the peers write themselves
/// (`purelb.io/allocated-by`, `-from`, `pool-type`, `announcing-*`,
/// `metallb.io/ip-allocated-from-pool`) are not inputs (the peers do not read them either) and
/// are not listed; the ones ferrolb reads are the `*_ALIASES` above.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "purelb.io/allow-local",
        "ferrolb keeps externalTrafficPolicy Local on local groups and elects the holder among nodes with a ready endpoint; remove it",
    ),
    (
        "purelb.io/node-affinity",
        "ferrolb elects among nodes with a ready endpoint only with externalTrafficPolicy Local; set that instead",
    ),
    (
        "purelb.io/skip-ipv6-dad",
        "ferrolb always adds IPv6 addresses without DAD (the election prevents duplicates); remove it",
    ),
    (
        "purelb.io/re-evaluate",
        "ferrolb re-evaluates on every change of the Service, its ServiceGroup or the nodes; remove it",
    ),
];

/// The annotations among `annotations` that ferrolb does not implement, each with the advice
/// of [`UNSUPPORTED`], in that table's order.
pub fn unsupported(
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<(&'static str, &'static str)> {
    UNSUPPORTED
        .iter()
        .copied()
        .filter(|(key, _)| annotations.contains_key(*key))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn refuses_out_loud_only_what_ferrolb_does_not_implement() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("none", &[], &[]),
            (
                "ours only",
                &[SERVICE_GROUP, ADDRESSES, ALLOW_SHARED_IP],
                &[],
            ),
            (
                "honoured PureLB aliases",
                &[
                    "purelb.io/service-group",
                    "purelb.io/addresses",
                    "purelb.io/allow-shared-ip",
                    "purelb.io/multi-pool",
                ],
                &[],
            ),
            (
                "honoured MetalLB aliases",
                &[
                    "metallb.io/address-pool",
                    "metallb.universe.tf/address-pool",
                    "metallb.io/loadBalancerIPs",
                    "metallb.universe.tf/loadBalancerIPs",
                    "metallb.io/allow-shared-ip",
                    "metallb.universe.tf/allow-shared-ip",
                ],
                &[],
            ),
            (
                "written by the peers, not inputs",
                &[
                    "metallb.io/ip-allocated-from-pool",
                    "metallb.universe.tf/ip-allocated-from-pool",
                    "purelb.io/allocated-by",
                    "purelb.io/allocated-from",
                    "purelb.io/pool-type",
                    "purelb.io/announcing-IPv4",
                    "purelb.io/announcing-IPv6",
                ],
                &[],
            ),
            (
                "allow-local",
                &["purelb.io/allow-local"],
                &["purelb.io/allow-local"],
            ),
            (
                "several, in table order",
                &[
                    "purelb.io/skip-ipv6-dad",
                    "purelb.io/service-group",
                    "purelb.io/node-affinity",
                    "purelb.io/allow-local",
                ],
                &[
                    "purelb.io/allow-local",
                    "purelb.io/node-affinity",
                    "purelb.io/skip-ipv6-dad",
                ],
            ),
            (
                "re-evaluate, and multi-pool which is honoured",
                &["purelb.io/re-evaluate", "purelb.io/multi-pool"],
                &["purelb.io/re-evaluate"],
            ),
            ("a lookalike", &["purelb.io/allow-locals"], &[]),
        ];
        for (name, present, want) in cases {
            let annotations: BTreeMap<String, String> = present
                .iter()
                .map(|k| (k.to_string(), "true".to_string()))
                .collect();
            let got: Vec<&str> = unsupported(&annotations).iter().map(|(k, _)| *k).collect();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn announcing_entries_are_picked_per_address() {
        let value = "n0,eth0,192.0.2.10 n2,eth1,198.51.100.10 n1,eth0,192.0.2.10";
        let a = |s: &str| s.parse::<std::net::IpAddr>().expect("address");
        assert_eq!(
            announcing_for(value, a("192.0.2.10")),
            "n0,eth0,192.0.2.10 n1,eth0,192.0.2.10"
        );
        assert_eq!(
            announcing_for(value, a("198.51.100.10")),
            "n2,eth1,198.51.100.10"
        );
        assert_eq!(announcing_for(value, a("192.0.2.11")), "");
        assert_eq!(
            announcing_for("3 nodes,kube-lb0", a("203.0.113.1")),
            "3 nodes,kube-lb0"
        );
        assert_eq!(
            announcing_for("n0,eth0,2001:db8::1", a("2001:db8::1")),
            "n0,eth0,2001:db8::1"
        );
    }

    #[test]
    fn every_unsupported_annotation_is_a_peer_input_with_advice() {
        let honoured: Vec<&str> = [
            SERVICE_GROUP_ALIASES,
            ADDRESSES_ALIASES,
            ALLOW_SHARED_IP_ALIASES,
            MULTI_POOL_ALIASES,
        ]
        .concat();
        for (key, advice) in UNSUPPORTED {
            assert!(
                key.starts_with("purelb.io/") || key.starts_with("metallb."),
                "{key}: a peer's annotation"
            );
            assert!(
                !honoured.contains(key),
                "{key} is honoured, not unsupported"
            );
            assert!(
                advice.starts_with("ferrolb "),
                "{key}: says what ferrolb does"
            );
            assert!(advice.len() <= 140, "{key}: advice is short");
        }
        // All of them in one Event (the allocator's note: "<key> is not implemented and is
        // ignored: <advice>; ...") fit the API server's 1024 bytes, so none is cut.
        let all: usize = UNSUPPORTED
            .iter()
            .map(|(k, a)| k.len() + a.len() + 40)
            .sum();
        assert!(all <= 1024, "{all} bytes");
    }
}
