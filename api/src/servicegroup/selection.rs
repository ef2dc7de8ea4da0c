//! Which ServiceGroup serves a Service that names none: every group with autoAssign that admits
//! it ([`admission`]) is a candidate, tried in priority order (the defaults of its namespace
//! first, then by priority and name), and the first with room for every family the Service
//! needs takes it. One rule for the allocator and `kubectl ferrolb where` /
//! `pools`, so what they explain is what the allocator does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::pool::Family;
use crate::servicegroup::ServiceGroupSpec;
pub use crate::servicegroup::admission::{self, Labels, Refusal, Who, admission, tenancy};

/// `spec.ipFamilyPolicy` of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// A Service's `spec.ipFamilies` (unknown names skipped) and `spec.ipFamilyPolicy` (unset or
/// unknown: SingleStack), as the selection reads them.
pub fn families_and_policy(ip_families: &[String], policy: Option<&str>) -> (Vec<Family>, Policy) {
    let families = ip_families
        .iter()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    let policy = match policy {
        Some("PreferDualStack") => Policy::PreferDualStack,
        Some("RequireDualStack") => Policy::RequireDualStack,
        _ => Policy::SingleStack,
    };
    (families, policy)
}

/// What the selection needs to know about a Service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask<'a> {
    /// Its namespace, the namespace's labels and its own.
    pub who: Who<'a>,
    /// `spec.ipFamilies` in order (empty: IPv4).
    pub families: &'a [Family],
    pub policy: Policy,
}

/// What the selection needs to know about a group, as the caller sees it now.
#[derive(Clone, Debug)]
pub struct GroupFacts<'a> {
    pub name: &'a str,
    pub spec: &'a ServiceGroupSpec,
    /// Families it has pools of.
    pub offered: BTreeSet<Family>,
    /// Why it gives out no new address now (overlapping, invalid range, being deleted).
    pub unusable: Option<String>,
    /// Families it has no room in for this Service, each with a short why ("no free IPv4
    /// address"); a family not listed has room.
    pub no_room: BTreeMap<Family, String>,
}

/// Why a group does not serve a Service that names none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassedOver {
    /// autoAssign is off: only Services that name the group get its addresses.
    AutoAssignOff,
    /// It does not admit the Service: the rule that says no.
    NotAdmitted(Refusal),
    /// It has no pool of a family the Service needs.
    NoPool(Family),
    /// It gives out no new address now.
    Unusable(String),
    /// No room in a family the Service needs.
    NoRoom(String),
}

impl fmt::Display for PassedOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassedOver::AutoAssignOff => f.write_str("autoAssign is off"),
            PassedOver::NotAdmitted(why) => why.fmt(f),
            PassedOver::NoPool(fam) => write!(f, "no {fam} pool"),
            PassedOver::Unusable(why) => write!(f, "gives out no addresses now ({why})"),
            PassedOver::NoRoom(why) => f.write_str(why),
        }
    }
}

/// One group's verdict: the families the Service would get from it, or why it is passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub group: &'a str,
    pub outcome: Result<Vec<Family>, PassedOver>,
    /// The group is a default of the Service's namespace (`namespaceDefault`).
    pub namespace_default: bool,
}

/// Every group in the order they are tried, each with its verdict; the first that serves wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection<'a> {
    pub verdicts: Vec<Verdict<'a>>,
}

/// At most this many passed-over groups are named in one message.
const NAMED_AT_MOST: usize = 3;

impl<'a> Selection<'a> {
    /// The group that serves the Service and the families it gets there.
    pub fn chosen(&self) -> Option<(&'a str, &[Family])> {
        self.verdicts
            .iter()
            .find_map(|v| v.outcome.as_deref().ok().map(|f| (v.group, f)))
    }

    /// Candidates tried before the chosen one (all when none serves) and why each was passed
    /// over; groups with autoAssign off are never candidates and are left out.
    pub fn passed_over(&self) -> Vec<(&'a str, &PassedOver)> {
        self.verdicts
            .iter()
            .map_while(|v| v.outcome.as_ref().err().map(|why| (v.group, why)))
            .filter(|(_, why)| **why != PassedOver::AutoAssignOff)
            .collect()
    }

    /// Why the chosen group serves, for the AddressAllocated Event: one clause per group passed
    /// over, at most a few.
    pub fn why_chosen(&self) -> String {
        let passed = self.passed_over();
        let default = self
            .verdicts
            .iter()
            .find(|v| v.outcome.is_ok())
            .is_some_and(|v| v.namespace_default);
        let mut out = if default {
            "the default ServiceGroup of its namespace (namespaceDefault) with room for the Service"
        } else {
            "the first ServiceGroup with autoAssign, in priority order, that has room for the Service"
        }
        .to_string();
        if !passed.is_empty() {
            out.push_str("; passed over: ");
            out.push_str(&clauses(&passed, NAMED_AT_MOST));
        }
        out
    }

