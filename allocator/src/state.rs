//! The allocation book: per ServiceGroup an [`Ipam`] and who owns each address (with what the
//! sharing rules need), plus the sharing-key bindings, and which group holds each address
//! cluster-wide: an address one group's Service holds is never handed out by another group,
//! whatever the pools say. Rebuilt from the Services' status on every pass, so it never
//! disagrees with what the cluster shows.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::check::parse_pools;
use ferrolb_api::pool::{AddrRange, Aggregation, Family, non_host_addresses, parse_cidr};
use ferrolb_api::servicegroup::GroupType;
use ipnetwork::IpNetwork;

use crate::ipam::{self, Aggregate, Ipam, Pool};
use crate::observe::{GroupView, ObjKey, SvcView};

/// A Service using an address: its view, whose key, uid, sharing key, ports,
/// externalTrafficPolicy and selector the sharing rules compare. Shared, not copied: the book is
/// rebuilt on every pass.
#[derive(Clone, Debug)]
pub struct Owner(Arc<SvcView>);

impl std::ops::Deref for Owner {
    type Target = SvcView;

    fn deref(&self) -> &SvcView {
        &self.0
    }
}

impl Owner {
    pub fn of(s: &Arc<SvcView>) -> Self {
        Owner(s.clone())
    }

    /// Whether `self` may share an address with `other`; `Err` says why not.
    pub fn can_share_with(&self, other: &Owner) -> Result<(), String> {
        match (&self.sharing_key, &other.sharing_key) {
            (Some(a), Some(b)) if a == b => {}
            _ => {
                return Err(format!(
                    "{} and {} do not carry the same ferrolb.io/allow-shared-ip key",
                    self.key, other.key
                ));
            }
        }
        if let Some((proto, port)) = self.ports.intersection(&other.ports).next() {
            return Err(format!(
                "{} and {} both use {proto} port {port}",
                self.key, other.key
            ));
        }
        if self.etp_local != other.etp_local {
            return Err(format!(
                "{} and {} differ in externalTrafficPolicy",
                self.key, other.key
            ));
        }
        if self.etp_local && self.selector != other.selector {
            return Err(format!(
                "{} and {} have externalTrafficPolicy Local but different selectors",
                self.key, other.key
            ));
        }
        Ok(())
    }
}

/// Where a Service's address sits in its group: its family and, for a Service that gets one
/// address in each subnet (multiPool), the subnet of the pool it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub family: Family,
    pub subnet: Option<IpNetwork>,
}

impl Slot {
    /// The one slot of a family, for a Service with one address per family.
    pub fn family(family: Family) -> Self {
        Slot {
            family,
            subnet: None,
        }
    }
}

/// One group's allocations.
#[derive(Clone, Debug)]
pub struct GroupBook {
    pub name: String,
    pub group_type: GroupType,
    pub ipam: Ipam,
    /// Every allocated address and its users, oldest first.
    pub owners: BTreeMap<IpAddr, Vec<Owner>>,
    /// Addresses of this group's pool that another group's Service holds: that group's name and
    /// the Service. Allocated in the IPAM, so never handed out here.
    pub foreign: BTreeMap<IpAddr, (String, Owner)>,
    /// Sharing key, family and the subnet of the address (see [`GroupBook::subnet_of`]) → the
    /// address the key is bound to there.
    keys: BTreeMap<(String, Family, Option<IpNetwork>), IpAddr>,
    /// New allocations may come from this group.
    pub usable: bool,
    /// New allocations spread evenly over the pools (`balancePools`).
    pub balance: bool,
    pub families: BTreeSet<Family>,
    /// Each parsed pool's range and subnet, in the group's order.
    ranges: Vec<(AddrRange, IpNetwork)>,
    /// `spec.local.multiPool`: one address in each subnet, per family.
    pub multi_pool: bool,
}

impl GroupBook {
    /// A group with nothing allocated yet. Subnets keep their non-host addresses out of the
    /// pool (network and broadcast for IPv4, Subnet-Router anycast for IPv6), and so do the
    /// aggregation blocks of a virtual group.
    pub fn new(g: &GroupView, usable: bool) -> Self {
        let (pools, _) = parse_pools(&g.spec);
        let group_type = g.spec.group_type().unwrap_or(GroupType::Local);
        let mut pool = Pool {
            avoid_buggy_ips: g.spec.avoid_buggy_ips,
            ..Default::default()
        };
        let (v4, v6) = g.spec.pools();
        for p in &pools {
            match p.family {
                Family::V4 => pool.v4.push(p.range),
                Family::V6 => pool.v6.push(p.range),
            }
        }
        // A subnet's network, broadcast and Subnet-Router anycast addresses are never a
        // host's, whatever the group's type.
        for p in v4.iter().chain(v6) {
            if let Ok(net) = p.subnet.parse::<IpNetwork>() {
                pool.reserved.extend(non_host_addresses(net));
            }
        }
        let aggregates = if group_type == GroupType::Virtual {
            v4.iter().chain(v6).filter_map(aggregate).collect()
        } else {
            Vec::new()
        };
        let families = pools.iter().map(|p| p.family).collect();
        let ranges = pools.iter().map(|p| (p.range, p.subnet)).collect();
        let ipam = Ipam::with_aggregates(pool, aggregates)
            .unwrap_or_else(|_| Ipam::new(Pool::default()).expect("an empty pool is always valid"));
        GroupBook {
            name: g.name.clone(),
            group_type,
            ipam,
            owners: BTreeMap::new(),
            foreign: BTreeMap::new(),
            keys: BTreeMap::new(),
            usable,
            balance: g.spec.balance_pools,
            families,
            ranges,
            multi_pool: g.spec.local.as_ref().is_some_and(|l| l.multi_pool),
        }
    }

