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

fn peer(name: &str, alive: bool, holding: &[&str]) -> Peer {
    Peer {
        name: name.into(),
        alive,
        published: published(holding),
    }
}

fn view(me: &str, peers: Vec<Peer>, settled: bool) -> View {
    View {
        me: me.into(),
        peers,
        settled,
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
