//! Which ServiceGroup serves a Service that names none: the allocator's rule
//! ([`selection::select`]), judged on what the groups' status reports.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::condition;
use ferrolb_api::servicegroup::selection::{self, Ask, GroupFacts, Who};
use serde::Serialize;

use crate::cluster::{Cluster, Group, ServiceInfo};

/// One group as the selection sees it for this Service, in the order groups are tried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupVerdict {
    pub group: String,
    /// `serves it (IPv4)`, or why it is passed over.
    pub verdict: String,
}

/// Whether the Service names a group (ours or an alias).
pub fn names_group(svc: &ServiceInfo) -> bool {
    std::iter::once(ann::SERVICE_GROUP)
        .chain(ann::SERVICE_GROUP_ALIASES.iter().copied())
        .any(|k| svc.annotations.contains_key(k))
}

/// For a Service that names no group: notes on which group serves it or would, and why, and
/// every group's verdict. A Service with addresses stays in the group they came from.
pub fn explain(cluster: &Cluster, svc: &ServiceInfo) -> (Vec<String>, Vec<GroupVerdict>) {
    if let (Some(g), false) = (
        svc.annotations.get(ann::ALLOCATED_FROM),
        svc.addresses.is_empty(),
    ) {
        return (
            vec![format!(
                "names no ServiceGroup: it keeps {g}, where its addresses came from (a Service is never moved to another group)"
            )],
            Vec::new(),
        );
    }
    let facts: Vec<GroupFacts> = cluster.groups.values().map(facts).collect();
    // Without its namespace's labels (not allowed to read them) a group with a
    // namespaceSelector says it cannot tell.
    let ask = Ask {
        who: Who {
            namespace: &svc.namespace,
            namespace_labels: svc.namespace_labels.as_ref(),
            labels: Some(&svc.labels),
        },
        families: &svc.families,
        policy: svc.policy,
    };
    let s = selection::select(&ask, &facts);
    let note = match s.chosen() {
        Some((g, _)) => format!(
            "names no ServiceGroup: {g} would serve it, {} (judged from the groups' status)",
            s.why_chosen()
        ),
        None => s.why_none(),
    };
    let verdicts = s
        .verdicts
        .iter()
        .map(|v| GroupVerdict {
            group: v.group.to_string(),
            verdict: match &v.outcome {
                Ok(f) => format!(
                    "serves it ({})",
                    f.iter()
                        .map(|f| f.k8s_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(why) => format!("passed over: {why}"),
            },
        })
        .collect();
    (vec![note], verdicts)
}

/// Why the group the Service names or holds addresses of does not admit it, by the allocator's
/// rule ([`selection::admission`]); `None` when it does. Labels are not read here: a selector
/// says it cannot tell.
pub fn refusal(cluster: &Cluster, svc: &ServiceInfo, group: &Group) -> Option<String> {
    let who = Who {
        namespace: &svc.namespace,
        ..Default::default()
    };
    let all = cluster.groups.values().map(|g| (g.name.as_str(), &g.spec));
    let tenants = selection::tenancy(&who, all);
    let why = selection::admission(&who, &group.name, &group.spec, &tenants).err()?;
    let keeps = if svc.addresses.is_empty() {
        ""
    } else {
        "; the Service keeps the addresses it has but gets no new one from it"
    };
    Some(format!("ServiceGroup {}: {why}{keeps}", group.name))
}

/// What the selection needs of a group, from its spec and reported status.
fn facts(g: &Group) -> GroupFacts<'_> {
    let (v4, v6) = g.spec.pools();
    let offered: BTreeSet<Family> = [(Family::V4, v4), (Family::V6, v6)]
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(f, _)| f)
        .collect();
    let status = g.status.as_ref();
    let unusable = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY))
        .filter(|c| c.status == "False")
        .map(|c| {
            if c.message.is_empty() {
                "not Ready".to_string()
            } else {
                c.message.clone()
            }
        });
    let mut no_room = BTreeMap::new();
    if let (Some(a), Some(c)) = (
        status.and_then(|s| s.allocated.as_ref()),
        status.and_then(|s| s.capacity.as_ref()),
    ) {
        for (f, allocated, capacity) in
            [(Family::V4, a.ipv4, &c.ipv4), (Family::V6, a.ipv6, &c.ipv6)]
        {
            if capacity
                .parse::<u128>()
                .is_ok_and(|c| u128::from(allocated) >= c)
            {
                no_room.insert(f, format!("no free {f} address"));
            }
        }
    }
    GroupFacts {
        name: &g.name,
        spec: &g.spec,
        offered,
        unusable,
        no_room,
    }
}
