//! One allocation pass: adopt what Services hold (oldest first, one holder per address
//! cluster-wide), then allocate what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;
use ferrolb_api::pool::Family;

use super::select::{
    Namespaces, Settings, admitted, auto_select, families, is_ours, named_group, refused,
};
use super::{GroupChecks, Note, Plan, SvcPlan, announce, group_status};
use crate::observe::{GroupView, Snapshot, SvcView};
use crate::state::{Book, Owner, Slot};

/// One of our Services during the pass.
struct Work<'a> {
    svc: &'a Arc<SvcView>,
    owner: Owner,
    /// The group it names or holds addresses of, or why it cannot use the one it names;
    /// `None` for a Service that names none and holds nothing: [`allocate`] picks one.
    group: Option<Result<String, String>>,
    families: Result<Vec<Family>, String>,
    /// Addresses it keeps or gets (one per family, or with multiPool one per subnet), and the
    /// group they come from.
    held: BTreeMap<Slot, IpAddr>,
    held_group: Option<String>,
    plan: SvcPlan,
}

/// The whole desired state for a snapshot.
pub fn plan(snap: &Snapshot, settings: &Settings) -> Plan {
    let checks = GroupChecks::of(&snap.groups);
    let usable: BTreeSet<String> = snap
        .groups
        .iter()
        .filter(|g| !g.deleting && checks.usable(&g.name))
        .map(|g| g.name.clone())
        .collect();
    let mut book = Book::new(&snap.groups, &usable);
    let mut ours: Vec<&Arc<SvcView>> = snap
        .services
        .iter()
        .filter(|s| is_ours(s, settings))
        .collect();
    ours.sort_unstable_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
    let mut work: Vec<Work<'_>> = ours
        .into_iter()
        .map(|svc| {
            // A named group is the only one a Service uses; one that names none stays in the
            // group its addresses came from (never moved, never renumbered). A group that does
            // not admit the Service (any more: a selector, namespace label or tenancy changed)
            // gives it nothing new, and takes nothing away.
            let group = match svc.group.as_deref() {
                Some(n) => Some(
                    named_group(svc, n, &snap.groups, &snap.namespaces).map(|g| g.name.clone()),
                ),
                None => svc
                    .ingress
                    .iter()
                    .find_map(|a| origin(svc, *a, &book))
                    .map(|g| still_admits(svc, g, snap)),
            };
            let families = match &group {
                None => Ok(Vec::new()),
                Some(Ok(g)) => {
                    // A family the Service holds from its group stays offered while the
                    // group's pools of that family are gone or do not parse: a pool edit never
                    // takes an address away.
                    let mut offered = book.groups[g].families.clone();
                    offered.extend(
                        svc.ingress
                            .iter()
                            .filter(|a| origin(svc, **a, &book) == Some(g.as_str()))
                            .map(|a| Family::of(*a)),
                    );
                    families(svc, &offered, g)
                }
                Some(Err(e)) => Err(e.clone()),
            };
            Work {
                svc,
                owner: Owner::of(svc),
                group,
                families,
                held: BTreeMap::new(),
                held_group: None,
                plan: SvcPlan {
                    key: svc.key.clone(),
                    uid: svc.uid.clone(),
                    ..Default::default()
                },
            }
        })
        .collect();
    let yielding = dropped_keys(&work);
    for w in &mut work {
        adopt(w, &mut book, &yielding);
    }
    book.seal();
    let mut exhausted: BTreeSet<(String, Family)> = BTreeSet::new();
    for w in &mut work {
        allocate(w, &snap.groups, &snap.namespaces, &mut book, &mut exhausted);
    }
    let mut services: Vec<SvcPlan> = work.into_iter().map(|w| finish(w, snap, &book)).collect();
    // Services we no longer serve but once did: take back what we wrote.
    for s in snap.services.iter().filter(|s| !is_ours(s, settings)) {
        if s.written.get(ann::ALLOCATED_BY).map(String::as_str) == Some(ann::ALLOCATED_BY_VALUE) {
            let mut p = SvcPlan {
                key: s.key.clone(),
                uid: s.uid.clone(),
                ..Default::default()
            };
            p.news.extend(released(s, &[]));
            services.push(p);
        }
    }
    let groups = snap
        .groups
        .iter()
        .map(|g| group_status::group_plan(g, &book, &checks, &exhausted))
        .collect();
    Plan { services, groups }
}

