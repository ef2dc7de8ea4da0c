//! `kubectl ferrolb pools`: per ServiceGroup and family, the pools, how many addresses are
//! allocated of how many, the group's conditions, as the allocator reports them, and the order in
//! which groups with autoAssign are tried for a Service that names none (the allocator's rule).

use ferrolb_api::servicegroup::selection::rank;
use ferrolb_api::servicegroup::{Pool, condition};
use serde::Serialize;

use crate::cluster::{Cluster, Group};
use crate::table;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRow {
    pub group: String,
    pub kind: String,
    pub family: String,
    pub pools: Vec<String>,
    pub allocated: Option<u64>,
    /// Decimal string (an IPv6 /64 holds 2^64).
    pub capacity: Option<String>,
    /// `allocated / capacity` in percent, when both are known.
    pub used_percent: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupConditions {
    pub group: String,
    /// The conditions that are True (`NotReady` when Ready is not).
    pub conditions: Vec<String>,
    /// `Type: message` of each condition that needs attention.
    pub messages: Vec<String>,
    /// Serves Services that name no group (`autoAssign`, on by default only for `default`).
    pub auto_assign: bool,
    pub priority: Option<i32>,
    /// Its place (from 1) in the order groups with autoAssign are tried, when it has autoAssign.
    pub order: Option<usize>,
    /// `namespaceDefault`: tried before every other group for the namespaces it admits.
    pub namespace_default: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolsReport {
    pub pools: Vec<PoolRow>,
    pub groups: Vec<GroupConditions>,
}

fn pools_text(pools: &[Pool]) -> Vec<String> {
    pools
        .iter()
        .map(|p| match &p.aggregation {
            Some(a) => format!("{} in {} (aggregation {a})", p.pool, p.subnet),
            None => format!("{} in {}", p.pool, p.subnet),
        })
        .collect()
}

fn rows(g: &Group) -> Vec<PoolRow> {
    let kind = g
        .spec
        .group_type()
        .map_or("invalid", |t| t.as_str())
        .to_string();
    let (v4, v6) = g.spec.pools();
    let status = g.status.as_ref();
    [("IPv4", v4), ("IPv6", v6)]
        .into_iter()
        .filter(|(_, pools)| !pools.is_empty())
        .map(|(family, pools)| {
            let allocated = status
                .and_then(|s| s.allocated.as_ref())
                .map(|a| match family {
                    "IPv4" => a.ipv4,
                    _ => a.ipv6,
                });
            let capacity = status
                .and_then(|s| s.capacity.as_ref())
                .map(|c| match family {
                    "IPv4" => c.ipv4.clone(),
                    _ => c.ipv6.clone(),
                });
            let used_percent = match (allocated, capacity.as_deref().map(str::parse::<u128>)) {
                (Some(a), Some(Ok(c))) if c > 0 => {
                    Some((a as f64 * 1000.0 / c as f64).round() / 10.0)
                }
                _ => None,
            };
            PoolRow {
                group: g.name.clone(),
                kind: kind.clone(),
                family: family.to_string(),
                pools: pools_text(pools),
                allocated,
                capacity,
                used_percent,
            }
        })
        .collect()
}

fn conditions(g: &Group) -> GroupConditions {
    let mut out = GroupConditions {
        group: g.name.clone(),
        conditions: Vec::new(),
        messages: Vec::new(),
        auto_assign: g.spec.auto_assigns(&g.name),
        priority: g.spec.priority,
        order: None,
        namespace_default: g.spec.namespace_default,
    };
    let Some(status) = &g.status else {
        out.messages
            .push("no status: the allocator has not reported on it (is it running?)".into());
        return out;
    };
    for c in &status.conditions {
        let on = c.status == "True";
        let problem = match c.type_.as_str() {
            condition::READY => !on,
            condition::IN_USE => false,
            _ => on,
        };
        match (c.type_.as_str(), on) {
            (condition::READY, false) => out.conditions.push("NotReady".into()),
            (t, true) => out.conditions.push(t.to_string()),
            _ => {}
        }
        if problem && !c.message.is_empty() {
            out.messages.push(format!("{}: {}", c.type_, c.message));
        }
    }
    out
}

pub fn report(cluster: &Cluster) -> PoolsReport {
    let mut groups: Vec<GroupConditions> = cluster.groups.values().map(conditions).collect();
    let mut auto: Vec<&Group> = cluster
        .groups
        .values()
        .filter(|g| g.spec.auto_assigns(&g.name))
        .collect();
    auto.sort_by(|a, b| rank(&a.name, &a.spec).cmp(&rank(&b.name, &b.spec)));
    for (i, a) in auto.iter().enumerate() {
        if let Some(g) = groups.iter_mut().find(|g| g.group == a.name) {
            g.order = Some(i + 1);
        }
    }
    PoolsReport {
        pools: cluster.groups.values().flat_map(rows).collect(),
        groups,
    }
}

/// `1 (priority 10)`, `2`, `first in its namespaces, else 3` or `off`: where a group stands for
/// Services that name none.
fn auto_text(g: &GroupConditions) -> String {
    let place = match (g.order, g.priority) {
        (Some(o), Some(p)) => format!("{o} (priority {p})"),
        (Some(o), None) => o.to_string(),
        (None, _) => return "off".into(),
    };
    if g.namespace_default {
        format!("first in its namespaces, else {place}")
    } else {
        place
    }
}

pub fn render(r: &PoolsReport) -> String {
    if r.groups.is_empty() {
        return "no ServiceGroups: create one (see docs/servicegroup.md)\n".into();
    }
    let rows: Vec<Vec<String>> = r
        .pools
        .iter()
        .map(|p| {
            let g = r.groups.iter().find(|g| g.group == p.group);
            let conds = g.map(|g| g.conditions.join(",")).unwrap_or_default();
            let auto = g.map(auto_text).unwrap_or_default();
            vec![
                p.group.clone(),
                p.kind.clone(),
                p.family.clone(),
                p.allocated.map_or("-".into(), |a| a.to_string()),
                p.capacity.clone().unwrap_or_else(|| "-".into()),
                p.used_percent.map_or("-".into(), |u| format!("{u}%")),
                p.pools.join(", "),
                auto,
                conds,
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "SERVICEGROUP",
            "TYPE",
            "FAMILY",
            "ALLOCATED",
            "CAPACITY",
            "USED",
            "POOLS",
            "AUTOASSIGN",
            "CONDITIONS",
        ],
        &rows,
    );
    for g in &r.groups {
        for m in &g.messages {
            out.push_str(&format!("{}: {m}\n", g.group));
        }
    }
    out.push_str(if r.groups.iter().any(|g| g.order.is_some()) {
        "AUTOASSIGN: the order groups are tried in for a Service that names none (priority, then name); the first with room serves it\n"
    } else {
        "no group has autoAssign: a Service that names no group gets no address\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use ferrolb_api::ServiceGroupStatus;
    use ferrolb_api::servicegroup::{FamilyCounts, FamilyStrings};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::testkit::*;

    fn cond(type_: &str, status: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            message: message.into(),
            reason: "Test".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()),
            observed_generation: None,
        }
    }

    #[test]
    fn usage_per_family_and_unhealthy_conditions_are_shown() {
        let mut lan = local_group("lan");
        lan.status = Some(ServiceGroupStatus {
            capacity: Some(FamilyStrings {
                ipv4: "51".into(),
                ipv6: "256".into(),
            }),
            allocated: Some(FamilyCounts { ipv4: 51, ipv6: 3 }),
            conditions: vec![
                cond("Ready", "True", ""),
                cond("Exhausted", "True", "IPv4 has no free address"),
                cond("InUse", "True", "1 Service(s) have addresses"),
                cond("Overlapping", "False", "no overlap"),
            ],
            ..Default::default()
        });
        let c = cluster(vec![lan, virtual_group("routed")], vec![]);
        let r = report(&c);
        assert_eq!(r.pools.len(), 3);
        assert_eq!(r.pools[0].used_percent, Some(100.0));
        assert_eq!(r.pools[1].used_percent, Some(1.2));
        assert_eq!(r.pools[2].capacity, None);
        let text = render(&r);
        assert!(
            text.contains("lan: Exhausted: IPv4 has no free address"),
            "{text}"
        );
        assert!(text.contains("routed: no status"), "{text}");
        assert!(
            !text.contains("Service(s)") && !text.contains("no overlap"),
            "{text}"
        );
        assert!(text.contains("Ready,Exhausted"), "{text}");
        assert!(
            text.contains("no group has autoAssign"),
            "neither is named default nor sets autoAssign: {text}"
        );
    }

    #[test]
    fn groups_with_auto_assign_are_numbered_in_the_order_they_are_tried() {
        let mut first = local_group("first-pool");
        first.spec.auto_assign = Some(true);
        let mut high = local_group("high");
        high.spec.auto_assign = Some(true);
        high.spec.priority = Some(5);
        let mut manual = local_group("manual");
        manual.spec.priority = Some(1);
        let c = cluster(vec![first, high, manual, virtual_group("default")], vec![]);
        let r = report(&c);
        let order: Vec<(&str, Option<usize>)> = r
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.order))
            .collect();
        assert_eq!(
            order,
            [
                ("default", Some(2)),
                ("first-pool", Some(3)),
                ("high", Some(1)),
                ("manual", None),
            ]
        );
        let text = render(&r);
        assert!(text.contains("1 (priority 5)"), "{text}");
        assert!(
            text.lines()
                .filter(|l| l.starts_with("manual "))
                .all(|l| l.trim_end().ends_with("off")),
            "{text}"
        );
    }

    #[test]
    fn a_namespace_default_auto_assigns_and_says_it_goes_first() {
        let mut team = local_group("team");
        team.spec.namespace_default = true;
        let r = report(&cluster(vec![team, virtual_group("default")], vec![]));
        let text = render(&r);
        assert!(text.contains("first in its namespaces, else 2"), "{text}");
    }
}