    /// Why no group serves, for the AllocationFailed Event: every group's reason, and what to do.
    pub fn why_none(&self) -> String {
        if self.verdicts.is_empty() {
            return "the Service names no ServiceGroup and there is none; create one (a group named \"default\" has autoAssign on unless it is set off) or name one with ferrolb.io/service-group".into();
        }
        let all: Vec<(&str, &PassedOver)> = self
            .verdicts
            .iter()
            .filter_map(|v| v.outcome.as_ref().err().map(|why| (v.group, why)))
            .collect();
        format!(
            "no ServiceGroup serves this Service, which names none: {}; set autoAssign: true on a group that admits it, free or add addresses, or name a group with ferrolb.io/service-group",
            clauses(&all, 8)
        )
    }
}

fn clauses(list: &[(&str, &PassedOver)], at_most: usize) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .take(at_most)
        .map(|(g, why)| format!("{g} ({why})"))
        .collect();
    if list.len() > at_most {
        parts.push(format!("{} more", list.len() - at_most));
    }
    parts.join(", ")
}

/// The order groups are tried in: by `priority` (lower first, unset after all that have one),
/// then by name.
pub fn rank<'s>(name: &'s str, spec: &ServiceGroupSpec) -> (bool, i32, &'s str) {
    (spec.priority.is_none(), spec.priority.unwrap_or(0), name)
}

/// The families a Service asks for, in order (IPv4 when it names none).
fn asked(ask: &Ask) -> Vec<Family> {
    if ask.families.is_empty() {
        vec![Family::V4]
    } else {
        ask.families.to_vec()
    }
}

/// The families a Service gets from a group that offers `offered`: SingleStack the first family,
/// PreferDualStack those of its families the group has, RequireDualStack both; `Err` names a
/// family it needs and the group lacks.
pub fn needed(ask: &Ask, offered: &BTreeSet<Family>) -> Result<Vec<Family>, Family> {
    let asked = asked(ask);
    match ask.policy {
        Policy::SingleStack => {
            let f = asked[0];
            if offered.contains(&f) {
                Ok(vec![f])
            } else {
                Err(f)
            }
        }
        Policy::PreferDualStack => {
            let got: Vec<Family> = asked
                .iter()
                .copied()
                .filter(|f| offered.contains(f))
                .collect();
            if got.is_empty() {
                Err(asked[0])
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
                Some(f) => Err(*f),
                None => Ok(both),
            }
        }
    }
}

/// [`needed`] with a message that says what to do, naming `group`.
pub fn families(ask: &Ask, offered: &BTreeSet<Family>, group: &str) -> Result<Vec<Family>, String> {
    needed(ask, offered).map_err(|f| {
        let missing = format!(
            "ServiceGroup {group:?} has no {f} pool; add one to it or pick a group that has {f} addresses"
        );
        if ask.policy == Policy::RequireDualStack {
            format!("ipFamilyPolicy RequireDualStack needs IPv4 and IPv6 but {missing}")
        } else {
            missing
        }
    })
}

/// Every group's verdict for a Service that names none, in the order they are tried: the
/// defaults of its namespace (`namespaceDefault`) first; then, for a PreferDualStack Service,
/// the groups that offer all its families; then by [`rank`].
pub fn select<'a>(ask: &Ask, groups: &[GroupFacts<'a>]) -> Selection<'a> {
    let asked = asked(ask);
    let prefer_both = ask.policy == Policy::PreferDualStack && asked.len() > 1;
    let tenants = tenancy(&ask.who, groups.iter().map(|g| (g.name, g.spec)));
    let mut order: Vec<&GroupFacts<'a>> = groups.iter().collect();
    order.sort_by(|a, b| {
        let key = |g: &GroupFacts<'a>| {
            let other = !admission::is_namespace_default(g.spec, &ask.who);
            let partial = prefer_both && !asked.iter().all(|f| g.offered.contains(f));
            (other, partial, rank(g.name, g.spec))
        };
        key(a).cmp(&key(b))
    });
    let verdicts = order
        .into_iter()
        .map(|g| Verdict {
            group: g.name,
            outcome: verdict(ask, g, &tenants),
            namespace_default: admission::is_namespace_default(g.spec, &ask.who),
        })
        .collect();
    Selection { verdicts }
}

fn verdict(ask: &Ask, g: &GroupFacts, tenants: &[&str]) -> Result<Vec<Family>, PassedOver> {
    if !g.spec.auto_assigns(g.name) {
        return Err(PassedOver::AutoAssignOff);
    }
    admission(&ask.who, g.name, g.spec, tenants).map_err(PassedOver::NotAdmitted)?;
    let fams = needed(ask, &g.offered).map_err(PassedOver::NoPool)?;
    if let Some(why) = &g.unusable {
        return Err(PassedOver::Unusable(why.clone()));
    }
    if let Some(why) = fams.iter().find_map(|f| g.no_room.get(f)) {
        return Err(PassedOver::NoRoom(why.clone()));
    }
    Ok(fams)
}

#[cfg(test)]
mod tests;
