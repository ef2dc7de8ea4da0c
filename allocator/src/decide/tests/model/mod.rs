//! Model-based test of the decisions over several groups: random sequences of group edits
//! (ranges added, removed, moved between groups, reversed, families dropped and restored, type
//! changed, groups deleted), Service edits (family policy, requested addresses, sharing keys,
//! group, type) and restarts (every view rebuilt from the objects the cluster shows, in another
//! order). Each step is followed by one pass, applied as the API server would, and a second pass
//! that must write nothing ([`World::pass`]). After every step:
//! - no address is shown by two Services unless they carry one key and come from one group,
//!   and a share formed in this step obeys the sharing rules;
//! - an address a Service shows stays while the Service keeps that family, unless it moves to
//!   the address the Service requests, to another group (the user asked, now or before), or
//!   away from an address it shared under a key it or its partner changed;
//! - every address a Service stops showing is told released exactly once, every new one told
//!   allocated exactly once, and nothing else is told;
//! - a new address comes from its group's current pools: in an ordered range, never a subnet's
//!   or an aggregation block's edge.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use proptest::prelude::*;

use super::*;

mod check;
mod finds;

use check::check_step;

const GROUPS: [&str; 3] = ["default", "ga", "gb"];
const SERVICES: usize = 6;
/// Addresses live at offsets 0..SPAN of each family's universe.
const SPAN: u8 = 16;

/// The address at `offset` of a family's universe: 192.0.2.16-31, 2001:db8::10-1f. Virtual
/// groups sit them in /29 and /125 blocks, so that blocks have edges inside the universe.
fn addr(v6: bool, offset: u8) -> IpAddr {
    let text = if v6 {
        format!("2001:db8::{:x}", 16 + offset)
    } else {
        format!("192.0.2.{}", 16 + offset)
    };
    text.parse().expect("a universe address")
}

fn offset(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(a) => a.octets()[3] - 16,
        IpAddr::V6(a) => (a.segments()[7] - 16) as u8,
    }
}

/// A group's spec as offsets: ranges per family, possibly reversed.
#[derive(Clone, Debug, Default, PartialEq)]
struct GroupSpec {
    v4: Vec<(u8, u8)>,
    v6: Vec<(u8, u8)>,
    virtual_: bool,
}

impl GroupSpec {
    fn ranges(&self, v6: bool) -> &Vec<(u8, u8)> {
        if v6 { &self.v6 } else { &self.v4 }
    }

    fn ranges_mut(&mut self, v6: bool) -> &mut Vec<(u8, u8)> {
        if v6 { &mut self.v6 } else { &mut self.v4 }
    }

    fn build(&self, name: &str, age: u32) -> G {
        let mut g = group(name).age(age);
        for &(a, b) in &self.v4 {
            g = g.v4(
                "192.0.2.0/24",
                &format!("{}-{}", addr(false, a), addr(false, b)),
            );
        }
        for &(a, b) in &self.v6 {
            g = g.v6(
                "2001:db8::/64",
                &format!("{}-{}", addr(true, a), addr(true, b)),
            );
        }
        if self.virtual_ {
            g = g.virtual_();
            for (list, agg) in [("v4pools", "/29"), ("v6pools", "/125")] {
                if let Some(pools) = g.0["spec"]["virtual"][list].as_array_mut() {
                    for p in pools {
                        p["aggregation"] = agg.into();
                    }
                }
            }
        }
        g
    }

    /// Whether a new address of this group may be `a`: in an ordered range of its family and,
    /// in a virtual group, not the edge of its block.
    fn may_hand_out(&self, a: IpAddr) -> bool {
        let v6 = a.is_ipv6();
        let o = offset(a);
        let in_range = self.ranges(v6).iter().any(|&(s, e)| s <= o && o <= e);
        // Offsets 0..8 and 8..16 are the blocks: addresses 16-23 and 24-31 of their prefix.
        let edge = self.virtual_ && (o.is_multiple_of(8) || (!v6 && o % 8 == 7));
        in_range && !edge
    }
}

