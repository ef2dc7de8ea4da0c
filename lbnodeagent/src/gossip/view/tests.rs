use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn published(holding: &[&str]) -> Published {
    Published {
        ineligible: None,
        subnets: ["192.0.2.0/24".parse().expect("cidr")].into(),
        macs: [("eth0".to_string(), "02:00:00:00:00:01".to_string())].into(),
        holding: holding.iter().map(|a| ip(a)).collect(),
    }
}

/// A gossip address per node name (distinct for the names these tests use).
fn addr_of(name: &str) -> SocketAddr {
    let n = name.bytes().map(u32::from).sum::<u32>() % 250 + 1;
    format!("198.51.100.{n}:7947").parse().expect("addr")
}

fn peer(name: &str, alive: bool, holding: &[&str]) -> Peer {
    Peer {
        name: name.into(),
        alive,
        heard: true,
        addr: Some(addr_of(name)),
        published: published(holding),
    }
}

/// A view in which every peer has an alive per-node Lease naming its gossip address.
fn view(me: &str, peers: Vec<Peer>, settled: bool) -> View {
    let leases = peers
        .iter()
        .map(|p| LeasedNode {
            gossip_addr: p.addr,
            ..leased(&p.name, &[], false)
        })
        .collect();
    View {
        me: me.into(),
        peers,
        settled,
        leases,
    }
}

fn leased(node: &str, holding: &[&str], truncated: bool) -> LeasedNode {
    LeasedNode {
        node: node.into(),
        gossip_addr: None,
        holding: holding.iter().map(|a| ip(a)).collect(),
        holding_truncated: truncated,
    }
}

#[test]
fn published_values_round_trip_through_gossip_keys() {
    let p = Published {
        ineligible: Some(IneligibleReason::CarrierDown),
        subnets: [
            "192.0.2.0/24".parse().expect("cidr"),
            "2001:db8:1::/64".parse().expect("cidr"),
        ]
        .into(),
        macs: [("eth0".into(), "02:aa:bb:cc:dd:ee".into())].into(),
        holding: [ip("192.0.2.100"), ip("2001:db8:1::5")].into(),
    };
    let kv = encode(&p);
    assert_eq!(kv["eligible"], "false,carrier-down");
    assert_eq!(kv["subnets"], "192.0.2.0/24 2001:db8:1::/64");
    assert!(kv.contains_key("h/192.0.2.100") && kv.contains_key("h/2001:db8:1::5"));
    assert_eq!(decode(kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))), p);
}

#[test]
fn decoding_is_conservative() {
    let cases: Vec<(&str, Vec<(&str, &str)>, Option<IneligibleReason>, usize)> = vec![
        (
            "nothing published: not eligible",
            vec![],
            Some(IneligibleReason::NotReady),
            0,
        ),
        (
            "garbage eligible: not eligible",
            vec![("eligible", "maybe")],
            Some(IneligibleReason::NotReady),
            0,
        ),
        (
            "bad holding key ignored",
            vec![("eligible", "true"), ("h/not-an-ip", "1")],
            None,
            0,
        ),
        (
            "unknown keys ignored",
            vec![("eligible", "true"), ("x", "y"), ("h/192.0.2.1", "1")],
            None,
            1,
        ),
    ];
    for (name, kv, ineligible, holding) in cases {
        let p = decode(kv);
        assert_eq!(p.ineligible, ineligible, "{name}");
        assert_eq!(p.holding.len(), holding, "{name}");
    }
}

