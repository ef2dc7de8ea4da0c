//! Which Services are ours, which ServiceGroup serves each (the one named if it admits the
//! Service, else the first candidate of [`selection::select`] with room on the pass's book), and
//! which families it gets.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::contracts::LOAD_BALANCER_CLASS;
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::selection::{
    self, Ask, GroupFacts, Labels, Refusal, Selection, Who, admission, tenancy,
};

use crate::observe::{GroupView, SvcView};
use crate::state::{Book, GroupBook, Owner};

/// How the allocator was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Serve Services with no `loadBalancerClass`.
    pub handle_unclassed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            handle_unclassed: true,
        }
    }
}

/// A Service of type LoadBalancer with our class (or none, when we handle unclassed ones).
pub fn is_ours(s: &SvcView, settings: &Settings) -> bool {
    s.load_balancer
        && match s.class.as_deref() {
            Some(c) => c == LOAD_BALANCER_CLASS,
            None => settings.handle_unclassed,
        }
}

/// Labels of each Namespace, by name.
pub type Namespaces = BTreeMap<String, Labels>;

/// The group a Service names, or why it cannot use it (a message that says what to do).
pub fn named_group<'a>(
    s: &SvcView,
    name: &str,
    groups: &'a [GroupView],
    namespaces: &Namespaces,
) -> Result<&'a GroupView, String> {
    let Some(g) = groups.iter().find(|g| g.name == name) else {
        return Err(format!(
            "ServiceGroup {name:?} (named by the Service's annotation) does not exist; create it or name another group"
        ));
    };
    admitted(s, g, groups, namespaces).map_err(|why| refused(s, name, &why))?;
    Ok(g)
}

/// Whether `g` admits the Service, by the one rule ([`admission`]) the selection uses too.
pub fn admitted(
    s: &SvcView,
    g: &GroupView,
    groups: &[GroupView],
    namespaces: &Namespaces,
) -> Result<(), Refusal> {
    let who = who(s, namespaces);
    let tenants = tenancy(&who, groups.iter().map(|g| (g.name.as_str(), &g.spec)));
    admission(&who, &g.name, &g.spec, &tenants)
}

/// The Warning for a Service that `group` does not admit: the rule that says no, that what the
/// Service holds stays, and what to do.
pub fn refused(s: &SvcView, group: &str, why: &Refusal) -> String {
    let keeps = if s.ingress.is_empty() {
        ""
    } else {
        "the Service keeps the addresses it has but gets no new one from it; "
    };
    format!("ServiceGroup {group}: {why}; {keeps}{}", why.advice())
}

/// The Service as the admission rule sees it; a namespace not (yet) seen has unknown labels.
fn who<'a>(s: &'a SvcView, namespaces: &'a Namespaces) -> Who<'a> {
    Who {
        namespace: &s.key.namespace,
        namespace_labels: namespaces.get(&s.key.namespace),
        labels: Some(&s.labels),
    }
}

/// What the selection rule needs to know about a Service.
pub fn ask<'a>(s: &'a SvcView, namespaces: &'a Namespaces) -> Ask<'a> {
    Ask {
        who: who(s, namespaces),
        families: &s.families,
        policy: s.policy,
    }
}

/// The families a Service gets from a group that offers `offered` (see [`selection::families`]).
pub fn families(
    s: &SvcView,
    offered: &BTreeSet<Family>,
    group: &str,
) -> Result<Vec<Family>, String> {
    selection::families(&ask(s, &Namespaces::new()), offered, group)
}