/// What the user wrote on a Service.
#[derive(Clone, Debug, PartialEq)]
struct SvcSpec {
    group: Option<usize>,
    /// 0: SingleStack, 1: PreferDualStack, 2: RequireDualStack.
    policy: u8,
    v6_first: bool,
    request_v4: Option<u8>,
    request_v6: Option<u8>,
    key: Option<u8>,
    port: u8,
    load_balancer: bool,
}

impl SvcSpec {
    fn build(&self, name: &str, age: u32, uid: &str) -> S {
        let fams: &[&str] = match (self.policy, self.v6_first) {
            (0, false) => &["IPv4"],
            (0, true) => &["IPv6"],
            (_, false) => &["IPv4", "IPv6"],
            (_, true) => &["IPv6", "IPv4"],
        };
        let policy = ["SingleStack", "PreferDualStack", "RequireDualStack"][self.policy as usize];
        let mut s = svc(name)
            .age(age)
            .families(fams, policy)
            .ports(&[("TCP", 80 + i32::from(self.port))]);
        s.0["metadata"]["uid"] = uid.into();
        if let Some(g) = self.group {
            s = s.group(GROUPS[g]);
        }
        let requested: Vec<String> = [
            self.request_v4.map(|o| addr(false, o)),
            self.request_v6.map(|o| addr(true, o)),
        ]
        .into_iter()
        .flatten()
        .map(|a| a.to_string())
        .collect();
        if !requested.is_empty() {
            s = s.addresses(&requested.join(","));
        }
        if let Some(k) = self.key {
            s = s.key(&format!("k{k}"));
        }
        if !self.load_balancer {
            s = s.spec("type", "ClusterIP".into());
        }
        s
    }

    fn requested(&self, v6: bool) -> Option<u8> {
        if v6 { self.request_v6 } else { self.request_v4 }
    }
}

#[derive(Clone, Debug)]
enum Op {
    SetGroup(usize, GroupSpec),
    DeleteGroup(usize),
    MoveRange { from: usize, to: usize, v6: bool },
    DropFamily(usize, bool),
    RestoreFamily(usize, bool),
    Reverse(usize, bool),
    SetSvc(usize, SvcSpec),
    DeleteSvc(usize),
    Restart,
}

fn range() -> impl Strategy<Value = (u8, u8)> {
    prop_oneof![
        4 => (0..SPAN, 0..6u8).prop_map(|(s, len)| (s, (s + len).min(SPAN - 1))),
        1 => (0..SPAN, 0..SPAN),
    ]
}

fn group_spec() -> impl Strategy<Value = GroupSpec> {
    (
        prop::collection::vec(range(), 0..3),
        prop::collection::vec(range(), 0..3),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(v4, v6, virtual_)| GroupSpec { v4, v6, virtual_ })
}

