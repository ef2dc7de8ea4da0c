//! The dataplane against a real kernel, each test in its own throw-away network namespace.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{find, ip_addr_lines, lan, read, reconcile, require_root, shown, svc};
use ferrolb_api::contracts::IFA_PROTO_FERROLB;
use ferrolb_lbnodeagent::apply::{Outcome, apply};
use ferrolb_lbnodeagent::decide::{
    AddressKind, Change, DesiredAddress, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, MANAGED_FLAGS,
};
use ferrolb_lbnodeagent::netlink::{AddressSpec, Netlink, Write};
use ferrolb_lbnodeagent::snapshot::{Lifecycle, Lifetime};

#[test]
fn local_ipv4_address_carries_our_proto_noprefixroute_and_lifetime() {
    if !require_root() {
        return;
    }
    let ns = lan();
    let got = ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        let report = reconcile(
            &nl,
            vec![svc("web", "lan", &["192.0.2.100"])],
            Lifecycle::Running,
            5,
        )
        .await;
        assert_eq!(
            shown(&report),
            ["create kube-lb0", "add lan0 192.0.2.100/24"]
        );
        find(&read(&nl, "lan0").await, "192.0.2.100").expect("the address")
    });
    assert_eq!(got.prefix_len, 24);
    assert_eq!(got.proto, IFA_PROTO_FERROLB);
    assert_eq!(got.flags & MANAGED_FLAGS, IFA_F_NOPREFIXROUTE);
    assert!(matches!(got.valid, Lifetime::Seconds(4..=5)), "{got:?}");
    let line =
        ip_addr_lines(&ns.ip("-d addr show dev lan0"), "192.0.2.100").expect("ip addr shows it");
    for want in ["secondary", "dynamic", "noprefixroute"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    assert!(
        line.contains("valid_lft 5sec") || line.contains("valid_lft 4sec"),
        "{line}"
    );
    // No prefix route of its own: the node's address already has the subnet's route.
    let routes = ns.ip("route show 192.0.2.0/24");
    assert!(!routes.contains("192.0.2.100"), "{routes}");
}

#[test]
fn local_ipv6_address_is_nodad_and_never_preferred() {
    if !require_root() {
        return;
    }
    let ns = lan();
    let got = ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        reconcile(
            &nl,
            vec![svc("web", "lan", &["2001:db8:1::10"])],
            Lifecycle::Running,
            5,
        )
        .await;
        find(&read(&nl, "lan0").await, "2001:db8:1::10").expect("the address")
    });
    assert_eq!((got.prefix_len, got.proto), (64, IFA_PROTO_FERROLB));
    assert_eq!(got.flags & MANAGED_FLAGS, IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
    assert_eq!(got.preferred, Lifetime::Seconds(0));
    assert!(matches!(got.valid, Lifetime::Seconds(4..=5)), "{got:?}");
    let line =
        ip_addr_lines(&ns.ip("-d addr show dev lan0"), "2001:db8:1::10").expect("ip addr shows it");
    for want in ["deprecated", "nodad", "noprefixroute", "preferred_lft 0sec"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    assert!(!line.contains("tentative"), "{line}");
}

#[test]
fn a_second_round_changes_nothing() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        let services = || {
            vec![
                svc("web", "lan", &["192.0.2.100", "2001:db8:1::10"]),
                svc("api", "routed", &["203.0.113.1", "2001:db8:ff::1"]),
            ]
        };
        let first = reconcile(&nl, services(), Lifecycle::Running, 30).await;
        assert_eq!(first.len(), 5, "{:?}", shown(&first));
        let second = reconcile(&nl, services(), Lifecycle::Running, 30).await;
        assert_eq!(shown(&second), Vec::<String>::new());
    });
}