    /// Whether `svc` gets one address in each subnet of this group: a local group, multiPool
    /// from the Service's annotation or else the group, and no requested address (a Service
    /// that requests addresses gets exactly those).
    pub fn multi_for(&self, svc: &SvcView) -> bool {
        self.group_type == GroupType::Local
            && svc.requested.addrs.is_empty()
            && svc.multi_pool.unwrap_or(self.multi_pool)
    }

    /// The subnet of the pool `addr` belongs to: the first whose range has it, else (a range
    /// that shrank) the first whose subnet has it.
    pub fn subnet_of(&self, addr: IpAddr) -> Option<IpNetwork> {
        self.ranges
            .iter()
            .find(|(r, s)| r.contains(addr) && s.contains(addr))
            .or_else(|| self.ranges.iter().find(|(_, s)| s.contains(addr)))
            .map(|(_, s)| *s)
    }

    /// The slot of an address a Service shows, with multiPool or not.
    pub fn slot_of(&self, addr: IpAddr, multi: bool) -> Slot {
        Slot {
            family: Family::of(addr),
            subnet: if multi { self.subnet_of(addr) } else { None },
        }
    }

    /// The slots a Service needs in `family`: one, or with multiPool one per subnet of the
    /// group's pools of that family, in the pools' order.
    pub fn slots(&self, family: Family, multi: bool) -> Vec<Slot> {
        if !multi {
            return vec![Slot::family(family)];
        }
        let mut out: Vec<Slot> = Vec::new();
        for (r, s) in &self.ranges {
            let slot = Slot {
                family,
                subnet: Some(*s),
            };
            if r.family() == family && !out.contains(&slot) {
                out.push(slot);
            }
        }
        out
    }

    /// The address a sharing key is bound to in `slot`: with a subnet, the one in that
    /// subnet; else the key's first address of the family.
    pub fn bound(&self, key: &str, slot: Slot) -> Option<IpAddr> {
        match slot.subnet {
            Some(_) => self
                .keys
                .get(&(key.to_string(), slot.family, slot.subnet))
                .copied(),
            None => self
                .keys
                .iter()
                .find(|((k, f, _), _)| k == key && *f == slot.family)
                .map(|(_, a)| *a),
        }
    }

    /// Why `owner` may not join the users of `addr` (`Ok` when it may, or nobody uses it).
    pub fn join_check(&self, addr: IpAddr, owner: &Owner) -> Result<(), String> {
        for other in self.owners.get(&addr).into_iter().flatten() {
            if other.uid != owner.uid {
                owner.can_share_with(other)?;
            }
        }
        Ok(())
    }

    /// Records `owner` on `addr` during adoption, in the IPAM or not (see [`Self::seal`]).
    pub fn adopt(&mut self, addr: IpAddr, owner: Owner) {
        let users = self.owners.entry(addr).or_default();
        if !users.iter().any(|o| o.uid == owner.uid) {
            users.push(owner);
        }
    }

    /// After adoption: the IPAM holds exactly the adopted addresses (out-of-pool ones too) and
    /// the foreign ones, and each sharing key is bound to its oldest user's address per family.
    fn seal(&mut self) {
        let pool = self.ipam.pool().clone();
        let held = self.owners.keys().chain(self.foreign.keys()).copied();
        // The pool was valid when the IPAM was made, so this cannot fail; if it did, the
        // IPAM would stay empty of allocations, and `take` still checks the owners.
        let _ = self.ipam.rebuild(pool, held);
        self.rebind_keys();
    }

    fn rebind_keys(&mut self) {
        let mut firsts: Vec<(&ObjKey, &str, Family, IpAddr)> = Vec::new();
        for (addr, users) in &self.owners {
            for o in users {
                if let Some(k) = &o.sharing_key {
                    firsts.push((&o.key, k, Family::of(*addr), *addr));
                }
            }
        }
        // The key binds to the address of its first user in owner order, which is age order.
        let mut keys = BTreeMap::new();
        for (_, k, family, addr) in firsts {
            keys.entry((k.to_string(), family, self.subnet_of(addr)))
                .or_insert(addr);
        }
        self.keys = keys;
    }

