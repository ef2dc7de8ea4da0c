//! The metrics' pure functions and the series they leave, table-tested.

use super::*;
use crate::decide::DesiredAddress;
use crate::snapshot::Lifetime;

#[test]
fn every_name_starts_with_ferrolb_agent() {
    let m = Metrics::new();
    m.added(AddressKind::Local, "192.0.2.1".parse().expect("ip"));
    m.removed();
    m.gratuitous_sent("2001:db8::1".parse().expect("ip"));
    m.reconciled(0.002);
    m.gossip_counters().rejected.inc();
    m.live_peers(2);
    m.lease_renewed();
    m.announced(
        "n1",
        &held(&["192.0.2.1"]),
        &desired(&[]),
        &services(&[("192.0.2.1", "ns/a")]),
    );
    let text = m.render();
    for want in [
        "ferrolb_agent_address_adds_total{kind=\"local\",family=\"ipv4\"} 1",
        "ferrolb_agent_address_removes_total 1",
        "ferrolb_agent_gratuitous_packets_sent_total{family=\"ipv6\"} 1",
        "ferrolb_agent_reconcile_duration_seconds_count 1",
        "ferrolb_agent_netlink_errors_total 0",
        "ferrolb_agent_gossip_rejected_total 1",
        "ferrolb_agent_gossip_accepted_total 0",
        "ferrolb_agent_gossip_live_peers 2",
        "ferrolb_agent_lease_renewals_total 1",
        "ferrolb_agent_lease_renewal_errors_total 0",
        "ferrolb_agent_announced{service_namespace=\"ns\",service_name=\"a\",address=\"192.0.2.1\",node=\"n1\",kind=\"local\"} 1",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("ferrolb_agent_"), "{line}");
    }
}

#[test]
fn the_specimen_has_every_family() {
    let text = specimen();
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families, 14, "{text}");
}

#[test]
fn announces_held_local_and_desired_virtual_addresses_of_services() {
    let svcs = services(&[
        ("192.0.2.1", "ns/a"),
        ("192.0.2.2", "ns/b"),
        ("2001:db8::1", "other/c"),
    ]);
    let cases = [
        ("nothing held", held(&[]), desired(&[]), vec![]),
        (
            "a held local address",
            held(&["192.0.2.1"]),
            desired(&[]),
            vec![("ns", "a", "192.0.2.1", "local")],
        ),
        (
            "a virtual address",
            held(&[]),
            desired(&["2001:db8::1"]),
            vec![("other", "c", "2001:db8::1", "virtual")],
        ),
        (
            "an address of no Service is left out",
            held(&["192.0.2.9"]),
            desired(&[]),
            vec![],
        ),
    ];
    for (name, held, desired, want) in cases {
        let got: Vec<(String, String, String, &str)> = announced("n1", &held, &desired, &svcs)
            .into_iter()
            .inspect(|l| assert_eq!(l.node, "n1", "{name}"))
            .map(|l| (l.service_namespace, l.service_name, l.address, l.kind))
            .collect();
        let want: Vec<(String, String, String, &str)> = want
            .into_iter()
            .map(|(ns, n, a, k)| (ns.into(), n.into(), a.into(), k))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn an_address_this_node_stops_announcing_loses_its_series() {
    let m = Metrics::new();
    let svcs = services(&[("192.0.2.1", "ns/a"), ("192.0.2.2", "ns/b")]);
    m.announced(
        "n1",
        &held(&["192.0.2.1", "192.0.2.2"]),
        &desired(&[]),
        &svcs,
    );
    assert!(m.render().contains("address=\"192.0.2.2\""));
    m.announced("n1", &held(&["192.0.2.1"]), &desired(&[]), &svcs);
    let text = m.render();
    assert!(text.contains("address=\"192.0.2.1\""), "{text}");
    assert!(!text.contains("192.0.2.2"), "{text}");
}

fn held(addresses: &[&str]) -> BTreeSet<(String, IpAddr)> {
    addresses
        .iter()
        .map(|a| ("eth0".to_string(), a.parse().expect("ip")))
        .collect()
}

fn desired(virtuals: &[&str]) -> Desired {
    Desired {
        addresses: virtuals
            .iter()
            .map(|a| {
                let address: IpAddr = a.parse().expect("ip");
                (
                    ("kube-lb0".to_string(), address),
                    DesiredAddress {
                        interface: "kube-lb0".into(),
                        address,
                        prefix_len: 128,
                        kind: AddressKind::Virtual,
                        flags: 0,
                        valid: Lifetime::Forever,
                        preferred: Lifetime::Forever,
                    },
                )
            })
            .collect(),
        eligible: None,
        local_interface_v4: None,
        local_interface_v6: None,
        subnets: BTreeSet::new(),
        virtual_interface: "kube-lb0".into(),
        keep_virtual_interface: true,
        skipped: vec![],
    }
}

fn services(rows: &[(&str, &str)]) -> BTreeMap<IpAddr, String> {
    rows.iter()
        .map(|(a, k)| (a.parse().expect("ip"), (*k).to_string()))
        .collect()
}
