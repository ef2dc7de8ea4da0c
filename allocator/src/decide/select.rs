//! Which Services are ours, which ServiceGroup serves each, and which families it gets.

use std::collections::BTreeSet;

use ferrolb_api::contracts::{DEFAULT_SERVICE_GROUP, LOAD_BALANCER_CLASS};
use ferrolb_api::pool::Family;

use crate::observe::{GroupView, Policy, SvcView};

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

/// The group a Service should use, or why it has none (a message that says what to do).
pub fn choose_group<'a>(s: &SvcView, groups: &'a [GroupView]) -> Result<&'a GroupView, String> {
    let named = s.group.as_deref();
    let name = named.unwrap_or(DEFAULT_SERVICE_GROUP);
    let Some(g) = groups.iter().find(|g| g.name == name) else {
        return Err(match named {
            Some(n) => format!(
                "ServiceGroup {n:?} (named by the Service's annotation) does not exist; create it or name another group"
            ),
            None => format!(
                "the Service names no ServiceGroup and there is no {DEFAULT_SERVICE_GROUP:?} group; create one or set ferrolb.io/service-group"
            ),
        });
    };
    if named.is_none() && !g.spec.auto_assign {
        return Err(format!(
            "ServiceGroup {name:?} has autoAssign: false; name it with ferrolb.io/service-group to use it"
        ));
    }
    if !g.spec.namespaces.is_empty() && !g.spec.namespaces.contains(&s.key.namespace) {
        return Err(format!(
            "ServiceGroup {name:?} serves only namespaces {:?}; add {:?} to its spec.namespaces or name another group",
            g.spec.namespaces, s.key.namespace
        ));
    }
    Ok(g)
}

/// The families a Service gets from a group that offers `offered`: SingleStack the first family,
/// PreferDualStack those of its families the group has, RequireDualStack both or an error.
pub fn families(
    s: &SvcView,
    offered: &BTreeSet<Family>,
    group: &str,
) -> Result<Vec<Family>, String> {
    let asked: Vec<Family> = if s.families.is_empty() {
        vec![Family::V4]
    } else {
        s.families.clone()
    };
    let missing = |f: Family| {
        format!(
            "ServiceGroup {group:?} has no {f} pool; add one to it or pick a group that has {f} addresses"
        )
    };
    match s.policy {
        Policy::SingleStack => {
            let f = asked[0];
            if offered.contains(&f) {
                Ok(vec![f])
            } else {
                Err(missing(f))
            }
        }
        Policy::PreferDualStack => {
            let got: Vec<Family> = asked
                .iter()
                .copied()
                .filter(|f| offered.contains(f))
                .collect();
            if got.is_empty() {
                Err(missing(asked[0]))
            } else {
                Ok(got)
            }
        }
        Policy::RequireDualStack => {
            let both = if asked.len() == 2 {
                asked
            } else {
                vec![Family::V4, Family::V6]
            };
            match both.iter().find(|f| !offered.contains(f)) {
                Some(f) => Err(format!(
                    "ipFamilyPolicy RequireDualStack needs IPv4 and IPv6 but {}",
                    missing(*f)
                )),
                None => Ok(both),
            }
        }
    }
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

    fn group(name: &str, auto: bool, namespaces: &[&str]) -> GroupView {
        GroupView {
            name: name.into(),
            spec: ServiceGroupSpec {
                auto_assign: auto,
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn chooses_the_group() {
        let groups = vec![
            group("default", true, &[]),
            group("manual", false, &[]),
            group("team", true, &["a"]),
        ];
        let named = |g: Option<&str>, ns: &str| SvcView {
            group: g.map(str::to_string),
            key: crate::observe::ObjKey::new(ns, "s"),
            ..Default::default()
        };
        let cases = [
            ("default", named(None, "x"), Ok("default")),
            ("named", named(Some("manual"), "x"), Ok("manual")),
            ("missing", named(Some("nope"), "x"), Err("does not exist")),
            ("namespace allowed", named(Some("team"), "a"), Ok("team")),
            (
                "namespace refused",
                named(Some("team"), "b"),
                Err("serves only"),
            ),
        ];
        for (name, s, want) in cases {
            let got = choose_group(&s, &groups).map(|g| g.name.as_str());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
            }
        }
        let manual_default = vec![group("default", false, &[])];
        assert!(choose_group(&named(None, "x"), &manual_default).is_err());
    }

    #[test]
    fn picks_families_by_policy() {
        use Family::{V4, V6};
        let both: BTreeSet<Family> = [V4, V6].into();
        let v4: BTreeSet<Family> = [V4].into();
        let s = |policy, fams: &[Family]| SvcView {
            policy,
            families: fams.to_vec(),
            ..Default::default()
        };
        let cases: Vec<(&str, SvcView, &BTreeSet<Family>, Option<Vec<Family>>)> = vec![
            (
                "single v4",
                s(Policy::SingleStack, &[V4]),
                &both,
                Some(vec![V4]),
            ),
            (
                "single v6",
                s(Policy::SingleStack, &[V6]),
                &both,
                Some(vec![V6]),
            ),
            (
                "single v6 from v4 group",
                s(Policy::SingleStack, &[V6]),
                &v4,
                None,
            ),
            (
                "prefer dual on dual",
                s(Policy::PreferDualStack, &[V6, V4]),
                &both,
                Some(vec![V6, V4]),
            ),
            (
                "prefer dual on v4",
                s(Policy::PreferDualStack, &[V4, V6]),
                &v4,
                Some(vec![V4]),
            ),
            (
                "require dual on dual",
                s(Policy::RequireDualStack, &[V4, V6]),
                &both,
                Some(vec![V4, V6]),
            ),
            (
                "require dual on v4",
                s(Policy::RequireDualStack, &[V4, V6]),
                &v4,
                None,
            ),
            (
                "no families given",
                s(Policy::SingleStack, &[]),
                &both,
                Some(vec![V4]),
            ),
        ];
        for (name, svc, offered, want) in cases {
            assert_eq!(families(&svc, offered, "g").ok(), want, "{name}");
        }
    }
}