    /// Takes `addr` for `owner`: joins its users when allowed, else requests it from the IPAM.
    fn take(&mut self, addr: IpAddr, owner: &Owner) -> Result<(), String> {
        if self.owners.contains_key(&addr) {
            self.join_check(addr, owner)?;
        } else if let Some((group, holder)) = self.foreign.get(&addr) {
            return Err(format!(
                "{addr} is held by Service {} of ServiceGroup {group}, and an address is shared only within one group",
                holder.key
            ));
        } else {
            self.ipam.request(addr).map_err(|e| match e {
                ipam::Error::OutsidePool { why, .. } => format!(
                    "{addr} cannot come from ServiceGroup {}: {why}; request an address of its pools ({})",
                    self.name,
                    self.pools_text()
                ),
                other => other.to_string(),
            })?;
        }
        self.add_owner(addr, owner);
        Ok(())
    }

    /// Takes a free address of `slot` for `owner`: the lowest, or with `balancePools` the
    /// lowest of the pool with the fewest allocated addresses; with a subnet, only from the
    /// pools of that subnet.
    fn allocate(&mut self, slot: Slot, owner: &Owner) -> Result<IpAddr, ipam::Error> {
        let addr = match slot.subnet {
            Some(subnet) => {
                let ranges = self.ranges_in(subnet);
                self.ipam
                    .allocate_within(slot.family, &ranges, self.balance)?
            }
            None if self.balance => self.ipam.allocate_balanced(slot.family)?,
            None => self.ipam.allocate(slot.family)?,
        };
        self.add_owner(addr, owner);
        Ok(addr)
    }

    fn add_owner(&mut self, addr: IpAddr, owner: &Owner) {
        self.adopt(addr, owner.clone());
        if let Some(k) = &owner.sharing_key {
            let subnet = self.subnet_of(addr);
            self.keys
                .entry((k.clone(), Family::of(addr), subnet))
                .or_insert(addr);
        }
    }

    /// Drops `uid` from the users of `addr`; the address is freed with its last user (`true`).
    fn drop_owner(&mut self, addr: IpAddr, uid: &str) -> bool {
        let Some(users) = self.owners.get_mut(&addr) else {
            return false;
        };
        users.retain(|o| o.uid != uid);
        if !users.is_empty() {
            return false;
        }
        self.owners.remove(&addr);
        self.ipam.release(addr);
        self.rebind_keys();
        true
    }

    /// The group's pools as text, `a-b` per range.
    pub fn pools_text(&self) -> String {
        let pool = self.ipam.pool();
        let ranges: Vec<String> = pool
            .v4
            .iter()
            .chain(&pool.v6)
            .map(AddrRange::to_string)
            .collect();
        if ranges.is_empty() {
            "none".into()
        } else {
            ranges.join(", ")
        }
    }

    /// Whether [`Self::allocate`] would find a free address for `slot` now.
    pub fn has_free(&self, slot: Slot) -> bool {
        match slot.subnet {
            None => {
                let u = self.ipam.utilization(slot.family);
                u.allocated < u.capacity
            }
            Some(subnet) => self
                .ipam
                .has_free_within(slot.family, &self.ranges_in(subnet)),
        }
    }

    /// The ranges of the pools of `subnet`.
    fn ranges_in(&self, subnet: IpNetwork) -> Vec<AddrRange> {
        self.ranges
            .iter()
            .filter(|(_, s)| *s == subnet)
            .map(|(r, _)| *r)
            .collect()
    }

    /// Allocated addresses of `family`, in the pool or not.
    pub fn allocated(&self, family: Family) -> u64 {
        self.owners
            .keys()
            .filter(|a| Family::of(**a) == family)
            .count() as u64
    }
}

/// A virtual pool's aggregation, when its subnet, range and aggregation parse (the group's
/// check reports those that do not).
fn aggregate(p: &ferrolb_api::servicegroup::Pool) -> Option<Aggregate> {
    let subnet = parse_cidr(&p.subnet).ok()?;
    let range = AddrRange::parse(&p.pool).ok()?;
    let aggregation = Aggregation::parse(p.aggregation.as_deref().unwrap_or("default")).ok()?;
    Some(Aggregate {
        range,
        prefix: aggregation.prefix_for(subnet),
    })
}

/// Every group's book, and which group holds each address.
#[derive(Clone, Debug, Default)]
pub struct Book {
    pub groups: BTreeMap<String, GroupBook>,
    /// Every address a Service holds or gets in this pass, and the group it belongs to.
    held: BTreeMap<IpAddr, String>,
}

