//! PureLB and MetalLB annotations ferrolb does not implement: one standing Warning per Service,
//! the same while the set of them stays, a new one when it changes; allocation goes on.

use ferrolb_api::contracts::reason;

use super::*;

fn unsupported_note(p: &Plan, name: &str) -> Option<String> {
    of(p, name)
        .problems
        .iter()
        .find(|n| n.reason == reason::UNSUPPORTED_ANNOTATION)
        .map(|n| {
            assert!(n.warning, "a Warning");
            n.message.clone()
        })
}

#[test]
fn warns_once_per_set_of_unsupported_peer_annotations() {
    let cases: &[(&str, &[(&str, &str)], &[&str])] = &[
        ("none", &[], &[]),
        (
            "honoured aliases only",
            &[
                ("purelb.io/service-group", "g"),
                ("metallb.io/allow-shared-ip", "k"),
            ],
            &[],
        ),
        (
            "written by MetalLB",
            &[("metallb.io/ip-allocated-from-pool", "first-pool")],
            &[],
        ),
        (
            "allow-local",
            &[("purelb.io/allow-local", "true")],
            &["purelb.io/allow-local"],
        ),
        (
            "two",
            &[
                ("purelb.io/skip-ipv6-dad", "true"),
                ("purelb.io/node-affinity", "service-endpoints"),
            ],
            &["purelb.io/node-affinity", "purelb.io/skip-ipv6-dad"],
        ),
    ];
    for (name, anns, keys) in cases {
        let s = anns
            .iter()
            .fold(svc("a").group("g"), |s, (k, v)| s.ann(k, v));
        let mut w = World::new(&[small("g")], &[s]);
        let p = w.pass();
        assert_eq!(w.ips("a"), ["192.0.2.10"], "{name}: allocated all the same");
        let note = unsupported_note(&p, "a");
        assert_eq!(note.is_some(), !keys.is_empty(), "{name}: {note:?}");
        let note = note.unwrap_or_default();
        for k in *keys {
            assert!(note.contains(k), "{name}: names {k}: {note}");
        }
        assert_eq!(
            problems(&p, "a")
                .iter()
                .filter(|r| **r == reason::UNSUPPORTED_ANNOTATION)
                .count(),
            usize::from(!keys.is_empty()),
            "{name}: one Event for all of them"
        );
    }
}

#[test]
fn the_warning_changes_only_with_the_set_of_annotations() {
    let base = svc("a").group("g").ann("purelb.io/allow-local", "true");
    let mut w = World::new(&[small("g")], std::slice::from_ref(&base));
    let first = unsupported_note(&w.pass(), "a");
    assert!(first.is_some());
    // Another pass, and another value of the same annotation: the same problem (told once).
    assert_eq!(unsupported_note(&w.pass(), "a"), first);
    w.edit(base.clone().ann("purelb.io/allow-local", "false"));
    assert_eq!(unsupported_note(&w.pass(), "a"), first);
    // One more annotation: a new problem, told.
    w.edit(base.clone().ann("purelb.io/re-evaluate", "true"));
    let second = unsupported_note(&w.pass(), "a");
    assert!(
        second
            .as_deref()
            .is_some_and(|n| n.contains("purelb.io/re-evaluate"))
    );
    assert_ne!(second, first);
    // Removed: the problem goes.
    w.edit(svc("a").group("g"));
    assert_eq!(unsupported_note(&w.pass(), "a"), None);
    assert_eq!(w.ips("a"), ["192.0.2.10"], "never renumbered");
}
