//! What must hold once the run has settled: no address on two Services, none renumbered or
//! lost, exactly one address per family asked for wherever the group has room, each group's
//! status current and its OutOfPoolAllocations condition true exactly when a Service keeps an
//! address the pools no longer contain.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrolb_api::ServiceGroup;
use ferrolb_api::pool::Family;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};

use crate::groups::{Group, Status, family_index};
use crate::ledger::{Ledger, Seen};
use crate::{family_name, lock};

/// What is wrong with the Services and groups now.
pub fn problems(
    list: &[Service],
    ledger: &Ledger,
    groups: &[Group],
    statuses: &[Option<Status>],
) -> Vec<String> {
    let seen: Vec<(String, Seen)> = list.iter().filter_map(Seen::of).collect();
    let mut out = Vec::new();
    let mut users: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (_, s) in &seen {
        for &ip in &s.ips {
            users.entry(ip).or_default().push(&s.name);
        }
    }
    for (ip, names) in users.iter().filter(|(_, n)| n.len() > 1) {
        out.push(format!("{ip} is shown by {}", names.join(" and ")));
    }
    let index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), i))
        .collect();
    // Per group: the addresses its Services show, in its pools and outside them.
    let mut in_pool: Vec<[BTreeSet<IpAddr>; 2]> = vec![Default::default(); groups.len()];
    let mut outside: Vec<BTreeSet<IpAddr>> = vec![BTreeSet::new(); groups.len()];
    for (_, s) in &seen {
        let Some(&gi) = index.get(s.group.as_str()) else {
            continue;
        };
        for &ip in &s.ips {
            if groups[gi].contains(ip) {
                in_pool[gi][family_index(Family::of(ip))].insert(ip);
            } else {
                outside[gi].insert(ip);
            }
        }
    }
    let room = |gi: usize, f: Family| {
        let cap = statuses[gi]
            .as_ref()
            .map_or(0, |st| st.capacity[family_index(f)]);
        groups[gi].has(f) && cap > in_pool[gi][family_index(f)].len() as u64
    };
    for (gi, g) in groups.iter().enumerate() {
        let Some(st) = &statuses[gi] else {
            out.push(format!("group {} cannot be read", g.name));
            continue;
        };
        if st.observed < st.generation {
            out.push(format!(
                "group {} shows generation {} of {}",
                g.name, st.observed, st.generation
            ));
            continue;
        }
        match (outside[gi].first(), &st.out_of_pool) {
            (None, Some((false, _))) => {}
            (Some(low), Some((true, msg))) if msg.contains(&low.to_string()) => {}
            (low, cond) => out.push(format!(
                "group {}: Services keep {} address(es) outside its pools (lowest {low:?}) but its OutOfPoolAllocations condition is {cond:?}",
                g.name,
                outside[gi].len()
            )),
        }
    }
    for (uid, s) in &seen {
        let Some(&gi) = index.get(s.group.as_str()) else {
            out.push(format!("{} names no group of the soak", s.name));
            continue;
        };
        let mut lacking = Vec::new();
        for f in [Family::V4, Family::V6] {
            let mine: Vec<IpAddr> = s
                .ips
                .iter()
                .copied()
                .filter(|ip| Family::of(*ip) == f)
                .collect();
            if mine.len() > 1 {
                out.push(format!(
                    "{} shows {} {} addresses",
                    s.name,
                    mine.len(),
                    family_name(f)
                ));
            }
            let first = ledger
                .first
                .get(&(uid.clone(), f))
                .filter(|_| !ledger.exempt(s, f));
            match (s.wants(f), mine.first()) {
                (true, None) => {
                    lacking.push(f);
                    if let Some(first) = first {
                        out.push(format!("{} lost {first}", s.name));
                    }
                }
                (false, Some(ip)) => out.push(format!(
                    "{} shows {ip} but asks for no {}",
                    s.name,
                    family_name(f)
                )),
                (true, Some(ip)) => {
                    if let Some(first) = first.filter(|f| *f != ip) {
                        out.push(format!("{} shows {ip} but first got {first}", s.name));
                    }
                }
                (false, None) => {}
            }
        }
        if !lacking.is_empty() && lacking.iter().all(|f| room(gi, *f)) {
            let fams: Vec<&str> = lacking.iter().map(|f| family_name(*f)).collect();
            out.push(format!(
                "{} has no {} address though group {} has room",
                s.name,
                fams.join("/"),
                groups[gi].name
            ));
        }
        if !s.ips.is_empty() && !s.annotated {
            out.push(format!(
                "{} shows an address without {}",
                s.name,
                ferrolb_api::annotations::ALLOCATED_BY
            ));
        }
    }
    out
}

