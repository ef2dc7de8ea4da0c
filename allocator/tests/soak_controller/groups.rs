//! The soak's ServiceGroups (IPv4-only, IPv6-only, dual-stack; ranges and CIDRs) and the pool
//! edits made during the churn: a range grown, a second range added, a pool shrunk so that
//! allocated addresses fall outside it.

use std::net::IpAddr;

use ferrolb_api::ServiceGroup;
use ferrolb_api::pool::{AddrRange, Family};
use ferrolb_api::servicegroup::condition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{MANAGER, SCOPE_LABEL};

/// Which families a group offers: Services are made to suit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    V4Only,
    V6Only,
    Dual,
}

/// One pool: (subnet, range or CIDR).
pub type Pool = (&'static str, &'static str);

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub kind: Kind,
    pub v4: Vec<Pool>,
    pub v6: Vec<Pool>,
}

impl Group {
    fn pools(&self, f: Family) -> &Vec<Pool> {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Whether `ip` is in one of the group's current pools.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.pools(Family::of(ip)).iter().any(|(_, p)| {
            AddrRange::parse(p)
                .expect("the soak's pools parse")
                .contains(ip)
        })
    }

    pub fn has(&self, f: Family) -> bool {
        !self.pools(f).is_empty()
    }

    fn body(&self, ns: &str) -> Value {
        let pools = |p: &[Pool]| -> Vec<Value> {
            p.iter()
                .map(|(s, r)| json!({ "subnet": s, "pool": r }))
                .collect()
        };
        // Virtual groups: no agents run here, and a local one would add NoCandidate Events.
        json!({
            "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
            "metadata": { "name": self.name, "labels": { SCOPE_LABEL: ns } },
            "spec": { "virtual": { "v4pools": pools(&self.v4), "v6pools": pools(&self.v6) } },
        })
    }

    /// Creates or updates it; returns the generation the API server gave the spec.
    pub async fn apply(&self, api: &Api<ServiceGroup>, ns: &str) -> i64 {
        api.patch(
            &self.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&self.body(ns)),
        )
        .await
        .expect("the ServiceGroup")
        .metadata
        .generation
        .unwrap_or_default()
    }
}

/// The three groups; `long` makes the pools fit 1000 Services instead of 150 (in both, the
/// IPv4-only and IPv6-only groups start short by dozens of addresses, so growing them frees a
/// burst of allocations at once).
pub fn initial(ns: &str, long: bool) -> Vec<Group> {
    vec![
        Group {
            name: format!("{ns}-v4"),
            kind: Kind::V4Only,
            v4: vec![(
                "192.0.2.0/24",
                if long {
                    "192.0.2.1-192.0.2.200"
                } else {
                    "192.0.2.1-192.0.2.20"
                },
            )],
            v6: vec![],
        },
        Group {
            name: format!("{ns}-v6"),
            kind: Kind::V6Only,
            v4: vec![],
            v6: vec![(
                "2001:db8:6::/64",
                if long {
                    "2001:db8:6::/120"
                } else {
                    "2001:db8:6::/123"
                },
            )],
        },
        Group {
            name: format!("{ns}-dual"),
            kind: Kind::Dual,
            v4: vec![("203.0.113.0/24", "203.0.113.0/24")],
            v6: vec![("2001:db8:d::/64", "2001:db8:d::1-2001:db8:d::ffff")],
        },
    ]
}

/// A pool edit: group `group`'s pools of `family` become `pools`.
#[derive(Clone, Debug)]
pub struct Edit {
    pub what: &'static str,
    pub group: usize,
    pub family: Family,
    pub pools: Vec<Pool>,
    /// Allocated addresses are expected to fall outside the pool after it.
    pub shrinks: bool,
}

/// The edits of a run, in order. Lowest-first allocation puts the dual group's IPv4 addresses
/// low in 203.0.113.0/24, so keeping only its upper half leaves them outside the pool.
pub fn edits(long: bool) -> Vec<Edit> {
    let mut out = vec![
        Edit {
            what: "grow the IPv4-only group's range",
            group: 0,
            family: Family::V4,
            pools: vec![("192.0.2.0/24", "192.0.2.1-192.0.2.254")],
            shrinks: false,
        },
        Edit {
            what: "add a second range to the IPv6-only group",
            group: 1,
            family: Family::V6,
            pools: vec![
                (
                    "2001:db8:6::/64",
                    if long {
                        "2001:db8:6::/120"
                    } else {
                        "2001:db8:6::/123"
                    },
                ),
                ("2001:db8:7::/64", "2001:db8:7::/120"),
            ],
            shrinks: false,
        },
        Edit {
            what: "shrink the dual-stack group's IPv4 pool to its upper half",
            group: 2,
            family: Family::V4,
            pools: vec![("203.0.113.0/24", "203.0.113.128/25")],
            shrinks: true,
        },
    ];
    if long {
        out.extend([
            Edit {
                what: "add a second range to the IPv4-only group",
                group: 0,
                family: Family::V4,
                pools: vec![
                    ("192.0.2.0/24", "192.0.2.1-192.0.2.254"),
                    ("198.51.100.0/24", "198.51.100.0/24"),
                ],
                shrinks: false,
            },
            Edit {
                what: "drop the IPv6-only group's first range",
                group: 1,
                family: Family::V6,
                pools: vec![("2001:db8:7::/64", "2001:db8:7::/120")],
                shrinks: true,
            },
            Edit {
                what: "grow the dual-stack group's IPv4 pool back to the whole subnet",
                group: 2,
                family: Family::V4,
                pools: vec![("203.0.113.0/24", "203.0.113.0/24")],
                shrinks: false,
            },
        ]);
    }
    out
}

impl Edit {
    pub fn apply_to(&self, groups: &mut [Group]) {
        let g = &mut groups[self.group];
        match self.family {
            Family::V4 => g.v4 = self.pools.clone(),
            Family::V6 => g.v6 = self.pools.clone(),
        }
    }
}

/// A group's status as the checks need it.
pub struct Status {
    pub generation: i64,
    pub observed: i64,
    pub capacity: [u64; 2],
    /// OutOfPoolAllocations: (status is True, message).
    pub out_of_pool: Option<(bool, String)>,
}

pub async fn status(api: &Api<ServiceGroup>, name: &str) -> Option<Status> {
    let g = api.get_opt(name).await.ok()??;
    let st = g.status.unwrap_or_default();
    let n = |s: Option<&String>| s.and_then(|s| s.parse::<u64>().ok()).unwrap_or(u64::MAX);
    let cap = st.capacity.as_ref();
    Some(Status {
        generation: g.metadata.generation.unwrap_or_default(),
        observed: st.observed_generation.unwrap_or_default(),
        capacity: [n(cap.map(|c| &c.ipv4)), n(cap.map(|c| &c.ipv6))],
        out_of_pool: st
            .conditions
            .iter()
            .find(|c| c.type_ == condition::OUT_OF_POOL_ALLOCATIONS)
            .map(|c| (c.status == "True", c.message.clone())),
    })
}

pub fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}
