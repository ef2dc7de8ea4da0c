use super::*;

const A: Mac = [2, 0, 0, 0, 0, 0xa];
const B: Mac = [2, 0, 0, 0, 0, 0xb];
const FOREIGN: Mac = [2, 0, 0, 0, 0, 0xf];
/// A second interface of the node whose agent publishes `A`.
const SECOND_PORT: Mac = [2, 0, 0, 0, 1, 0xa];

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

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `conflictProbe` 1 s: probes 100 ms apart, 1 s against a foreign host, 50 ms for an answer.
fn pace() -> Pace {
    Pace::at(Duration::from_secs(1))
}

/// At `localAddressLifetime` 5 s and `conflictProbe` 1 s.
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn the_lower_hash_keeps_the_address_and_foreign_hosts_are_reported_only() {
    let (low, high) = low_high();
    let macs = |own: &[Mac]| Macs {
        own: own.iter().copied().collect(),
        agents: BTreeMap::from([(A, low.to_string()), (B, high.to_string())]),
    };
    let cases = [
        (
            "higher hash meets lower: yields",
            high,
            A,
            macs(&[B]),
            Verdict::Yield { other: low.into() },
        ),
        (
            "lower hash meets higher: keeps",
            low,
            B,
            macs(&[A]),
            Verdict::Keep {
                other: Some(high.into()),
            },
        ),
        (
            "foreign MAC: keeps",
            low,
            FOREIGN,
            macs(&[A]),
            Verdict::Keep { other: None },
        ),
        (
            "foreign MAC, higher hash: keeps",
            high,
            FOREIGN,
            macs(&[B]),
            Verdict::Keep { other: None },
        ),
        (
            "the MAC it publishes, heard on another port: no conflict",
            low,
            A,
            macs(&[]),
            Verdict::Own,
        ),
        (
            "a second interface of this node on the same LAN: no conflict",
            low,
            SECOND_PORT,
            macs(&[A, SECOND_PORT]),
            Verdict::Own,
        ),
        (
            "another node's second interface is that node's business, not an agent's MAC",
            low,
            SECOND_PORT,
            macs(&[A]),
            Verdict::Keep { other: None },
        ),
    ];
    for (name, me, mac, known, want) in cases {
        assert_eq!(judge(me, addr(), mac, &known), want, "{name}");
    }
}

#[test]
fn who_answered() {
    let macs = Macs {
        own: BTreeSet::from([SECOND_PORT]),
        agents: BTreeMap::from([(A, "me".to_string()), (B, "other".to_string())]),
    };
    let cases = [
        ("its own interface", SECOND_PORT, Party::Own),
        ("the MAC it publishes", A, Party::Own),
        ("another agent", B, Party::Agent("other")),
        ("no agent", FOREIGN, Party::Foreign),
    ];
    for (name, mac, want) in cases {
        assert_eq!(macs.party("me", mac), want, "{name}");
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

/// Issue 16 item 12: an address the node did not have was added at once (and announced with
/// gratuitous ARP) unless a dead agent had published it; a pool overlapping a live host took
/// that host's address. Every first add now waits for a probe nobody answers.
#[test]
fn every_first_add_waits_for_an_unanswered_probe() {
    for (name, lingering, why) in [
        ("a new address", false, Wait::New),
        ("a dead holder's copy may linger", true, Wait::Lingering),
    ] {
        let mut g = Gates::default();
        let a = addr();
        let t0 = Instant::now();
        let t = |n| t0 + ms(n);
        assert!(!g.allows(a, false, false, lingering), "{name}: not elected");
        assert!(!g.waiting(a), "{name}: not elected, no gate");
        assert!(!g.allows(a, true, false, lingering), "{name}: probed first");
        assert!(g.waiting(a), "{name}");
        assert_eq!(g.tick(t0, pace()), (vec![], vec![a]), "{name}: probe");
        let answered = |why, waited, tell| Some(Answered { why, waited, tell });
        assert_eq!(
            g.answered(a, t(1), false, PATIENCE),
            answered(why, ms(0), false),
            "{name}: another agent, not yet worth an Event"
        );
        assert_eq!(
            g.answered(a, t(2), false, PATIENCE),
            answered(why, ms(1), false),
            "{name}"
        );
        assert_eq!(g.tick(t(60), pace()), (vec![], vec![]), "{name}: answered");
        assert_eq!(
            g.tick(t(100), pace()),
            (vec![], vec![a]),
            "{name}: probed again"
        );
        assert!(!g.allows(a, true, false, lingering), "{name}: still waits");
        assert_eq!(
            g.tick(t(150), pace()),
            (vec![a], vec![]),
            "{name}: quiet, clear"
        );
        assert!(g.allows(a, true, false, lingering), "{name}: clear, add it");
        assert!(
            g.allows(a, true, true, lingering),
            "{name}: added, the gate goes"
        );
        assert!(!g.waiting(a), "{name}");
        assert!(g.allows(a, true, true, lingering), "{name}: held, stays");
    }
}

#[test]
fn an_address_this_node_has_needs_no_probe() {
    let mut g = Gates::default();
    assert!(
        g.allows(addr(), true, true, false),
        "restart: it is on the kernel"
    );
    assert!(g.allows(addr(), true, true, true));
    assert!(!g.waiting(addr()));
}

#[test]
fn a_yielded_address_comes_back_only_when_nobody_answers() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    let t = |n| t0 + ms(n);
    let window = pace().window;
    g.probe_first(a, Wait::Yielded);
    assert!(
        !g.allows(a, true, true, false),
        "yielded: removed although held"
    );
    for round in 0..5 {
        let at = t(round * 100);
        assert_eq!(g.tick(at, pace()), (vec![], vec![a]));
        assert!(g.answered(a, at + ms(2), false, PATIENCE).is_some());
        assert_eq!(g.tick(at + window, pace()), (vec![], vec![]));
    }
    assert_eq!(g.tick(t(500), pace()), (vec![], vec![a]));
    assert_eq!(g.tick(t(550), pace()), (vec![a], vec![]));
    assert!(g.allows(a, true, false, false));
    g.probe_first(a, Wait::Yielded);
    g.retain(&BTreeSet::new());
    assert!(!g.waiting(a), "forgotten with its Service");
}

/// A host that is no agent may keep the address for days: it is probed once per
/// `conflictProbe`, not ten times, and the address is taken once it stops answering.
#[test]
fn a_foreign_host_is_probed_once_per_interval_until_it_lets_go() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    let t = |n| t0 + ms(n);
    assert!(!g.allows(a, true, false, false));
    assert_eq!(g.tick(t0, pace()), (vec![], vec![a]));
    let answered = |waited, tell| {
        Some(Answered {
            why: Wait::New,
            waited,
            tell,
        })
    };
    assert_eq!(
        g.answered(a, t(1), true, PATIENCE),
        answered(ms(0), true),
        "a host that is no agent: told at once"
    );
    for at in (50..1000).step_by(50) {
        assert_eq!(g.tick(t(at), pace()), (vec![], vec![]), "{at} ms: no probe");
    }
    assert_eq!(g.tick(t(1000), pace()), (vec![], vec![a]), "a second later");
    assert_eq!(
        g.answered(a, t(1001), true, PATIENCE),
        answered(ms(1000), false)
    );
    assert_eq!(g.tick(t(1500), pace()), (vec![], vec![]));
    assert_eq!(g.tick(t(2000), pace()), (vec![], vec![a]));
    // The host removed it: this probe goes unanswered.
    assert_eq!(g.tick(t(2050), pace()), (vec![a], vec![]), "quiet: clear");
    assert!(g.allows(a, true, false, false));
    // An agent's answer after a foreign one brings the quick pace back.
    g.probe_first(a, Wait::Yielded);
    assert_eq!(g.tick(t(3000), pace()), (vec![], vec![a]));
    assert!(g.answered(a, t(3001), true, PATIENCE).is_some());
    assert_eq!(g.tick(t(4000), pace()), (vec![], vec![a]));
    assert!(g.answered(a, t(4001), false, PATIENCE).is_some());
    assert_eq!(g.tick(t(4100), pace()), (vec![], vec![a]), "quick again");
}

