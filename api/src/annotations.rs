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
        "purelb.io/multi-pool",
        "ferrolb gives a Service at most one address per family; remove it",
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
                "multi-pool and re-evaluate",
                &["purelb.io/re-evaluate", "purelb.io/multi-pool"],
                &["purelb.io/multi-pool", "purelb.io/re-evaluate"],
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
    fn every_unsupported_annotation_is_a_peer_input_with_advice() {
        let honoured: Vec<&str> = [
            SERVICE_GROUP_ALIASES,
            ADDRESSES_ALIASES,
            ALLOW_SHARED_IP_ALIASES,
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
