//! Table tests of the decisions: builders for Services, groups and Leases, and a world that
//! applies each plan to itself the way the cluster would and checks that a second pass is quiet.

mod allocation;
mod announcing;
mod auto_assign;
mod balanced;
mod cross_group;
mod groups;
mod model;
mod multi_pool;
mod peer_annotations;
mod pools;
mod sharing;
mod tenancy;

use std::net::IpAddr;
pub use std::sync::Arc;

use ferrolb_api::ServiceGroup;
use ferrolb_api::annotations as ann;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{Note, Plan, Settings, SvcPlan, diff, plan};
use crate::observe::{GroupView, NodeLease, ObjKey, Snapshot, SvcView};

fn stamp(age: u32) -> String {
    format!(
        "2026-01-01T{:02}:{:02}:{:02}Z",
        age / 3600,
        (age / 60) % 60,
        age % 60
    )
}

/// A Service under construction (the JSON a user would write), read through the observe layer.
#[derive(Clone)]
pub struct S(Value);

pub fn svc(name: &str) -> S {
    S(json!({
        "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                      "creationTimestamp": stamp(0), "annotations": {} },
        "spec": { "type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                  "ports": [ { "port": 80, "protocol": "TCP" } ] }
    }))
}

impl S {
    pub fn age(mut self, seconds: u32) -> Self {
        self.0["metadata"]["creationTimestamp"] = stamp(seconds).into();
        self
    }
    pub fn ann(mut self, k: &str, v: &str) -> Self {
        self.0["metadata"]["annotations"][k] = v.into();
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0["metadata"]["labels"][k] = v.into();
        self
    }
    pub fn group(self, g: &str) -> Self {
        self.ann(ann::SERVICE_GROUP, g)
    }
    pub fn key(self, k: &str) -> Self {
        self.ann(ann::ALLOW_SHARED_IP, k)
    }
    pub fn addresses(self, a: &str) -> Self {
        self.ann(ann::ADDRESSES, a)
    }
    pub fn spec(mut self, k: &str, v: Value) -> Self {
        self.0["spec"][k] = v;
        self
    }
    pub fn families(self, fams: &[&str], policy: &str) -> Self {
        self.spec("ipFamilies", json!(fams))
            .spec("ipFamilyPolicy", policy.into())
    }
    pub fn dual(self, policy: &str) -> Self {
        self.families(&["IPv4", "IPv6"], policy)
    }
    pub fn ports(self, ports: &[(&str, i32)]) -> Self {
        let p: Vec<Value> = ports
            .iter()
            .map(|(proto, port)| json!({ "protocol": proto, "port": port }))
            .collect();
        self.spec("ports", p.into())
    }
    pub fn local(self, app: &str) -> Self {
        self.spec("externalTrafficPolicy", "Local".into())
            .spec("selector", json!({ "app": app }))
    }
    pub fn ingress(mut self, ips: &[&str]) -> Self {
        let entries: Vec<Value> = ips
            .iter()
            .map(|ip| json!({ "ip": ip, "ipMode": "VIP" }))
            .collect();
        self.0["status"] = json!({ "loadBalancer": { "ingress": entries } });
        self
    }
    pub fn view(&self) -> SvcView {
        let s: Service = serde_json::from_value(self.0.clone()).expect("a valid test Service");
        SvcView::from_service(&s)
    }
}

/// A ServiceGroup under construction.
#[derive(Clone)]
pub struct G(Value);

pub fn group(name: &str) -> G {
    G(json!({
        "metadata": { "name": name, "creationTimestamp": stamp(0), "generation": 1 },
        "spec": { "local": { "v4pools": [], "v6pools": [] } }
    }))
}

impl G {
    fn kind(&self) -> &'static str {
        if self.0["spec"]["local"].is_object() {
            "local"
        } else {
            "virtual"
        }
    }
    pub fn v4(mut self, subnet: &str, pool: &str) -> Self {
        let k = self.kind();
        if let Some(a) = self.0["spec"][k]["v4pools"].as_array_mut() {
            a.push(json!({ "subnet": subnet, "pool": pool }));
        }
        self
    }
    pub fn v6(mut self, subnet: &str, pool: &str) -> Self {
        let k = self.kind();
        if let Some(a) = self.0["spec"][k]["v6pools"].as_array_mut() {
            a.push(json!({ "subnet": subnet, "pool": pool }));
        }
        self
    }
    /// Sets `aggregation` on every pool listed so far (a virtual group's).
    pub fn aggregation(mut self, a: &str) -> Self {
        let k = self.kind();
        for list in ["v4pools", "v6pools"] {
            if let Some(pools) = self.0["spec"][k][list].as_array_mut() {
                for p in pools {
                    p["aggregation"] = a.into();
                }
            }
        }
        self
    }
    pub fn virtual_(mut self) -> Self {
        let pools = self.0["spec"]["local"].take();
        self.0["spec"]["virtual"] = pools;
        if let Some(o) = self.0["spec"].as_object_mut() {
            o.remove("local");
        }
        self
    }
    pub fn set(mut self, k: &str, v: Value) -> Self {
        self.0["spec"][k] = v;
        self
    }
    /// `spec.local.multiPool`.
    pub fn multi_pool(mut self, on: bool) -> Self {
        self.0["spec"]["local"]["multiPool"] = on.into();
        self
    }
    pub fn age(mut self, seconds: u32) -> Self {
        self.0["metadata"]["creationTimestamp"] = stamp(seconds).into();
        self
    }
    pub fn view(&self) -> GroupView {
        let g: ServiceGroup = serde_json::from_value(self.0.clone()).expect("a valid test group");
        GroupView::from_group(&g)
    }
}

