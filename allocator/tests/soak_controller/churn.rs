//! The churn: Services created over the three groups, deleted, and edited (ports, annotations,
//! ipFamilyPolicy), each suited to its group's families.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use ferrolb_e2e::rng::XorShift;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::groups::{Group, Kind};
use crate::ledger::Ledger;
use crate::{MANAGER, family_name, lock};

/// One request of the churn.
pub enum Op {
    Create {
        name: String,
        group: String,
        primary: Family,
        policy: &'static str,
    },
    Delete(String),
    Ports(String, i32),
    Touch(String, u64),
    Policy(String, &'static str),
}

impl Op {
    /// (kind for the figures, target Service).
    pub fn describe(&self) -> (&'static str, &String) {
        match self {
            Op::Create { name, .. } => ("create", name),
            Op::Delete(name) => ("delete", name),
            Op::Ports(name, _) => ("ports", name),
            Op::Touch(name, _) => ("annotation", name),
            Op::Policy(name, p) if *p == "SingleStack" => ("to_single_stack", name),
            Op::Policy(name, _) => ("to_dual_stack", name),
        }
    }
}

const POLICIES: [&str; 3] = ["SingleStack", "PreferDualStack", "RequireDualStack"];

/// A policy flipped back before the allocator wrote the first flip would make the test see a
/// double use it caused itself; flips of one Service are spaced by this.
const POLICY_COOLDOWN: Duration = Duration::from_secs(5);

/// The policies a Service of a group may have: RequireDualStack only where both families are.
fn policies(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Dual => &POLICIES,
        _ => &POLICIES[..2],
    }
}

/// The test's own view of the Services it made, to pick targets and policies.
#[derive(Default)]
pub struct Model {
    /// Name -> (group index, policy).
    pub alive: BTreeMap<String, (usize, &'static str)>,
    pub busy: HashSet<String>,
    /// Never deleted, so that the addresses they held before the pool edits can be checked
    /// after them.
    pub keep: HashSet<String>,
    /// When each Service's policy last changed.
    policy_changed: HashMap<String, Instant>,
    pub created: usize,
}

impl Model {
    fn pick(&self, rng: &mut XorShift) -> Option<String> {
        let free: Vec<&String> = self
            .alive
            .keys()
            .filter(|n| !self.busy.contains(*n))
            .collect();
        (!free.is_empty()).then(|| free[rng.below(free.len())].clone())
    }

    pub fn create(&mut self, rng: &mut XorShift, groups: &[Group]) -> Op {
        let name = format!("s{}", self.created);
        self.created += 1;
        let gi = rng.below(groups.len());
        let kind = groups[gi].kind;
        let primary = match kind {
            Kind::V4Only => Family::V4,
            Kind::V6Only => Family::V6,
            Kind::Dual if rng.below(2) == 0 => Family::V4,
            Kind::Dual => Family::V6,
        };
        let policy = match (kind, rng.below(100)) {
            (_, 0..60) => POLICIES[0],
            (Kind::Dual, 60..85) => POLICIES[1],
            (Kind::Dual, _) => POLICIES[2],
            _ => POLICIES[1],
        };
        self.alive.insert(name.clone(), (gi, policy));
        Op::Create {
            name,
            group: groups[gi].name.clone(),
            primary,
            policy,
        }
    }

    /// The next churn request (creates keep the population near `cap`).
    pub fn churn(
        &mut self,
        rng: &mut XorShift,
        cap: usize,
        groups: &[Group],
        ledger: &Mutex<Ledger>,
    ) -> Option<Op> {
        let roll = rng.below(100);
        if roll < 20 && self.alive.len() < cap {
            return Some(self.create(rng, groups));
        }
        let name = self.pick(rng)?;
        Some(match roll {
            0..40 if self.keep.contains(&name) => Op::Touch(name, rng.next()),
            0..40 => {
                self.alive.remove(&name);
                Op::Delete(name)
            }
            40..60 => Op::Ports(name, 1 + rng.below(60000) as i32),
            60..75 => Op::Touch(name, rng.next()),
            _ if self
                .policy_changed
                .get(&name)
                .is_some_and(|t| t.elapsed() < POLICY_COOLDOWN) =>
            {
                Op::Touch(name, rng.next())
            }
            _ => {
                self.policy_changed.insert(name.clone(), Instant::now());
                let (gi, old) = self.alive[&name];
                let others: Vec<&'static str> = policies(groups[gi].kind)
                    .iter()
                    .copied()
                    .filter(|p| *p != old)
                    .collect();
                let new = others[rng.below(others.len())];
                if new == "SingleStack" {
                    // Before the request: from now on its second family may change.
                    lock(ledger).downgraded.insert(name.clone());
                }
                self.alive.insert(name.clone(), (gi, new));
                Op::Policy(name, new)
            }
        })
    }
}

fn service(ns: &str, group: &str, name: &str, primary: Family, policy: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "namespace": ns,
                      "annotations": { ann::SERVICE_GROUP: group } },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": [family_name(primary)],
            "ipFamilyPolicy": policy,
            // No NodePorts: the churn must not run out of the node-port range.
            "allocateLoadBalancerNodePorts": false,
            "ports": [ { "name": "p", "port": 80, "protocol": "TCP" } ],
            "selector": { "app": name },
        }
    }))
    .expect("a valid Service")
}

/// Sends one request; `Err` only for failures the churn did not expect.
pub async fn send(api: Api<Service>, ns: String, op: Op) -> (String, Result<(), String>) {
    let pp = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let patch = async |name: &str, body: serde_json::Value| {
        api.patch(name, &pp, &Patch::Merge(&body)).await.map(|_| ())
    };
    let (name, res) = match op {
        Op::Create {
            name,
            group,
            primary,
            policy,
        } => {
            let svc = service(&ns, &group, &name, primary, policy);
            let r = api.create(&PostParams::default(), &svc).await.map(|_| ());
            (name, r)
        }
        Op::Delete(name) => {
            let r = api
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ());
            (name, r)
        }
        Op::Ports(name, port) => {
            let body = json!({ "spec": { "ports": [ { "name": "p", "port": port, "protocol": "TCP" } ] } });
            let r = patch(&name, body).await;
            (name, r)
        }
        Op::Touch(name, n) => {
            let body = json!({ "metadata": { "annotations": { "soak.ferrolb.io/touch": n.to_string() } } });
            let r = patch(&name, body).await;
            (name, r)
        }
        Op::Policy(name, policy) => {
            let body = json!({ "spec": { "ipFamilyPolicy": policy } });
            let r = patch(&name, body).await;
            (name, r)
        }
    };
    (name, res.map_err(|e| e.to_string()))
}