#[test]
fn an_address_that_cannot_be_probed_is_not_held_back_forever() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    assert!(!g.allows(a, true, false, false));
    assert_eq!(g.tick(t0, pace()), (vec![], vec![a]));
    assert!(g.unsent(a), "never answered: let through");
    assert!(g.allows(a, true, false, false));
    // Once someone answered, a socket that fails later keeps it waiting.
    g.probe_first(a, Wait::Yielded);
    assert_eq!(g.tick(t0, pace()), (vec![], vec![a]));
    assert!(g.answered(a, t0 + ms(1), false, PATIENCE).is_some());
    assert!(!g.unsent(a));
    assert!(g.waiting(a));
}

/// Issue 16: right after an install, an agent elected for an address another agent (live Lease,
/// not yet heard in gossip) still held waited, correctly, but posted an AddressConflict Warning
/// at the first answer. Another agent answering is a handover in progress: told only when it
/// lasts longer than a crashed agent's copy lasts plus a few probe intervals, and then once.
#[test]
fn another_agent_answering_is_told_only_when_the_handover_outlasts_its_patience() {
    assert_eq!(
        patience(Duration::from_secs(5), Duration::from_secs(1)),
        PATIENCE
    );
    for why in [Wait::New, Wait::Lingering, Wait::Yielded] {
        let mut g = Gates::default();
        let a = addr();
        let t0 = Instant::now();
        g.probe_first(a, why);
        let mut told = Vec::new();
        for at in (0..=15_000).step_by(100) {
            let answer = g
                .answered(a, t0 + ms(at), false, PATIENCE)
                .expect("waiting");
            assert_eq!(answer.why, why);
            assert_eq!(answer.waited, ms(at));
            if answer.tell {
                told.push(at);
            }
        }
        assert_eq!(told, vec![10_000], "{why:?}: once, after the patience");
        // The handover ends: the next wait starts its own clock.
        assert_eq!(g.tick(t0 + ms(15_100), pace()).1, vec![a]);
        assert_eq!(g.tick(t0 + ms(15_150), pace()).0, vec![a], "quiet: clear");
        g.probe_first(a, why);
        let again = g.answered(a, t0 + ms(20_000), false, PATIENCE);
        assert_eq!(again.map(|x| (x.waited, x.tell)), Some((ms(0), false)));
    }
}

/// The prober stalled between deciding to probe (0 ms) and sending (80 ms, past the 50 ms
/// window): the answer has its whole window from the send, so one at 100 ms still counts and a
/// tick at 90 ms does not call the address unanswered.
#[test]
fn the_answer_window_runs_from_the_send() {
    let mut g = Gates::default();
    let a = addr();
    let t0 = Instant::now();
    let t = |n| t0 + ms(n);
    assert!(!g.allows(a, true, false, false));
    assert_eq!(g.tick(t0, pace()), (vec![], vec![a]), "due");
    g.sent(&[(a, t(80))]);
    assert_eq!(g.tick(t(90), pace()), (vec![], vec![]), "not a window yet");
    assert!(g.answered(a, t(100), false, PATIENCE).is_some());
    assert_eq!(g.tick(t(140), pace()), (vec![], vec![]), "answered: waits");
    assert!(g.waiting(a));
}