#[test]
fn break_before_make_and_settling() {
    let a = ip("192.0.2.100");
    let nodes = ["node-a", "node-b", "node-c"];
    let all = |holding_of: &str, alive_holder: bool| -> Vec<Peer> {
        nodes
            .iter()
            .map(|n| {
                let holds = if *n == holding_of {
                    vec!["192.0.2.100"]
                } else {
                    vec![]
                };
                peer(n, *n != holding_of || alive_holder, &holds)
            })
            .collect()
    };
    let elected = view("node-a", all("", true), true)
        .holder(a, None)
        .expect("a holder");
    let other = *nodes.iter().find(|n| **n != elected).expect("another node");
    let cases: Vec<(&str, View, bool, bool)> = vec![
        (
            "elected and free: claim",
            view(&elected, all("", true), true),
            false,
            true,
        ),
        (
            "elected but another live node still holds it: wait",
            view(&elected, all(other, true), true),
            false,
            false,
        ),
        (
            "elected, the old holder is dead: claim at once",
            view(&elected, all(other, false), true),
            false,
            true,
        ),
        (
            "elected but not settled: wait",
            view(&elected, all("", true), false),
            false,
            false,
        ),
        (
            "already holding and still elected: keep",
            view(&elected, all(other, true), false),
            true,
            true,
        ),
        (
            "not elected: let go",
            view(other, all("", true), true),
            true,
            false,
        ),
    ];
    for (name, v, holding_now, want) in cases {
        assert_eq!(v.should_hold(a, None, holding_now), want, "{name}");
    }
}

/// Issue 16 item 8: an agent restarted during a rolling restart, on a loaded machine, took an
/// address while the node holding it was still to be heard from on gossip (its view had
/// settled by time, or the holder was not yet in it). What a node not yet heard from says on
/// its Lease now counts: the newcomer waits until gossip shows that node let go.
#[test]
fn a_holder_not_yet_heard_from_keeps_its_address_by_its_lease() {
    let a = ip("192.0.2.100");
    let nodes = ["node-a", "node-b", "node-c"];
    let everyone: Vec<Peer> = nodes.iter().map(|n| peer(n, true, &[])).collect();
    let me = view("node-a", everyone.clone(), true)
        .holder(a, None)
        .expect("a holder");
    // The others as a starting agent sees them: only itself heard from so far.
    let alone = vec![peer(&me, true, &[])];
    let with = |peers: Vec<Peer>, leases: Vec<LeasedNode>| View {
        me: me.clone(),
        peers,
        settled: true,
        leases,
    };
    let other = nodes.iter().find(|n| **n != me).expect("another node");
    let cases: Vec<(&str, View, bool, bool)> = vec![
        (
            "settled by time, the holder unheard, its Lease lists the address: wait",
            with(alone.clone(), vec![leased(other, &["192.0.2.100"], false)]),
            false,
            false,
        ),
        (
            "the unheard node's Lease is truncated: it may hold it, wait",
            with(alone.clone(), vec![leased(other, &[], true)]),
            false,
            false,
        ),
        (
            "the unheard node holds other addresses only: claim",
            with(alone.clone(), vec![leased(other, &["192.0.2.101"], false)]),
            false,
            true,
        ),
        (
            "its own (older) Lease lists the address: claim",
            with(alone.clone(), vec![leased(&me, &["192.0.2.100"], false)]),
            false,
            true,
        ),
        (
            "already holding: keep (the other side lets go)",
            with(alone, vec![leased(other, &["192.0.2.100"], false)]),
            true,
            true,
        ),
    ];
    for (name, v, holding_now, want) in cases {
        assert_eq!(v.should_hold(a, None, holding_now), want, "{name}");
    }
}