impl Book {
    /// Empty books for `groups`; those not in `usable` give out nothing new.
    pub fn new(groups: &[GroupView], usable: &BTreeSet<String>) -> Self {
        Book {
            groups: groups
                .iter()
                .map(|g| (g.name.clone(), GroupBook::new(g, usable.contains(&g.name))))
                .collect(),
            held: BTreeMap::new(),
        }
    }

    /// The group holding `addr` and its oldest user.
    pub fn holder(&self, addr: IpAddr) -> Option<(&str, &Owner)> {
        let group = self.held.get(&addr)?;
        let owner = self.groups.get(group)?.owners.get(&addr)?.first()?;
        Some((group, owner))
    }

    /// Records `owner` on `addr` of `group` during adoption (see [`Book::seal`]). The caller
    /// has checked that no other group holds it.
    pub fn adopt(&mut self, group: &str, addr: IpAddr, owner: Owner) {
        if let Some(g) = self.groups.get_mut(group) {
            g.adopt(addr, owner);
            self.held.insert(addr, group.to_string());
        }
    }

    /// After adoption: each group's IPAM holds its own addresses and those of its pool that
    /// other groups hold; sharing keys are bound.
    pub fn seal(&mut self) {
        let mut foreign: BTreeMap<String, BTreeMap<IpAddr, (String, Owner)>> = BTreeMap::new();
        for (&addr, holder) in &self.held {
            let Some(owner) = self
                .groups
                .get(holder)
                .and_then(|g| g.owners.get(&addr))
                .and_then(|users| users.first())
            else {
                continue;
            };
            for g in self.groups.values() {
                if g.name != *holder && g.ipam.contains(addr) {
                    foreign
                        .entry(g.name.clone())
                        .or_default()
                        .insert(addr, (holder.clone(), owner.clone()));
                }
            }
        }
        for g in self.groups.values_mut() {
            g.foreign = foreign.remove(&g.name).unwrap_or_default();
            g.seal();
        }
    }

    /// Takes `addr` of `group` for `owner`: joins its users when allowed, else requests it from
    /// the group's pool; refused when another group's Service holds it.
    pub fn take(&mut self, group: &str, addr: IpAddr, owner: &Owner) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| format!("ServiceGroup {group:?} does not exist"))?;
        g.take(addr, owner)?;
        self.mark(group, addr, owner);
        Ok(())
    }

    /// Takes a free address for `slot` in `group` for `owner` (see [`GroupBook`]'s
    /// `allocate`; a group not in the book has none).
    pub fn allocate(
        &mut self,
        group: &str,
        slot: Slot,
        owner: &Owner,
    ) -> Result<IpAddr, ipam::Error> {
        let g = self.groups.get_mut(group).ok_or(ipam::Error::Exhausted {
            family: slot.family,
        })?;
        let addr = g.allocate(slot, owner)?;
        self.mark(group, addr, owner);
        Ok(addr)
    }

    /// Drops `uid` from the users of `addr` in `group`; the address is freed cluster-wide with
    /// its last user.
    pub fn drop_owner(&mut self, group: &str, addr: IpAddr, uid: &str) {
        let freed = self
            .groups
            .get_mut(group)
            .is_some_and(|g| g.drop_owner(addr, uid));
        if freed {
            self.held.remove(&addr);
            for g in self.groups.values_mut() {
                if g.foreign.remove(&addr).is_some() {
                    g.ipam.release(addr);
                }
            }
        }
    }

    /// `group` now holds `addr`: every other group whose pool has it keeps it out.
    fn mark(&mut self, group: &str, addr: IpAddr, owner: &Owner) {
        if self.held.insert(addr, group.to_string()).is_some() {
            return;
        }
        for g in self.groups.values_mut() {
            if g.name != group && g.ipam.contains(addr) {
                g.foreign.insert(addr, (group.to_string(), owner.clone()));
                // Already allocated there only if it was foreign before; either way it is now.
                let _ = g.ipam.request(addr);
            }
        }
    }

    /// The group whose pool contains `addr`, if any.
    pub fn group_containing(&self, addr: IpAddr) -> Option<&str> {
        // An address a group keeps back (a subnet's or a block's edge, a .0 or .255 it avoids)
        // is still its own: a Service that shows one (an older system handed it out) keeps it,
        // held out of pool, rather than being renumbered.
        let in_ranges = |g: &&GroupBook| {
            let pool = g.ipam.pool();
            let ranges = match Family::of(addr) {
                Family::V4 => &pool.v4,
                Family::V6 => &pool.v6,
            };
            ranges.iter().any(|r| r.contains(addr))
        };
        self.groups
            .values()
            .find(|g| g.ipam.contains(addr))
            .or_else(|| self.groups.values().find(in_ranges))
            .map(|g| g.name.as_str())
    }
}