/// A dual-stack local group named `name`: 192.0.2.10-192.0.2.12 and 2001:db8::10-2001:db8::12.
pub fn small(name: &str) -> G {
    group(name)
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
        .v6("2001:db8::/64", "2001:db8::10-2001:db8::12")
}

pub fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(2_000_000_000)
}

/// A per-node Lease renewed `ago` seconds before [`now`], with annotations.
pub fn lease(node: &str, ago: i64, annotations: &[(&str, &str)]) -> NodeLease {
    let renew = now() - SignedDuration::from_secs(ago);
    let l: Lease = serde_json::from_value(json!({
        "metadata": { "name": format!("ferrolb-node-{node}"), "namespace": "ferrolb-system",
                      "annotations": annotations.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>() },
        "spec": { "holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": renew.to_string() }
    }))
    .expect("a valid test Lease");
    NodeLease::from_lease(&l).expect("a per-node Lease")
}

/// The cluster as the decisions see it, updated by each plan as apply would.
pub struct World {
    pub snap: Snapshot,
    pub settings: Settings,
}

impl World {
    pub fn new(groups: &[G], services: &[S]) -> Self {
        World {
            snap: Snapshot {
                services: services.iter().map(|s| Arc::new(s.view())).collect(),
                groups: groups.iter().map(G::view).collect(),
                now: now(),
                ..Default::default()
            },
            settings: Settings::default(),
        }
    }

    /// Replaces or adds a Service (an edit by the user); keeps what the allocator wrote.
    pub fn edit(&mut self, s: S) {
        let mut v = s.view();
        if let Some(old) = self.snap.services.iter_mut().find(|o| o.uid == v.uid) {
            v.ingress = old.ingress.clone();
            v.ingress_exact = old.ingress_exact;
            v.written = old.written.clone();
            *old = Arc::new(v);
        } else {
            self.snap.services.push(Arc::new(v));
        }
    }

    pub fn delete(&mut self, name: &str) {
        self.snap.services.retain(|s| s.key.name != name);
    }

    pub fn set_group(&mut self, g: G) {
        let mut v = g.view();
        if let Some(old) = self.snap.groups.iter_mut().find(|o| o.name == v.name) {
            v.status = old.status.clone();
            v.has_finalizer = old.has_finalizer;
            *old = v;
        } else {
            self.snap.groups.push(v);
        }
    }

    /// One pass, applied; then asserts that a second pass writes nothing.
    pub fn pass(&mut self) -> Plan {
        let p = plan(&self.snap, &self.settings);
        for c in diff(&p, &self.snap) {
            self.write(c);
        }
        let again = plan(&self.snap, &self.settings);
        let changes = diff(&again, &self.snap);
        assert!(
            changes.is_empty(),
            "a second pass still writes: {changes:#?}"
        );
        p
    }

    fn write(&mut self, c: super::Change) {
        use super::Change::*;
        match c {
            SetIngress {
                key,
                ingress,
                annotations,
            } => self.svc_mut(&key, |s| {
                s.ingress = ingress;
                s.ingress_exact = true;
                s.written.extend(annotations);
            }),
            ClearIngress { key } => self.svc_mut(&key, |s| {
                s.ingress.clear();
                s.ingress_exact = true;
            }),
            SetAnnotations { key, annotations } => {
                self.svc_mut(&key, |s| s.written.extend(annotations))
            }
            RemoveAnnotations { key, keys } => {
                self.svc_mut(&key, |s| s.written.retain(|k, _| !keys.contains(k)))
            }
            GroupStatus { name, status } => {
                if let Some(g) = self.snap.groups.iter_mut().find(|g| g.name == name) {
                    g.status = Some(*status);
                }
            }
            GroupFinalizer { name, present } => {
                if let Some(g) = self.snap.groups.iter_mut().find(|g| g.name == name) {
                    g.has_finalizer = present;
                }
            }
        }
    }

    fn svc_mut(&mut self, key: &ObjKey, f: impl FnOnce(&mut SvcView)) {
        if let Some(s) = self.snap.services.iter_mut().find(|s| s.key == *key) {
            f(Arc::make_mut(s));
        }
    }

    pub fn ips(&self, name: &str) -> Vec<String> {
        self.snap
            .services
            .iter()
            .find(|s| s.key.name == name)
            .map(|s| s.ingress.iter().map(IpAddr::to_string).collect())
            .unwrap_or_default()
    }

    pub fn written(&self, name: &str, key: &str) -> Option<String> {
        self.snap
            .services
            .iter()
            .find(|s| s.key.name == name)
            .and_then(|s| s.written.get(key).cloned())
    }

    pub fn condition(&self, group: &str, type_: &str) -> Option<(String, String)> {
        let g = self.snap.groups.iter().find(|g| g.name == group)?;
        let c = g
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status.clone(), c.message.clone()))
    }
}

/// The plan of one Service.
pub fn of<'a>(p: &'a Plan, name: &str) -> &'a SvcPlan {
    p.services
        .iter()
        .find(|s| s.key.name == name)
        .unwrap_or_else(|| panic!("no plan for {name}"))
}

/// Reasons of a Service's problems (standing Events), without `NoCandidate`: most tests run
/// without agents, where every local address has no candidate.
pub fn problems(p: &Plan, name: &str) -> Vec<&'static str> {
    all_problems(p, name)
        .into_iter()
        .filter(|r| *r != ferrolb_api::contracts::reason::NO_CANDIDATE)
        .collect()
}

pub fn all_problems(p: &Plan, name: &str) -> Vec<&'static str> {
    of(p, name)
        .problems
        .iter()
        .map(|n: &Note| n.reason)
        .collect()
}