#[test]
fn kube_lb0_keeps_an_aggregate_when_one_address_goes_and_goes_after_the_drain() {
    if !require_root() {
        return;
    }
    let ns = lan();
    let all = ["203.0.113.1", "203.0.113.2", "203.0.113.3"];
    let kind = ns.run(move || async move {
        let nl = Netlink::connect().expect("netlink");
        let services = vec![
            svc("a", "routed", &all),
            svc("b", "routed", &["2001:db8:ff::1", "2001:db8:ff::2"]),
        ];
        reconcile(&nl, services, Lifecycle::Running, 5).await;
        let kind = nl
            .interfaces()
            .await
            .expect("links")
            .into_iter()
            .find(|i| i.name == "kube-lb0")
            .and_then(|i| i.kind);
        let addrs = read(&nl, "kube-lb0").await;
        for a in all {
            let got = find(&addrs, a).expect("virtual address");
            assert_eq!(
                (got.prefix_len, got.proto, got.valid),
                (28, IFA_PROTO_FERROLB, Lifetime::Forever)
            );
        }
        kind
    });
    // dummy where the kernel has the driver (CI's kernel has not), ifb otherwise.
    let has_dummy = ns.try_ip("link add probe0 type dummy").is_ok();
    assert_eq!(
        kind.as_deref(),
        Some(if has_dummy { "dummy" } else { "ifb" })
    );
    assert_eq!(
        ns.sysctl("/proc/sys/net/ipv4/conf/kube-lb0/promote_secondaries"),
        "1"
    );
    let link = ns.ip("-d link show dev kube-lb0");
    assert!(link.contains("NOARP") && link.contains(",UP"), "{link}");
    assert!(ns.ip("route show 203.0.113.0/28").contains("proto kernel"));

    // The first address of the aggregate is its primary: removing it must keep the others.
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        let services = vec![
            svc("a", "routed", &["203.0.113.2", "203.0.113.3"]),
            svc("b", "routed", &["2001:db8:ff::2"]),
        ];
        let report = reconcile(&nl, services, Lifecycle::Running, 5).await;
        assert_eq!(
            shown(&report),
            [
                "remove kube-lb0 203.0.113.1/28",
                "remove kube-lb0 2001:db8:ff::1/64"
            ]
        );
    });
    let addrs = ns.ip("addr show dev kube-lb0");
    assert!(!addrs.contains("203.0.113.1/"), "{addrs}");
    for kept in ["203.0.113.2/28", "203.0.113.3/28", "2001:db8:ff::2/64"] {
        assert!(
            addrs.contains(kept),
            "{kept} went with its neighbour: {addrs}"
        );
    }
    assert!(ns.ip("route show 203.0.113.0/28").contains("proto kernel"));
    assert!(ns.ip("-6 route show 2001:db8:ff::/64").contains("kube-lb0"));

    // Draining keeps them; after the drain they and kube-lb0 go.
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        let services = || vec![svc("a", "routed", &["203.0.113.2", "203.0.113.3"])];
        assert!(
            reconcile(&nl, services(), Lifecycle::Draining, 5)
                .await
                .iter()
                .all(|a| !matches!(a.change, Change::Remove(ref o) if o.address.is_ipv4()))
        );
        let report = reconcile(&nl, services(), Lifecycle::Drained, 5).await;
        assert_eq!(
            shown(&report).last().map(String::as_str),
            Some("remove link kube-lb0")
        );
        assert_eq!(nl.link_index("kube-lb0").await.expect("lookup"), None);
    });
}

#[test]
fn addresses_we_did_not_add_survive() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.ip("link add kube-lb0 type ifb");
    ns.ip("addr add 192.0.2.77/24 dev lan0");
    ns.ip("addr add 192.0.2.100/24 dev lan0");
    ns.ip("addr add 203.0.113.77/28 dev kube-lb0");
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        // 192.0.2.100 is wanted, but someone else's copy is there: diff leaves it alone.
        let report = reconcile(
            &nl,
            vec![svc("web", "lan", &["192.0.2.100"])],
            Lifecycle::Running,
            5,
        )
        .await;
        assert_eq!(shown(&report), Vec::<String>::new());
        // And an exclusive add, as apply sends, gets EEXIST rather than taking it over.
        let add = Change::Add(DesiredAddress {
            interface: "lan0".into(),
            address: "192.0.2.100".parse().expect("ip"),
            prefix_len: 24,
            kind: AddressKind::Local,
            flags: IFA_F_NOPREFIXROUTE,
            valid: Lifetime::Seconds(5),
            preferred: Lifetime::Seconds(5),
        });
        let report = apply(&nl, &[add]).await;
        assert!(
            matches!(report[0].outcome, Outcome::AlreadyThere),
            "{report:?}"
        );
        // Nothing wanted: still nothing of theirs is touched.
        reconcile(&nl, vec![], Lifecycle::Running, 5).await;
        let lan0 = read(&nl, "lan0").await;
        for theirs in ["192.0.2.5", "192.0.2.77", "192.0.2.100"] {
            let a = find(&lan0, theirs).unwrap_or_else(|| panic!("{theirs} was removed"));
            assert_eq!((a.proto, a.valid), (0, Lifetime::Forever), "{theirs}");
        }
        assert!(find(&read(&nl, "kube-lb0").await, "203.0.113.77").is_some());
    });
}

