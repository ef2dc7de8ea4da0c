use super::*;
use crate::yaml::documents;

fn run(source: Source, yaml: &str) -> Migration {
    migrate(source, &documents("test", yaml).expect("test YAML parses"))
}

/// Every object a migration writes must pass the CRDs' rules.
fn assert_valid(m: &Migration) {
    for o in &m.objects {
        let problems = ferrolb_api::offline::validate(o);
        assert!(problems.is_empty(), "{o}: {problems:?}");
    }
}

#[test]
fn covering_cidr_is_the_smallest_around_a_range() {
    let cases = [
        ("192.0.2.10-192.0.2.20", "192.0.2.0/27"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.7-192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::1-2001:db8::ff", "2001:db8::/120"),
        ("0.0.0.0-255.255.255.255", "0.0.0.0/0"),
    ];
    for (range, want) in cases {
        let r = AddrRange::parse(range).expect("range");
        assert_eq!(covering_cidr(&r).to_string(), want, "{range}");
    }
}

#[test]
fn subnets_keep_every_address_the_old_system_could_hand_out() {
    // (range, subnet written, why)
    let cases = [
        (
            "192.0.2.10-192.0.2.20",
            "192.0.2.0/27",
            "edges already outside",
        ),
        (
            "198.51.100.0/24",
            "198.51.96.0/21",
            "a /24's .0 and .255 stay usable",
        ),
        (
            "192.0.2.16-192.0.2.31",
            "192.0.2.0/26",
            "an aligned /28 widens twice",
        ),
        (
            "2001:db8:e799::/124",
            "2001:db8:e798::/47",
            "an IPv6 range starting at its /124's anycast address",
        ),
        (
            "2001:db8::5-2001:db8::9",
            "2001:db8::/124",
            "IPv6 has no broadcast address",
        ),
    ];
    for (range, want, why) in cases {
        let r = AddrRange::parse(range).expect("range");
        assert_eq!(host_safe_cidr(&r).to_string(), want, "{why}");
    }
}

#[test]
fn block_edges_are_counted_and_the_first_listed() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("address");
    let cases = [
        (
            "203.0.113.0/26",
            28,
            8,
            vec!["203.0.113.0", "203.0.113.15", "203.0.113.16"],
        ),
        ("203.0.113.1-203.0.113.14", 28, 0, vec![]),
        (
            "203.0.113.5-203.0.113.16",
            28,
            2,
            vec!["203.0.113.15", "203.0.113.16"],
        ),
        ("198.51.100.0/24", 32, 0, vec![]),
        ("198.51.100.0/24", 31, 0, vec![]),
        (
            "2001:db8::/120",
            124,
            16,
            vec!["2001:db8::", "2001:db8::10", "2001:db8::20"],
        ),
    ];
    for (range, prefix, count, first) in cases {
        let r = AddrRange::parse(range).expect("range");
        let first: Vec<IpAddr> = first.into_iter().map(ip).collect();
        assert_eq!(block_edges(&r, prefix), (count, first), "{range} /{prefix}");
    }
}

#[test]
fn host_bits_and_a_second_advertisement_are_carried_or_told() {
    let m = run(
        Source::MetalLb,
        include_str!("../../testdata/peers/metallb-advanced-bgp.yaml"),
    );
    assert_valid(&m);
    let g = &m.objects[0]["spec"]["virtual"];
    assert_eq!(g["v4pools"][0]["pool"], "198.51.100.0/24");
    assert_eq!(
        g["v4pools"][0]["aggregation"], "/32",
        "the most specific advertisement"
    );
    assert_eq!(g["bgp"]["localPreference"], 100);
    let notes = m.notes.join("\n");
    for want in [
        "198.51.100.10/24 has host bits set; written as 198.51.100.0/24",
        "BGPAdvertisement/external announces it too (aggregationLength 24)",
    ] {
        assert!(notes.contains(want), "missing {want:?} in\n{notes}");
    }
}

const METALLB: &str = include_str!("../../testdata/metallb.yaml");

#[test]
fn metallb_pools_become_local_or_virtual_groups() {
    let m = run(Source::MetalLb, METALLB);
    assert_valid(&m);
    assert_eq!(m.objects.len(), 2, "{:?}", m.objects);
    let lan = &m.objects[0];
    assert_eq!(lan["metadata"]["name"], "lan");
    assert_eq!(
        lan["spec"]["local"]["v4pools"][0]["pool"],
        "192.0.2.100-192.0.2.150"
    );
    assert_eq!(
        lan["spec"]["local"]["v6pools"][0]["pool"],
        "2001:db8:1::/120"
    );
    assert_eq!(lan["spec"]["autoAssign"], false);
    assert_eq!(lan["spec"]["priority"], 10);
    assert_eq!(lan["spec"]["avoidBuggyIPs"], true);
    assert_eq!(lan["spec"]["namespaces"][0], "team-a");
    let routed = &m.objects[1];
    assert_eq!(
        routed["spec"]["autoAssign"], true,
        "MetalLB auto-assigns a pool unless told not to"
    );
    assert_eq!(
        routed["spec"]["virtual"]["v4pools"][0]["aggregation"],
        "/28"
    );
    assert_eq!(
        routed["spec"]["virtual"]["v6pools"][0]["aggregation"],
        "/128"
    );
    assert_eq!(
        routed["spec"]["virtual"]["bgp"]["communities"][0],
        "64512:100"
    );
    assert_eq!(
        routed["spec"]["virtual"]["bgp"]["largeCommunities"][0],
        "64512:1:2"
    );
    assert_eq!(routed["spec"]["virtual"]["bgp"]["localPreference"], 200);
    let notes = m.notes.join("\n");
    for want in [
        "BGPPeer/tor: peers are configured in the BIRD template",
        "IPAddressPool/lan: subnet 192.0.2.0/24 is the smallest CIDR around 192.0.2.100-192.0.2.150",
        "IPAddressPool/lan: L2Advertisement nodeSelectors/interfaces are per node",
        "IPAddressPool/routed: communities given by Community alias",
    ] {
        assert!(notes.contains(want), "missing {want:?} in\n{notes}");
    }
    assert!(!notes.contains("priority"), "priority is carried: {notes}");
}