/// Services that still ask for a family they had an address of before any pool edit, and show
/// another (or none).
pub fn changed_since(
    before: &HashMap<(String, Family), IpAddr>,
    list: &[Service],
    ledger: &Ledger,
) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut out = Vec::new();
    for (uid, s) in list.iter().filter_map(Seen::of) {
        for f in [Family::V4, Family::V6] {
            let Some(was) = before.get(&(uid.clone(), f)) else {
                continue;
            };
            if !s.wants(f) || ledger.exempt(&s, f) {
                continue;
            }
            checked += 1;
            if s.ip(f) != Some(*was) {
                out.push(format!(
                    "{} had {was} before the pool edits and shows {:?} after them",
                    s.name,
                    s.ip(f)
                ));
            }
        }
    }
    (checked, out)
}

/// Addresses outside their group's pools that no Service held once the allocator had
/// acknowledged the edit that left them outside: given out from outside the pools.
pub fn outside_after_edit(
    list: &[Service],
    groups: &[Group],
    held_at_ack: &HashSet<IpAddr>,
) -> Vec<String> {
    list.iter()
        .filter_map(Seen::of)
        .filter_map(|(_, s)| {
            let g = groups.iter().find(|g| g.name == s.group)?;
            let bad: Vec<String> = s
                .ips
                .iter()
                .filter(|ip| !g.contains(**ip) && !held_at_ack.contains(ip))
                .map(ToString::to_string)
                .collect();
            (!bad.is_empty()).then(|| {
                format!(
                    "{} got {} outside group {}'s pools after the allocator acknowledged the edit",
                    s.name,
                    bad.join(", "),
                    g.name
                )
            })
        })
        .collect()
}

/// Waits until the allocator has written the group's status for `generation`; then the
/// addresses Services hold (anything given out later was decided on the edited pools). No bound
/// of its own: under a fault schedule a leader may lose the Lease before its first pass reaches
/// the group statuses, so the edit may be acknowledged only once the run settles.
pub async fn acknowledged(
    groups: Api<ServiceGroup>,
    services: Api<Service>,
    name: String,
    generation: i64,
) -> (Duration, HashSet<IpAddr>) {
    let at = Instant::now();
    loop {
        let st = crate::groups::status(&groups, &name).await;
        if st.is_some_and(|s| s.observed >= generation) {
            let took = at.elapsed();
            if let Ok(list) = services.list(&ListParams::default()).await {
                let held = list
                    .items
                    .iter()
                    .filter_map(Seen::of)
                    .flat_map(|(_, s)| s.ips)
                    .collect();
                return (took, held);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Services and what is wrong with them and the groups now.
pub async fn check(
    api: &Api<Service>,
    groups_api: &Api<ServiceGroup>,
    groups: &[Group],
    ledger: &Mutex<Ledger>,
) -> (Vec<Service>, Vec<String>) {
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items;
    let mut statuses = Vec::new();
    for g in groups {
        statuses.push(crate::groups::status(groups_api, &g.name).await);
    }
    let problems = problems(&list, &lock(ledger), groups, &statuses);
    (list, problems)
}

/// Checks until nothing is wrong or `within` has passed; returns the last list and problems.
pub async fn settle(
    api: &Api<Service>,
    groups_api: &Api<ServiceGroup>,
    groups: &[Group],
    ledger: &Mutex<Ledger>,
    within: Duration,
) -> (Vec<Service>, Vec<String>) {
    let deadline = Instant::now() + within;
    loop {
        let (list, problems) = check(api, groups_api, groups, ledger).await;
        if problems.is_empty() || Instant::now() > deadline {
            return (list, problems);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