#[test]
fn stale_owned_addresses_are_removed_on_start() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.ip("addr add 192.0.2.121/24 dev lan0");
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        nl.ensure_virtual_interface("kube-lb0")
            .await
            .expect("kube-lb0");
        // What a previous agent left behind.
        for (interface, addr, prefix_len) in
            [("lan0", "192.0.2.120", 24), ("kube-lb0", "203.0.113.9", 28)]
        {
            let spec = AddressSpec {
                index: nl
                    .link_index(interface)
                    .await
                    .expect("lookup")
                    .expect("link"),
                address: addr.parse().expect("ip"),
                prefix_len,
                flags: 0,
                proto: IFA_PROTO_FERROLB,
                valid: Lifetime::Forever,
                preferred: Lifetime::Forever,
            };
            nl.write_address(&spec, Write::Create)
                .await
                .expect("stale address");
        }
        let report = reconcile(
            &nl,
            vec![svc("web", "lan", &["192.0.2.100"])],
            Lifecycle::Running,
            5,
        )
        .await;
        assert_eq!(
            shown(&report),
            [
                "remove kube-lb0 203.0.113.9/28",
                "remove lan0 192.0.2.120/24",
                "add lan0 192.0.2.100/24"
            ]
        );
        let lan0 = read(&nl, "lan0").await;
        assert!(find(&lan0, "192.0.2.120").is_none());
        assert!(
            find(&lan0, "192.0.2.121").is_some(),
            "someone else's address went"
        );
        assert!(
            read(&nl, "kube-lb0")
                .await
                .iter()
                .all(|a| a.proto != IFA_PROTO_FERROLB)
        );
    });
}

#[test]
fn moving_the_default_route_moves_the_local_address() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.veth("lan1", &["192.0.2.6/24"]);
    let services = || vec![svc("web", "lan", &["192.0.2.100"])];
    ns.run(move || async move {
        let nl = Netlink::connect().expect("netlink");
        reconcile(&nl, services(), Lifecycle::Running, 5).await;
        assert!(find(&read(&nl, "lan0").await, "192.0.2.100").is_some());
    });
    ns.ip("route del default");
    ns.ip("route add default via 192.0.2.1 dev lan1 metric 100");
    ns.run(move || async move {
        let nl = Netlink::connect().expect("netlink");
        let report = reconcile(&nl, services(), Lifecycle::Running, 5).await;
        assert_eq!(
            shown(&report),
            ["remove lan0 192.0.2.100/24", "add lan1 192.0.2.100/24"]
        );
        assert!(find(&read(&nl, "lan0").await, "192.0.2.100").is_none());
        let moved = find(&read(&nl, "lan1").await, "192.0.2.100").expect("moved");
        assert_eq!(moved.proto, IFA_PROTO_FERROLB);
    });
}

#[test]
fn local_addresses_are_renewed_and_expire_when_nobody_renews_them() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        let services = || vec![svc("web", "lan", &["192.0.2.100"])];
        reconcile(&nl, services(), Lifecycle::Running, 3).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let report = reconcile(&nl, services(), Lifecycle::Running, 3).await;
        assert_eq!(shown(&report), ["renew lan0 192.0.2.100/24"]);
        let renewed = find(&read(&nl, "lan0").await, "192.0.2.100").expect("renewed");
        assert_eq!(renewed.valid, Lifetime::Seconds(3));
        // An agent that died renews nothing: its copy goes by itself.
        // The kernel's lifetime worker rounds up to whole seconds, so allow it a little more.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        while find(&read(&nl, "lan0").await, "192.0.2.100").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the address outlived its lifetime"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn the_kernel_keeps_ifa_proto() {
    if !require_root() {
        return;
    }
    let ns = lan();
    ns.run(|| async {
        let nl = Netlink::connect().expect("netlink");
        nl.ensure_virtual_interface("kube-lb0")
            .await
            .expect("kube-lb0");
        // A second ensure finds it and changes nothing.
        nl.ensure_virtual_interface("kube-lb0")
            .await
            .expect("idempotent");
        let probe: IpAddr = "203.0.113.254".parse().expect("ip");
        nl.check_address_protocol("kube-lb0", probe)
            .await
            .expect("IFA_PROTO kept");
        assert!(
            find(&read(&nl, "kube-lb0").await, "203.0.113.254").is_none(),
            "probe left behind"
        );
        let missing = nl.check_address_protocol("nope0", probe).await;
        assert!(missing.is_err());
    });
}