/// Issue 16 item 14: any holder of the gossip key could invent a node with a low election hash,
/// or pose as another node from its own address. Only nodes whose alive per-node Lease names
/// the gossip address they gossip from are candidates (this node always is, for itself).
#[test]
fn only_nodes_with_a_lease_naming_their_gossip_address_are_candidates() {
    let a = ip("192.0.2.100");
    let names = ["node-a", "node-b", "node-c"];
    let everyone = |v: &View| {
        v.contenders(None)
            .into_iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    };
    let full = view(
        "node-a",
        names.iter().map(|n| peer(n, true, &[])).collect(),
        true,
    );
    assert_eq!(everyone(&full), names);
    let winner = full.holder(a, None).expect("a holder");
    let other = names.iter().find(|n| **n != winner && **n != "node-a");
    let cases: Vec<(&str, Box<dyn Fn(&mut View)>, bool)> = vec![
        (
            "the winner has no Lease (invented)",
            Box::new(|v: &mut View| v.leases.retain(|l| l.node != winner)),
            false,
        ),
        (
            "the winner's Lease names another gossip address (posed as)",
            Box::new(|v: &mut View| {
                for l in &mut v.leases {
                    if l.node == winner {
                        l.gossip_addr = Some(addr_of("someone else"));
                    }
                }
            }),
            false,
        ),
        (
            "the winner's Lease names no gossip address",
            Box::new(|v: &mut View| {
                for l in &mut v.leases {
                    if l.node == winner {
                        l.gossip_addr = None;
                    }
                }
            }),
            false,
        ),
        ("all leased", Box::new(|_: &mut View| {}), true),
    ];
    for (name, change, winner_runs) in cases {
        let mut v = full.clone();
        change(&mut v);
        let runs = everyone(&v);
        assert_eq!(
            runs.contains(&winner.to_string()),
            winner_runs || winner == "node-a",
            "{name}"
        );
        if let Some(other) = other {
            assert!(
                runs.contains(&other.to_string()),
                "{name}: others still run"
            );
        }
    }
    // This node runs for itself without a Lease of its own (a cold start).
    let mut cold = full.clone();
    cold.leases.retain(|l| l.node != "node-a");
    assert!(everyone(&cold).contains(&"node-a".to_string()));
}

#[test]
fn etp_local_elects_among_endpoint_nodes_only() {
    let a = ip("192.0.2.100");
    let v = view(
        "node-a",
        vec![
            peer("node-a", true, &[]),
            peer("node-b", true, &[]),
            peer("node-c", true, &[]),
        ],
        true,
    );
    let only_b: BTreeSet<String> = ["node-b".to_string()].into();
    assert_eq!(v.holder(a, Some(&only_b)).as_deref(), Some("node-b"));
    assert_eq!(v.holder(a, Some(&BTreeSet::new())), None);
}

#[test]
fn settles_when_every_fresh_node_was_heard_or_the_time_is_up() {
    let t0 = Instant::now();
    let settle = Duration::from_secs(2);
    let fresh: BTreeSet<String> = ["a".into(), "b".into()].into();
    let cases: Vec<(&str, Duration, Vec<&str>, bool)> = vec![
        (
            "heard from nobody yet",
            Duration::from_millis(100),
            vec![],
            false,
        ),
        (
            "heard from some",
            Duration::from_millis(100),
            vec!["a"],
            false,
        ),
        (
            "heard from all fresh nodes",
            Duration::from_millis(100),
            vec!["a", "b"],
            true,
        ),
        (
            "heard from more than the Leases list",
            Duration::from_millis(100),
            vec!["a", "b", "c"],
            true,
        ),
        ("time is up", Duration::from_secs(2), vec![], true),
    ];
    for (name, after, heard, want) in cases {
        let heard: BTreeSet<String> = heard.into_iter().map(String::from).collect();
        assert_eq!(
            settled("a", t0, t0 + after, settle, &fresh, &heard),
            want,
            "{name}"
        );
    }
    // A cold start: its own Lease is not there yet, so nothing proves it heard from everyone.
    let early = t0 + Duration::from_millis(100);
    let me: BTreeSet<String> = ["a".into()].into();
    assert!(!settled("a", t0, early, settle, &BTreeSet::new(), &me));
    assert!(!settled(
        "a",
        t0,
        early,
        settle,
        &["b".into()].into(),
        &fresh
    ));
    assert!(settled("a", t0, t0 + settle, settle, &BTreeSet::new(), &me));
}