#[test]
fn purelb_v1_and_v2_objects_convert() {
    let yaml = include_str!("../../testdata/purelb.yaml");
    let m = run(Source::PureLb, yaml);
    assert_valid(&m);
    let by_name = |n: &str| {
        m.objects
            .iter()
            .find(|o| o["metadata"]["name"] == n)
            .expect(n)
            .clone()
    };
    assert_eq!(
        by_name("legacy")["spec"]["local"]["v4pools"][0]["pool"],
        "192.0.2.200-192.0.2.210"
    );
    assert_eq!(
        by_name("bgp-v1")["spec"]["virtual"]["v4pools"][0]["aggregation"],
        "/32"
    );
    assert_eq!(
        by_name("dual")["spec"]["local"]["v6pools"][0]["subnet"],
        "2001:db8:1::/64"
    );
    assert_eq!(
        by_name("remote")["spec"]["virtual"]["v4pools"][0]["aggregation"],
        "/28"
    );
    assert!(m.objects.iter().all(|o| o["metadata"]["name"] != "nb"));
    assert_eq!(by_name("balanced")["spec"]["balancePools"], true);
    assert_eq!(
        by_name("balanced")["spec"]["local"]["v4pools"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(by_name("dual")["spec"].get("balancePools").is_none());
    assert_eq!(by_name("default")["spec"]["gratuitous"]["enabled"], true);
    assert_eq!(by_name("edge")["spec"]["localInterface"], "^eth[0-9]$");
    assert_eq!(by_name("edge")["spec"]["gratuitous"]["count"], 5);
    let notes = m.notes.join("\n");
    for want in [
        "ServiceGroup/nb: netbox IPAM has no equivalent",
        "ServiceGroup/legacy: PureLB v1 announces a 'local' group on kube-lb0",
        "ServiceGroup/bgp-v1: has an aggregation",
        "LBNodeAgent/edge: verifyBeforeSend",
        "LBNodeAgent/default: ferrolb's LBNodeAgent is cluster-scoped",
    ] {
        assert!(notes.contains(want), "missing {want:?} in\n{notes}");
    }
}

#[test]
fn advertisements_apply_to_the_pools_their_selectors_match() {
    let m = run(
        Source::MetalLb,
        include_str!("../../testdata/peers/metallb-l2-selectors.yaml"),
    );
    assert_valid(&m);
    let kind = |name: &str| {
        let g = m
            .objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .expect(name);
        if g["spec"].get("local").is_some() {
            "local"
        } else {
            "virtual"
        }
    };
    assert_eq!(
        kind("doc-example-l2-label"),
        "local",
        "selected by its zone label"
    );
    assert_eq!(
        kind("routed"),
        "virtual",
        "named by the BGPAdvertisement only"
    );
}

#[test]
fn purelb_tenancy_and_multi_pool_are_carried() {
    let m = run(
        Source::PureLb,
        include_str!("../../testdata/peers/purelb-v2-tenants.yaml"),
    );
    assert_valid(&m);
    let spec = &m.objects[0]["spec"];
    assert_eq!(spec["namespaces"][0], "team-a");
    assert_eq!(spec["enforceNamespaces"], true);
    assert_eq!(spec["namespaceDefault"], true);
    assert_eq!(
        m.objects[1]["spec"]["autoAssign"], true,
        "PureLB's default group"
    );
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    let m = run(
        Source::PureLb,
        "apiVersion: purelb.io/v2\nkind: ServiceGroup\nmetadata: { name: wide }\nspec:\n  namespaces: [a]\n  local:\n    multiPool: true\n    v4pools:\n    - { subnet: 192.0.2.0/24, pool: 192.0.2.10-192.0.2.19 }\n    - { subnet: 198.51.100.0/24, pool: 198.51.100.10-198.51.100.19 }\n    - { subnet: 192.0.2.0/24, pool: 192.0.2.30-192.0.2.39 }\n",
    );
    assert_valid(&m);
    assert_eq!(m.objects[0]["spec"]["local"]["multiPool"], true);
    let notes = m.notes.join("\n");
    for want in [
        "ferrolb gives one address per subnet, not per range: pools share subnet 192.0.2.0/24",
        "namespaces is carried, but in ferrolb it bounds",
    ] {
        assert!(notes.contains(want), "missing {want:?} in\n{notes}");
    }
    let m = run(
        Source::PureLb,
        "apiVersion: purelb.io/v2\nkind: ServiceGroup\nmetadata: { name: routed }\nspec:\n  remote:\n    multiPool: true\n    v4pools: [ { subnet: 203.0.113.0/24, pool: 203.0.113.10-203.0.113.19, aggregation: /32 } ]\n",
    );
    assert_valid(&m);
    assert!(
        m.objects[0]["spec"]["virtual"].is_object(),
        "{:?}",
        m.objects
    );
    assert!(m.objects[0]["spec"]["virtual"].get("multiPool").is_none());
    assert!(
        m.notes
            .join("\n")
            .contains("multiPool applies to local groups only"),
        "{:?}",
        m.notes
    );
}