fn svc_spec() -> impl Strategy<Value = SvcSpec> {
    (
        prop_oneof![1 => Just(None), 3 => (0..GROUPS.len()).prop_map(Some)],
        0..3u8,
        any::<bool>(),
        prop::option::weighted(0.2, 0..SPAN),
        prop::option::weighted(0.2, 0..SPAN),
        prop::option::weighted(0.4, 0..2u8),
        0..3u8,
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(group, policy, v6_first, request_v4, request_v6, key, port, load_balancer)| SvcSpec {
                group,
                policy,
                v6_first,
                request_v4,
                request_v6,
                key,
                port,
                load_balancer,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..GROUPS.len();
    let s = 0..SERVICES;
    prop_oneof![
        4 => (g.clone(), group_spec()).prop_map(|(g, spec)| Op::SetGroup(g, spec)),
        1 => g.clone().prop_map(Op::DeleteGroup),
        2 => (g.clone(), g.clone(), any::<bool>())
            .prop_map(|(from, to, v6)| Op::MoveRange { from, to, v6 }),
        1 => (g.clone(), any::<bool>()).prop_map(|(g, v6)| Op::DropFamily(g, v6)),
        1 => (g.clone(), any::<bool>()).prop_map(|(g, v6)| Op::RestoreFamily(g, v6)),
        1 => (g, any::<bool>()).prop_map(|(g, v6)| Op::Reverse(g, v6)),
        6 => (s.clone(), svc_spec()).prop_map(|(s, spec)| Op::SetSvc(s, spec)),
        2 => s.prop_map(Op::DeleteSvc),
        1 => Just(Op::Restart),
    ]
}

/// A Service as the user made it.
#[derive(Clone, Debug)]
struct UserSvc {
    spec: SvcSpec,
    age: u32,
    uid: String,
}

/// What the user asked for: each group's spec and age, each Service.
#[derive(Clone, Debug, Default)]
struct User {
    groups: [Option<(GroupSpec, u32)>; GROUPS.len()],
    services: [Option<UserSvc>; SERVICES],
}

/// The cluster under test and what the user asked of it.
struct Model {
    world: World,
    user: User,
    /// Pools a DropFamily took away, per group and family, for RestoreFamily.
    dropped: BTreeMap<(usize, bool), Vec<(u8, u8)>>,
    clock: u32,
}

/// What a Service shows: uid, addresses per family, the group it says they came from, its key.
#[derive(Clone, Debug)]
struct Shown {
    uid: String,
    addrs: BTreeMap<Family, IpAddr>,
    from: Option<String>,
    key: Option<String>,
    ports: BTreeSet<(String, i32)>,
}

fn name(s: usize) -> String {
    format!("s{s}")
}

impl Model {
    fn new() -> Self {
        Model {
            world: World::new(&[], &[]),
            user: User::default(),
            dropped: BTreeMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u32 {
        self.clock += 1;
        self.clock
    }

    fn shown(&self) -> BTreeMap<String, Shown> {
        self.world
            .snap
            .services
            .iter()
            .map(|s| {
                (
                    s.key.name.clone(),
                    Shown {
                        uid: s.uid.clone(),
                        addrs: s.ingress.iter().map(|a| (Family::of(*a), *a)).collect(),
                        from: s.written.get(ann::ALLOCATED_FROM).cloned(),
                        key: s.sharing_key.clone(),
                        ports: s.ports.clone(),
                    },
                )
            })
            .collect()
    }

    /// Writes group `g`'s spec to the cluster: created, or edited (a group being deleted stays
    /// so; edits of a terminating object are allowed).
    fn put_group(&mut self, g: usize, spec: GroupSpec) {
        let age = match &self.user.groups[g] {
            Some((_, age)) => *age,
            None => self.tick(),
        };
        let deleting = self
            .world
            .snap
            .groups
            .iter()
            .any(|v| v.name == GROUPS[g] && v.deleting);
        self.world.set_group(spec.build(GROUPS[g], age));
        if let Some(v) = self
            .world
            .snap
            .groups
            .iter_mut()
            .find(|v| v.name == GROUPS[g])
        {
            v.deleting = deleting;
        }
        self.user.groups[g] = Some((spec, age));
    }

    fn edit_group(&mut self, g: usize, f: impl FnOnce(&mut GroupSpec)) {
        if let Some((spec, _)) = &self.user.groups[g] {
            let mut spec = spec.clone();
            f(&mut spec);
            self.put_group(g, spec);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::SetGroup(g, spec) => self.put_group(*g, spec.clone()),
            Op::DeleteGroup(g) => {
                let name = GROUPS[*g];
                let Some(v) = self.world.snap.groups.iter_mut().find(|v| v.name == name) else {
                    return;
                };
                if v.has_finalizer {
                    v.deleting = true;
                } else {
                    self.world.snap.groups.retain(|v| v.name != name);
                    self.user.groups[*g] = None;
                }
            }
            Op::MoveRange { from, to, v6 } => {
                let (Some((a, _)), Some(_)) = (&self.user.groups[*from], &self.user.groups[*to])
                else {
                    return;
                };
                let Some(&r) = a.ranges(*v6).first() else {
                    return;
                };
                // Both edits land before the allocator's next pass.
                self.edit_group(*from, |s| {
                    s.ranges_mut(*v6).remove(0);
                });
                self.edit_group(*to, |s| s.ranges_mut(*v6).push(r));
            }
            Op::DropFamily(g, v6) => {
                let mut taken = Vec::new();
                self.edit_group(*g, |s| taken = std::mem::take(s.ranges_mut(*v6)));
                if !taken.is_empty() {
                    self.dropped.insert((*g, *v6), taken);
                }
            }
            Op::RestoreFamily(g, v6) => {
                if let Some(back) = self.dropped.remove(&(*g, *v6)) {
                    self.edit_group(*g, |s| s.ranges_mut(*v6).extend(back));
                }
            }
            Op::Reverse(g, v6) => self.edit_group(*g, |s| {
                if let Some(r) = s.ranges_mut(*v6).first_mut() {
                    *r = (r.1, r.0);
                }
            }),
            Op::SetSvc(s, spec) => {
                let (age, uid) = match &self.user.services[*s] {
                    Some(u) => (u.age, u.uid.clone()),
                    None => {
                        let age = self.tick();
                        (age, format!("uid-{}-{age}", name(*s)))
                    }
                };
                self.world.edit(spec.build(&name(*s), age, &uid));
                self.user.services[*s] = Some(UserSvc {
                    spec: spec.clone(),
                    age,
                    uid,
                });
            }
            Op::DeleteSvc(s) => {
                self.world.delete(&name(*s));
                self.user.services[*s] = None;
            }
            Op::Restart => self.restart(),
        }
    }

    /// A new allocator: every view rebuilt from the objects as the API server would list them
    /// (the user's spec plus the status and annotations the allocator wrote), in another order.
    fn restart(&mut self) {
        let mut services = Vec::new();
        for old in self.world.snap.services.iter().rev() {
            let Some(u) = self
                .user
                .services
                .iter()
                .flatten()
                .find(|u| u.uid == old.uid)
            else {
                continue;
            };
            let mut s = u.spec.build(&old.key.name, u.age, &u.uid);
            for (k, v) in &old.written {
                s = s.ann(k, v);
            }
            if !old.ingress.is_empty() {
                let ips: Vec<String> = old.ingress.iter().map(IpAddr::to_string).collect();
                let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
                s = s.ingress(&ips);
            }
            services.push(Arc::new(s.view()));
        }
        self.world.snap.services = services;
        let mut groups = Vec::new();
        for old in self.world.snap.groups.iter().rev() {
            let Some(g) = GROUPS.iter().position(|n| *n == old.name) else {
                continue;
            };
            let Some((spec, age)) = &self.user.groups[g] else {
                continue;
            };
            let mut v = spec.build(GROUPS[g], *age).view();
            v.status = old.status.clone();
            v.has_finalizer = old.has_finalizer;
            v.deleting = old.deleting;
            groups.push(v);
        }
        self.world.snap.groups = groups;
    }

    /// Groups being deleted go once their finalizer is off, as the API server does.
    fn finish_deletions(&mut self) {
        for (g, name) in GROUPS.iter().enumerate() {
            let gone = self
                .world
                .snap
                .groups
                .iter()
                .any(|v| v.name == *name && v.deleting && !v.has_finalizer);
            if gone {
                self.world.snap.groups.retain(|v| v.name != *name);
                self.user.groups[g] = None;
            }
        }
    }
}

fn run(ops: &[Op]) {
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        let before = model.shown();
        model.apply(op);
        let step = std::panic::AssertUnwindSafe(|| {
            let p = model.world.pass();
            check_step(&before, &model, &p);
        });
        if let Err(e) = std::panic::catch_unwind(step) {
            eprintln!("failed at step {i} of {ops:#?}");
            std::panic::resume_unwind(e);
        }
        model.finish_deletions();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_owner_no_renumbering_one_release(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}