/// The group a Service that names none got its addresses from, or why it no longer admits the
/// Service.
fn still_admits(svc: &SvcView, group: &str, snap: &Snapshot) -> Result<String, String> {
    match snap.groups.iter().find(|g| g.name == group) {
        Some(g) => admitted(svc, g, &snap.groups, &snap.namespaces)
            .map(|()| group.to_string())
            .map_err(|why| refused(svc, group, &why)),
        None => Ok(group.to_string()),
    }
}

/// The group an address a Service shows came from: the one it was allocated from, else the one
/// whose pool has it.
fn origin<'b>(svc: &SvcView, addr: IpAddr, book: &'b Book) -> Option<&'b str> {
    match svc
        .written
        .get(ann::ALLOCATED_FROM)
        .and_then(|g| book.groups.get_key_value(g))
    {
        Some((name, _)) => Some(name),
        None => book.group_containing(addr),
    }
}

/// Services showing an address that Services with a sharing key show too, while they carry no
/// key: they dropped it (an edit), so they give the address up, not those still sharing it.
/// Each with the others' keys, for the message.
fn dropped_keys(work: &[Work<'_>]) -> BTreeMap<(String, IpAddr), Vec<String>> {
    let mut shown: BTreeMap<IpAddr, Vec<&SvcView>> = BTreeMap::new();
    for w in work {
        for a in &w.svc.ingress {
            shown.entry(*a).or_default().push(w.svc);
        }
    }
    let mut out = BTreeMap::new();
    for (addr, svcs) in shown {
        let keyed: Vec<String> = svcs
            .iter()
            .filter(|s| s.sharing_key.is_some())
            .map(|s| s.key.to_string())
            .collect();
        if keyed.is_empty() {
            continue;
        }
        for s in svcs.iter().filter(|s| s.sharing_key.is_none()) {
            out.insert((s.uid.clone(), addr), keyed.clone());
        }
    }
    out
}

/// Keeps the addresses a Service already shows, where they still belong to it.
fn adopt(w: &mut Work<'_>, book: &mut Book, yielding: &BTreeMap<(String, IpAddr), Vec<String>>) {
    // It names no group and no address it shows came from one: nothing to keep.
    let Some(group) = &w.group else {
        return;
    };
    let keep: BTreeSet<Family> = match &w.families {
        Ok(f) => f.iter().copied().collect(),
        // Nothing new is possible, but nothing it has is taken away either.
        Err(_) => w.svc.ingress.iter().map(|a| Family::of(*a)).collect(),
    };
    for &addr in &w.svc.ingress {
        let family = Family::of(addr);
        if !keep.contains(&family) {
            continue;
        }
        if let Some(others) = yielding.get(&(w.svc.uid.clone(), addr)) {
            w.plan.problems.push(Note::warning(
                reason::SHARING_CONFLICT,
                format!(
                    "{addr} is shared by {} under a ferrolb.io/allow-shared-ip key this Service no longer carries; this Service gets another address (put the key back to keep sharing)",
                    others.join(", ")
                ),
            ));
            continue;
        }
        let origin = origin(w.svc, addr, book);
        let target = match (group, origin) {
            // The group changed: release here, allocate from the new one.
            (Ok(chosen), Some(o)) if o != chosen => continue,
            (Ok(chosen), _) => chosen.clone(),
            (Err(_), Some(o)) => o.to_string(),
            (Err(_), None) => continue,
        };
        if w.held_group.as_ref().is_some_and(|g| *g != target) {
            continue;
        }
        // One address per slot: a second of a family (or, with multiPool, of a subnet) is
        // released; the first one shown stays.
        let slot = book.groups.get(&target).map_or(Slot::family(family), |g| {
            g.slot_of(addr, g.multi_for(w.svc))
        });
        if w.held.contains_key(&slot) {
            continue;
        }
        // Oldest first across groups: an older Service of another group keeps it.
        if let Some((other, holder)) = book.holder(addr).filter(|(g, _)| *g != target) {
            w.plan.problems.push(Note::warning(
                reason::SHARING_CONFLICT,
                format!(
                    "{addr} is also claimed by the older Service {} of ServiceGroup {other}, and an address is shared only within one group; this Service gets another address",
                    holder.key
                ),
            ));
            continue;
        }
        let Some(g) = book.groups.get(&target) else {
            continue;
        };
        if let Err(why) = g.join_check(addr, &w.owner) {
            let first = g.owners.get(&addr).and_then(|o| o.first());
            let same_key = w.owner.sharing_key.is_some()
                && first.is_some_and(|f| f.sharing_key == w.owner.sharing_key);
            if same_key {
                w.plan.problems.push(Note::warning(
                    reason::SHARING_CONFLICT,
                    format!(
                        "{addr} is shared but the sharing rules no longer hold: {why}; nothing is released, fix the Service's ports, externalTrafficPolicy or selector"
                    ),
                ));
            } else {
                let older = first.map(|f| f.key.to_string()).unwrap_or_default();
                w.plan.problems.push(Note::warning(
                    reason::SHARING_CONFLICT,
                    format!(
                        "{addr} is also claimed by the older Service {older} and cannot be shared ({why}); this Service gets another address"
                    ),
                ));
                continue;
            }
        }
        book.adopt(&target, addr, w.owner.clone());
        w.held.insert(slot, addr);
        w.held_group = Some(target);
    }
}

/// Allocates the families a Service lacks and honours changed requests, all or nothing. A
/// Service that names no group and holds nothing gets the first candidate with room.
fn allocate(
    w: &mut Work<'_>,
    groups: &[GroupView],
    namespaces: &Namespaces,
    book: &mut Book,
    exhausted: &mut BTreeSet<(String, Family)>,
) {
    let svc = w.svc;
    let req = &svc.requested;
    if !req.errors.is_empty() {
        let msg = format!("ferrolb.io/addresses: {}", req.errors.join("; "));
        fail(w, reason::REQUESTED_ADDRESS_UNAVAILABLE, msg);
        return;
    }
    // Why the group was picked, told with each new address.
    let mut why_chosen: Option<String> = None;
    // One that names no group and kept none of what it showed (it dropped its sharing key, lost
    // to an older claim or changed families) starts over like a new Service: the group its old
    // addresses came from no longer holds it. Else the next pass, seeing it hold nothing,
    // would pick another group than this one.
    let starts_over = svc.group.is_none() && w.held.is_empty();
    let group = match &w.group {
        Some(g) if !starts_over => g.clone(),
        _ => {
            let selection = auto_select(svc, &w.owner, groups, namespaces, book);
            match selection.chosen() {
                Some((g, _)) => {
                    why_chosen = Some(selection.why_chosen());
                    Ok(g.to_string())
                }
                None if !req.addrs.is_empty() => {
                    fail(
                        w,
                        reason::REQUESTED_ADDRESS_UNAVAILABLE,
                        selection.why_none(),
                    );
                    return;
                }
                None => Err(selection.why_none()),
            }
        }
    };
    let families_of_old_group = match &w.families {
        Err(e) if !starts_over => Err(e),
        _ => Ok(()),
    };
    let (gname, fams) = match (&group, families_of_old_group) {
        (Ok(g), Ok(())) => {
            // Families again, from what the Service kept: one its group has no pool for is
            // offered only while the Service still holds it (it may have given it up above).
            let mut offered = book
                .groups
                .get(g)
                .map(|b| b.families.clone())
                .unwrap_or_default();
            offered.extend(w.held.keys().map(|s| s.family));
            match families(svc, &offered, g) {
                Ok(f) => (g.clone(), f),
                Err(e) => {
                    fail(w, reason::ALLOCATION_FAILED, e);
                    return;
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            let msg = e.clone();
            fail(w, reason::ALLOCATION_FAILED, msg);
            return;
        }
    };
    if let Some((f, r)) = req.addrs.iter().find(|(f, _)| !fams.contains(f)) {
        let msg = format!(
            "requested address {r} is {f} but the Service gets only {fams:?} from its ipFamilies/ipFamilyPolicy and group {gname:?}; request an address of those families"
        );
        fail(w, reason::REQUESTED_ADDRESS_UNAVAILABLE, msg);
        return;
    }
    let Some(g) = book.groups.get(&gname) else {
        return;
    };
    let multi = g.multi_for(svc);
    let todo: Vec<Slot> = fams
        .iter()
        .flat_map(|&f| g.slots(f, multi))
        .filter(
            |slot| match (w.held.get(slot), req.addrs.get(&slot.family)) {
                (None, _) => true,
                (Some(h), Some(r)) => h != r,
                (Some(_), None) => false,
            },
        )
        .collect();
    if todo.is_empty() {
        return;
    }
    if !g.usable {
        let msg = format!(
            "ServiceGroup {gname:?} gives out no addresses now (see its conditions: overlapping, invalid range or being deleted); fix it or name another group"
        );
        fail(w, reason::ALLOCATION_FAILED, msg);
        return;
    }
    let mut taken: Vec<(Slot, IpAddr)> = Vec::new();
    let mut failure: Option<(&'static str, String)> = None;
    for &slot in &todo {
        let family = slot.family;
        let bound = w
            .owner
            .sharing_key
            .as_ref()
            .and_then(|k| book.groups.get(&gname).and_then(|g| g.bound(k, slot)));
        let got = if let Some(&r) = req.addrs.get(&family) {
            book.take(&gname, r, &w.owner).map(|()| r).map_err(|why| {
                (
                    reason::REQUESTED_ADDRESS_UNAVAILABLE,
                    format!("requested address {r} is unavailable: {why}; request another address or free this one"),
                )
            })
        } else if let Some(bound) = bound {
            book.take(&gname, bound, &w.owner).map(|()| bound).map_err(|why| {
                (
                    reason::SHARING_CONFLICT,
                    format!("the sharing key is bound to {bound}, which this Service cannot share: {why}; fix the ports, externalTrafficPolicy or selector, or use another key"),
                )
            })
        } else {
            book.allocate(&gname, slot, &w.owner).map_err(|_| {
                exhausted.insert((gname.clone(), family));
                let pools = book
                    .groups
                    .get(&gname)
                    .map(|g| g.pools_text())
                    .unwrap_or_default();
                let place = match slot.subnet {
                    Some(net) => format!("in subnet {net} of ServiceGroup {gname:?} (multiPool: one address per subnet)"),
                    None => format!("in ServiceGroup {gname:?}"),
                };
                (
                    reason::ALLOCATION_FAILED,
                    format!(
                        "no free {family} address {place} ({pools}); add a range to the group or free an address"
                    ),
                )
            })
        };
        match got {
            Ok(a) => taken.push((slot, a)),
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
    }
    if let Some((why, msg)) = failure {
        // Never half done: give back what this pass took.
        for (_, a) in taken {
            book.drop_owner(&gname, a, &w.owner.uid);
        }
        fail(w, why, msg);
        return;
    }
    for (slot, a) in taken {
        if let Some(old) = w.held.insert(slot, a) {
            book.drop_owner(&gname, old, &w.owner.uid);
        }
        w.plan.allocated.push(a);
        let mut note = allocated_note(a, &gname);
        if let Some(why) = &why_chosen {
            note.message = format!("{}: {why}", note.message);
        }
        w.plan.news.push(note);
    }
    w.held_group = Some(gname);
}

fn allocated_note(addr: IpAddr, group: &str) -> Note {
    Note::normal(
        reason::ADDRESS_ALLOCATED,
        format!("{addr} allocated from ServiceGroup {group}"),
    )
}

fn fail(w: &mut Work<'_>, why: &'static str, message: String) {
    w.plan.failure = Some(why);
    w.plan.problems.push(Note::warning(why, message));
}

/// One Warning for all the peer annotations a Service carries that ferrolb does not implement:
/// a standing problem, so told once per distinct set of them.
fn unsupported_note(unsupported: &[(&str, &str)]) -> Option<Note> {
    if unsupported.is_empty() {
        return None;
    }
    let each: Vec<String> = unsupported
        .iter()
        .map(|(key, advice)| format!("{key} is not implemented and is ignored: {advice}"))
        .collect();
    Some(Note::warning(
        reason::UNSUPPORTED_ANNOTATION,
        each.join("; "),
    ))
}

/// Addresses a Service shows that it should no longer show.
fn released(s: &SvcView, keep: &[IpAddr]) -> Vec<Note> {
    s.ingress
        .iter()
        .filter(|a| !keep.contains(a))
        .map(|a| Note::normal(reason::ADDRESS_RELEASED, format!("{a} released")))
        .collect()
}

/// The Service's desired ingress, annotations and Events.
fn finish(mut w: Work<'_>, snap: &Snapshot, book: &Book) -> SvcPlan {
    let svc = w.svc;
    let mut order: Vec<Family> = svc.families.clone();
    order.extend(
        [Family::V4, Family::V6]
            .iter()
            .filter(|f| !svc.families.contains(f)),
    );
    // By family in the Service's order, then by subnet.
    let ingress: Vec<IpAddr> = order
        .iter()
        .flat_map(|f| {
            w.held
                .iter()
                .filter(move |(slot, _)| slot.family == *f)
                .map(|(_, a)| *a)
        })
        .collect();
    let mut p = w.plan;
    p.news.extend(released(svc, &ingress));
    if svc.requested.deprecated_field {
        p.problems.push(Note::warning(
            reason::DEPRECATED_FIELD,
            "spec.loadBalancerIP is deprecated; use the ferrolb.io/addresses annotation instead",
        ));
    }
    for c in &svc.annotation_conflicts {
        p.problems
            .push(Note::warning(reason::ANNOTATION_CONFLICT, c.clone()));
    }
    if let Some(n) = unsupported_note(&svc.unsupported) {
        p.problems.push(n);
    }
    if let Some(g) = w.held_group.take().and_then(|g| book.groups.get(&g))
        && !ingress.is_empty()
    {
        p.annotations
            .insert(ann::ALLOCATED_BY.into(), ann::ALLOCATED_BY_VALUE.into());
        p.annotations
            .insert(ann::ALLOCATED_FROM.into(), g.name.clone());
        p.annotations
            .insert(ann::POOL_TYPE.into(), g.group_type.as_str().into());
        // An address shown without our annotations (an older allocator wrote status and
        // annotations apart and was killed in between, or someone removed them) may never have
        // been told: it is told (again).
        if !svc.written.contains_key(ann::ALLOCATED_BY) {
            for &addr in ingress.iter().filter(|a| !p.allocated.contains(a)) {
                p.news.push(allocated_note(addr, &g.name));
            }
        }
        for &addr in &ingress {
            announce::announce(snap, svc, g.group_type, addr, &mut p);
        }
        p.group = Some(g.name.clone());
    }
    p.ingress = ingress;
    p
}
