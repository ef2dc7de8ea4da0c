//! What the soak's watch saw: each Service as one version of it shows, the first address of each
//! (Service uid, family), when each was first seen, renumberings, and double uses.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher;

use crate::family_name;

/// What a Service asks for, as one version of it shows.
#[derive(Clone, Debug)]
pub struct Seen {
    pub name: String,
    /// The ServiceGroup it names.
    pub group: String,
    pub primary: Family,
    pub dual: bool,
    pub ips: Vec<IpAddr>,
    pub annotated: bool,
}

impl Seen {
    pub fn of(svc: &Service) -> Option<(String, Seen)> {
        let uid = svc.metadata.uid.clone()?;
        let spec = svc.spec.as_ref()?;
        let primary = match spec.ip_families.as_ref()?.first()?.as_str() {
            "IPv6" => Family::V6,
            _ => Family::V4,
        };
        let ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|i| {
                i.iter()
                    .filter_map(|e| e.ip.as_deref()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let annotations = svc.metadata.annotations.as_ref();
        let annotated = annotations
            .is_some_and(|a| a.get(ann::ALLOCATED_BY).map(String::as_str) == Some("ferrolb"));
        let group = annotations
            .and_then(|a| a.get(ann::SERVICE_GROUP))
            .cloned()
            .unwrap_or_default();
        Some((
            uid,
            Seen {
                name: svc.metadata.name.clone().unwrap_or_default(),
                group,
                primary,
                dual: spec.ip_family_policy.as_deref() != Some("SingleStack"),
                ips,
                annotated,
            },
        ))
    }

    pub fn wants(&self, f: Family) -> bool {
        f == self.primary || self.dual
    }

    /// Its address of family `f`, if it shows one.
    pub fn ip(&self, f: Family) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| Family::of(*ip) == f)
    }
}

/// Everything the watch saw.
#[derive(Clone, Default)]
pub struct Ledger {
    /// The run's start, to say when a violation was seen.
    pub epoch: Option<Instant>,
    view: HashMap<String, Seen>,
    relist: Option<HashMap<String, Seen>>,
    holders: HashMap<IpAddr, BTreeSet<String>>,
    pub first: HashMap<(String, Family), IpAddr>,
    /// When each entry of `first` was seen, in order: the allocations.
    pub allocations: Vec<Instant>,
    /// Services (by name) once taken from dual- to single-stack: their second family was
    /// released on purpose, so only their first family must keep its address.
    pub downgraded: HashSet<String>,
    pub renumbered: BTreeSet<String>,
    /// Two Services that both ask for the family showed one address at the same moment.
    pub double_use: BTreeSet<String>,
    /// Two Services showed one address while one of them no longer asked for its family (its
    /// status not yet rewritten).
    pub stale_overlaps: u64,
}

impl Ledger {
    /// Whether the second family of `s` was released on purpose once (so it may change).
    pub fn exempt(&self, s: &Seen, f: Family) -> bool {
        f != s.primary && self.downgraded.contains(&s.name)
    }

    /// The first allocation seen at or after `at`.
    pub fn allocation_since(&self, at: Instant) -> Option<Instant> {
        let i = self.allocations.partition_point(|t| *t < at);
        self.allocations.get(i).copied()
    }

    /// Records the addresses `s` shows; flags any that differ from the first one of their family.
    fn remember(&mut self, uid: &str, s: &Seen) {
        for &ip in &s.ips {
            let f = Family::of(ip);
            if !s.wants(f) {
                continue;
            }
            let key = (uid.to_string(), f);
            let first = match self.first.get(&key) {
                Some(first) => *first,
                None => {
                    self.first.insert(key, ip);
                    self.allocations.push(Instant::now());
                    ip
                }
            };
            if first != ip && !self.exempt(s, f) {
                let at = self.epoch.map_or(0.0, |e| e.elapsed().as_secs_f64());
                self.renumbered.insert(format!(
                    "{} {}: {first} -> {ip} (seen {at:.1} s into the run)",
                    s.name,
                    family_name(f)
                ));
            }
        }
    }

    fn unindex(&mut self, uid: &str) {
        if let Some(old) = self.view.remove(uid) {
            for ip in old.ips {
                if let Some(h) = self.holders.get_mut(&ip) {
                    h.remove(uid);
                    if h.is_empty() {
                        self.holders.remove(&ip);
                    }
                }
            }
        }
    }

    fn index(&mut self, uid: String, s: Seen) {
        self.unindex(&uid);
        for &ip in &s.ips {
            self.holders.entry(ip).or_default().insert(uid.clone());
        }
        let ips = s.ips.clone();
        self.view.insert(uid, s);
        for ip in ips {
            self.check_overlap(ip);
        }
    }

    fn check_overlap(&mut self, ip: IpAddr) {
        let Some(h) = self.holders.get(&ip).filter(|h| h.len() > 1) else {
            return;
        };
        let users: Vec<&Seen> = h.iter().filter_map(|u| self.view.get(u)).collect();
        if users.iter().all(|s| s.wants(Family::of(ip))) {
            let names: Vec<&str> = users.iter().map(|s| s.name.as_str()).collect();
            let at = self.epoch.map_or(0.0, |e| e.elapsed().as_secs_f64());
            self.double_use.insert(format!(
                "{ip} on {} (seen {at:.1} s into the run)",
                names.join(" and ")
            ));
        } else {
            self.stale_overlaps += 1;
        }
    }

    pub fn observe(&mut self, ev: watcher::Event<Service>) {
        match ev {
            watcher::Event::Apply(svc) => {
                if let Some((uid, s)) = Seen::of(&svc) {
                    self.remember(&uid, &s);
                    self.index(uid, s);
                }
            }
            watcher::Event::Delete(svc) => {
                if let Some(uid) = svc.metadata.uid {
                    self.unindex(&uid);
                }
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(svc) => {
                if let Some((uid, s)) = Seen::of(&svc) {
                    self.remember(&uid, &s);
                    self.relist.get_or_insert_default().insert(uid, s);
                }
            }
            watcher::Event::InitDone => {
                // A relist replaces the view: objects deleted during a watch gap are gone.
                let fresh = self.relist.take().unwrap_or_default();
                self.view.clear();
                self.holders.clear();
                for (uid, s) in fresh {
                    self.index(uid, s);
                }
            }
        }
    }
}
