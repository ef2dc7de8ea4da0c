//! A ServiceGroup's status: capacity and usage per family, and conditions that name the
//! Services and ranges involved and say what to do.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::ServiceGroupStatus;
use ferrolb_api::check::{Overlap, ParsedPool, Problem, check_group, parse_pools};
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::{FamilyCounts, FamilyStrings, condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::GroupPlan;
use crate::observe::{GroupView, ObjKey};
use crate::state::Book;

/// The conditions that tell of a problem when True; each comes into force with a Warning
/// Event on the ServiceGroup.
const PROBLEMS: [&str; 4] = [
    condition::INVALID_RANGE,
    condition::OVERLAPPING,
    condition::EXHAUSTED,
    condition::OUT_OF_POOL_ALLOCATIONS,
];

/// The problems `planned` tells that `observed` (the status the group shows now) does not:
/// (reason, message) of each problem condition that becomes True or changes its reason. The
/// status is the memory: a restarted or new leader does not tell them again.
pub fn news(
    observed: Option<&ServiceGroupStatus>,
    planned: &ServiceGroupStatus,
) -> Vec<(String, String)> {
    planned
        .conditions
        .iter()
        .filter(|c| PROBLEMS.contains(&c.type_.as_str()) && c.status == "True")
        .filter(|c| {
            !observed.is_some_and(|o| {
                o.conditions
                    .iter()
                    .any(|x| x.type_ == c.type_ && x.status == c.status && x.reason == c.reason)
            })
        })
        .map(|c| (c.reason.clone(), c.message.clone()))
        .collect()
}

/// Most Services a condition message names before it says "and N more".
const NAMES_SHOWN: usize = 10;

/// What is wrong with the groups on their own and between them.
#[derive(Clone, Debug, Default)]
pub struct GroupChecks {
    pub problems: BTreeMap<String, Vec<Problem>>,
    /// Overlaps by the newer group's name: that group is not used.
    pub overlaps: BTreeMap<String, Vec<Overlap>>,
}

impl GroupChecks {
    /// Problems of each group, and overlaps with older groups that give out addresses: a group
    /// that gives out none (invalid, overlapping itself, being deleted) blocks nobody. What
    /// Services hold stays theirs either way: the book keeps every held address out of every
    /// other group.
    pub fn of(groups: &[GroupView]) -> Self {
        let mut checks = GroupChecks::default();
        for g in groups {
            let p = check_group(&g.spec);
            if !p.is_empty() {
                checks.problems.insert(g.name.clone(), p);
            }
        }
        let mut by_age: Vec<&GroupView> = groups.iter().collect();
        by_age.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        // The older groups that give out addresses, with their parsed pools.
        let mut givers: Vec<(&GroupView, Vec<ParsedPool>)> = Vec::new();
        for g in by_age {
            let pools = parse_pools(&g.spec).0;
            let mut found = Vec::new();
            for (older, theirs) in &givers {
                for a in &pools {
                    if let Some(b) = theirs.iter().find(|b| a.range.overlaps(&b.range)) {
                        found.push(Overlap {
                            newer: g.name.clone(),
                            older: older.name.clone(),
                            field: format!("{}.pool", a.field),
                            older_range: b.range,
                        });
                    }
                }
            }
            if !found.is_empty() {
                checks.overlaps.insert(g.name.clone(), found);
            } else if !g.deleting && !checks.problems.contains_key(&g.name) {
                givers.push((g, pools));
            }
        }
        checks
    }

    /// New allocations may come from the group.
    pub fn usable(&self, name: &str) -> bool {
        !self.problems.contains_key(name) && !self.overlaps.contains_key(name)
    }
}

fn cond(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        // The diff keeps the observed time when the status did not change.
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

fn names<T: std::fmt::Display>(list: &[T]) -> String {
    let shown = list
        .iter()
        .take(NAMES_SHOWN)
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > NAMES_SHOWN {
        format!("{shown} and {} more", list.len() - NAMES_SHOWN)
    } else {
        shown
    }
}

/// The status and finalizer one group should have after this pass.
pub fn group_plan(
    g: &GroupView,
    book: &Book,
    checks: &GroupChecks,
    exhausted: &BTreeSet<(String, Family)>,
) -> GroupPlan {
    let Some(gb) = book.groups.get(&g.name) else {
        return GroupPlan {
            name: g.name.clone(),
            ..Default::default()
        };
    };
    let gen_ = g.generation;
    let (v4, v6) = g.spec.pools();
    let mut usage = Vec::new();
    let mut usage_text = Vec::new();
    let mut full = Vec::new();
    for (family, pools, short) in [(Family::V4, v4, "v4"), (Family::V6, v6, "v6")] {
        let u = gb.ipam.utilization(family);
        let allocated = gb.allocated(family);
        usage.push((family, u.capacity, allocated));
        if !pools.is_empty() {
            usage_text.push(format!("{short} {allocated}/{}", u.capacity));
            // Full by the state, whatever order a pass tried families in: pools with no
            // allocatable address (say, one that is all block edges) are full too.
            let failed = exhausted.contains(&(g.name.clone(), family));
            if failed || u.allocated >= u.capacity {
                full.push(format!(
                    "{family} ({}/{} allocated)",
                    u.allocated, u.capacity
                ));
            }
        } else if exhausted.contains(&(g.name.clone(), family)) {
            full.push(format!("{family} (no pool)"));
        }
    }
    // Sorted and each once (a shared address has several owners); not formatted: a group may
    // have thousands.
    let users: Vec<&ObjKey> = gb
        .owners
        .values()
        .flatten()
        .map(|o| &o.key)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let out_of_pool: Vec<String> = gb
        .ipam
        .out_of_pool()
        .map(|a| {
            // Sorted: the book's order depends on whether a user joined in this pass.
            let who: BTreeSet<String> = gb
                .owners
                .get(&a)
                .into_iter()
                .flatten()
                .map(|o| o.key.to_string())
                .collect();
            let who: Vec<String> = who.into_iter().collect();
            format!("{a} ({})", who.join(", "))
        })
        .collect();
    let problems = checks.problems.get(&g.name);
    let overlaps = checks.overlaps.get(&g.name);
    let ready = problems.is_none() && overlaps.is_none() && !g.deleting;
    let (ready_reason, ready_msg) = if let Some(p) = problems {
        (
            "InvalidRange",
            format!("not used for new addresses: {}", p[0]),
        )
    } else if let Some(o) = overlaps {
        (
            "Overlapping",
            format!("not used for new addresses: {}", o[0]),
        )
    } else if g.deleting {
        ("Deleting", "being deleted; it gives out no new addresses and goes when its last Service releases its address".to_string())
    } else {
        ("Ready", "gives out addresses".to_string())
    };
    let conditions = vec![
        cond(condition::READY, ready, ready_reason, ready_msg, gen_),
        match problems {
            Some(p) => cond(
                condition::INVALID_RANGE,
                true,
                "InvalidRange",
                format!(
                    "{}; fix these pools (ranges are \"a-b\" with a <= b, or a CIDR inside the subnet)",
                    p.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                gen_,
            ),
            None => cond(
                condition::INVALID_RANGE,
                false,
                "RangesValid",
                "every pool is valid".into(),
                gen_,
            ),
        },
        match overlaps {
            Some(o) => cond(
                condition::OVERLAPPING,
                true,
                "Overlapping",
                format!(
                    "{}; change the pools so that no address is in two groups",
                    o.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                gen_,
            ),
            None => cond(
                condition::OVERLAPPING,
                false,
                "NoOverlap",
                "no other group has these addresses".into(),
                gen_,
            ),
        },
        if full.is_empty() {
            cond(
                condition::EXHAUSTED,
                false,
                "AddressesFree",
                "free addresses left".into(),
                gen_,
            )
        } else {
            cond(
                condition::EXHAUSTED,
                true,
                "Exhausted",
                format!(
                    "no free address left for {}; add a range to the group or release addresses",
                    full.join(", ")
                ),
                gen_,
            )
        },
        if out_of_pool.is_empty() {
            cond(
                condition::OUT_OF_POOL_ALLOCATIONS,
                false,
                "AllInPool",
                "every allocated address is in a pool".into(),
                gen_,
            )
        } else {
            cond(
                condition::OUT_OF_POOL_ALLOCATIONS,
                true,
                "OutOfPoolAllocations",
                format!(
                    "allocated outside the current pools: {}; they keep their addresses until released; add the range back or move those Services",
                    names(&out_of_pool)
                ),
                gen_,
            )
        },
        if users.is_empty() {
            cond(
                condition::IN_USE,
                false,
                "NotInUse",
                "no Service has an address from this group".into(),
                gen_,
            )
        } else {
            cond(
                condition::IN_USE,
                true,
                "InUse",
                format!(
                    "{} Service(s) have addresses from this group: {}; deleting the group waits until they release them",
                    users.len(),
                    names(&users)
                ),
                gen_,
            )
        },
    ];
    let pools: Vec<&str> = v4.iter().chain(v6).map(|p| p.pool.as_str()).collect();
    let cap = |f: Family| usage.iter().find(|u| u.0 == f).map(|u| u.1).unwrap_or(0);
    let alloc = |f: Family| usage.iter().find(|u| u.0 == f).map(|u| u.2).unwrap_or(0);
    GroupPlan {
        name: g.name.clone(),
        status: ServiceGroupStatus {
            type_: g.spec.group_type().map(|t| t.as_str().to_string()),
            pools: Some(pools.join(",")),
            usage: Some(usage_text.join(", ")),
            capacity: Some(FamilyStrings {
                ipv4: cap(Family::V4).to_string(),
                ipv6: cap(Family::V6).to_string(),
            }),
            allocated: Some(FamilyCounts {
                ipv4: alloc(Family::V4),
                ipv6: alloc(Family::V6),
            }),
            conditions,
            observed_generation: gen_,
        },
        finalizer: !users.is_empty(),
        usage,
    }
}