/// Every group's verdict for a Service that names none and holds nothing, judged on the pass's
/// book as it stands: a group's last free address taken by an earlier Service of this pass is
/// not counted twice.
pub fn auto_select<'a>(
    s: &SvcView,
    owner: &Owner,
    groups: &'a [GroupView],
    namespaces: &Namespaces,
    book: &Book,
) -> Selection<'a> {
    let facts: Vec<GroupFacts<'a>> = groups
        .iter()
        .map(|g| {
            let gb = book.groups.get(&g.name);
            GroupFacts {
                name: &g.name,
                spec: &g.spec,
                offered: gb.map(|b| b.families.clone()).unwrap_or_default(),
                unusable: match gb {
                    Some(b) if b.usable => None,
                    _ if g.deleting => Some("being deleted".into()),
                    _ => Some("see its conditions: overlapping or invalid range".into()),
                },
                no_room: gb.map(|b| no_room(b, s, owner)).unwrap_or_default(),
            }
        })
        .collect();
    selection::select(&ask(s, namespaces), &facts)
}

/// The families in which `g` has no room for the Service, each with why: no free address (an
/// address its sharing key is bound to and it may join counts as room), or, for a requested
/// address, that the group cannot give that one.
fn no_room(g: &GroupBook, s: &SvcView, owner: &Owner) -> BTreeMap<Family, String> {
    let mut out = BTreeMap::new();
    for &f in &g.families {
        let why = if let Some(&r) = s.requested.addrs.get(&f) {
            if g.owners.contains_key(&r) {
                g.join_check(r, owner)
                    .err()
                    .map(|_| format!("the requested {r} is in use"))
            } else if g.foreign.contains_key(&r) {
                Some(format!("the requested {r} is held by another group"))
            } else if !g.ipam.contains(r) {
                Some(format!("its pools do not contain the requested {r}"))
            } else {
                g.ipam
                    .is_allocated(r)
                    .then(|| format!("the requested {r} is in use"))
            }
        } else {
            g.slots(f, g.multi_for(s)).into_iter().find_map(|slot| {
                let shareable = s.sharing_key.as_ref().is_some_and(|k| {
                    g.bound(k, slot)
                        .is_some_and(|a| g.join_check(a, owner).is_ok())
                });
                (!shareable && !g.has_free(slot)).then(|| match slot.subnet {
                    Some(net) => format!("no free {f} address in subnet {net}"),
                    None => format!("no free {f} address"),
                })
            })
        };
        if let Some(why) = why {
            out.insert(f, why);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::ServiceGroupSpec;

    fn svc(class: Option<&str>, lb: bool) -> SvcView {
        SvcView {
            class: class.map(str::to_string),
            load_balancer: lb,
            ..Default::default()
        }
    }

    #[test]
    fn tells_which_services_are_ours() {
        let on = Settings::default();
        let off = Settings {
            handle_unclassed: false,
        };
        let cases = [
            ("ours", svc(Some(LOAD_BALANCER_CLASS), true), &on, true),
            ("unclassed handled", svc(None, true), &on, true),
            ("unclassed not handled", svc(None, true), &off, false),
            ("other class", svc(Some("other.io/lb"), true), &on, false),
            (
                "not a load balancer",
                svc(Some(LOAD_BALANCER_CLASS), false),
                &on,
                false,
            ),
        ];
        for (name, s, settings, want) in cases {
            assert_eq!(is_ours(&s, settings), want, "{name}");
        }
    }

    fn group(name: &str, namespaces: &[&str]) -> GroupView {
        GroupView {
            name: name.into(),
            spec: ServiceGroupSpec {
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_named_group_must_exist_and_admit_the_namespace() {
        let groups = vec![group("manual", &[]), group("team", &["a"])];
        let s = |ns: &str| SvcView {
            key: crate::observe::ObjKey::new(ns, "s"),
            ..Default::default()
        };
        let cases = [
            ("named", "manual", "x", Ok("manual")),
            ("missing", "nope", "x", Err("does not exist")),
            ("namespace allowed", "team", "a", Ok("team")),
            (
                "namespace refused",
                "team",
                "b",
                Err("ServiceGroup team: namespace b is not in its spec.namespaces; add b"),
            ),
        ];
        for (name, g, ns, want) in cases {
            let got = named_group(&s(ns), g, &groups, &Namespaces::new()).map(|g| g.name.as_str());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
    }
}
