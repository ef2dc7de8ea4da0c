use super::*;

const A: Mac = [2, 0, 0, 0, 0, 0xa];
const B: Mac = [2, 0, 0, 0, 0, 0xb];
const FOREIGN: Mac = [2, 0, 0, 0, 0, 0xf];

fn addr() -> IpAddr {
    "192.0.2.120".parse().expect("ip")
}

/// Node names such that `low` has the lower election hash for `addr()`.
fn low_high() -> (&'static str, &'static str) {
    if election_hash("n-a", addr()) < election_hash("n-b", addr()) {
        ("n-a", "n-b")
    } else {
        ("n-b", "n-a")
    }
}

#[test]
fn the_lower_hash_keeps_the_address_and_foreign_hosts_are_reported_only() {
    let (low, high) = low_high();
    let known = BTreeMap::from([(A, low.to_string()), (B, high.to_string())]);
    let cases = [
        (
            "higher hash meets lower: yields",
            high,
            A,
            Verdict::Yield { other: low.into() },
        ),
        (
            "lower hash meets higher: keeps",
            low,
            B,
            Verdict::Keep {
                other: Some(high.into()),
            },
        ),
        (
            "foreign MAC: keeps",
            low,
            FOREIGN,
            Verdict::Keep { other: None },
        ),
        (
            "foreign MAC, higher hash: keeps",
            high,
            FOREIGN,
            Verdict::Keep { other: None },
        ),
        (
            "its own MAC on another port: nothing to yield to",
            low,
            A,
            Verdict::Keep { other: None },
        ),
    ];
    for (name, me, mac, want) in cases {
        assert_eq!(judge(me, addr(), mac, &known), want, "{name}");
    }
}

#[test]
fn macs_parse_in_the_published_form_only() {
    assert_eq!(
        parse_mac("02:fb:01:01:00:0A"),
        Some([2, 0xfb, 1, 1, 0, 0xa])
    );
    for bad in [
        "",
        "02:fb:01:01:00",
        "02:fb:01:01:00:0a:01",
        "zz:fb:01:01:00:0a",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

#[test]
fn a_lingering_copy_is_probed_before_the_address_is_added() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    let (every, window) = (Duration::from_millis(100), Duration::from_millis(50));
    assert!(g.allows(a, true, false, false), "nobody lingers: at once");
    assert!(!g.allows(a, false, false, true), "not elected");
    assert!(
        !g.allows(a, true, false, true),
        "a dead holder's copy may linger"
    );
    assert!(g.waiting(a));
    assert_eq!(g.tick(t0, every, window), (vec![], vec![a]));
    assert_eq!(g.answered(a, t0 + Duration::from_millis(1)), Some(true));
    assert_eq!(g.answered(a, t0 + Duration::from_millis(2)), Some(false));
    let t = |ms| t0 + Duration::from_millis(ms);
    assert_eq!(g.tick(t(60), every, window), (vec![], vec![]), "answered");
    assert_eq!(
        g.tick(t(100), every, window),
        (vec![], vec![a]),
        "probed again"
    );
    assert!(!g.allows(a, true, false, true));
    assert_eq!(
        g.tick(t(150), every, window),
        (vec![a], vec![]),
        "quiet: clear"
    );
    assert!(g.allows(a, true, false, true), "clear: add it");
    assert!(g.allows(a, true, true, true), "added: the gate goes");
    assert!(!g.waiting(a));
    assert!(g.allows(a, true, true, true), "held: stays");
}

#[test]
fn a_yielded_address_comes_back_only_when_nobody_answers() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    let t = |ms| t0 + Duration::from_millis(ms);
    let (every, window) = (Duration::from_millis(100), Duration::from_millis(50));
    g.probe_first(a);
    assert!(
        !g.allows(a, true, true, false),
        "yielded: removed although held"
    );
    for round in 0..5 {
        let at = t(round * 100);
        assert_eq!(g.tick(at, every, window), (vec![], vec![a]));
        assert!(g.answered(a, at + Duration::from_millis(2)).is_some());
        assert_eq!(g.tick(at + window, every, window), (vec![], vec![]));
    }
    assert_eq!(g.tick(t(500), every, window), (vec![], vec![a]));
    assert_eq!(g.tick(t(550), every, window), (vec![a], vec![]));
    assert!(g.allows(a, true, false, false));
    g.probe_first(a);
    g.retain(&BTreeSet::new());
    assert!(!g.waiting(a), "forgotten with its Service");
}
