//! Soak: the allocator binary under churn (creates, deletes, port, annotation and
//! ipFamilyPolicy edits) while it is SIGKILLed and restarted at random moments. No Service is
//! renumbered, no address is shown by two Services, and none lacks an address while its group
//! has room. `make soak` runs it long (FERROLB_SOAK=1) and writes its figures; `make test` runs
//! it short.

use ferrolb_e2e::rng::XorShift;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_api::ServiceGroup;
use ferrolb_api::annotations as ann;
use ferrolb_api::pool::Family;
use ferrolb_e2e::controlplane::{ControlPlane, TestNamespace};
use ferrolb_e2e::process::{Process, tied};
use ferrolb_e2e::results::{Tier, record};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

const SCOPE_LABEL: &str = "ferrolb.io/test";
const MANAGER: &str = "ferrolb-soak";
/// Churn requests in flight at once.
const IN_FLIGHT: usize = 8;
/// Longest time the allocator stays down after a kill.
const MAX_DOWN_MS: u64 = 1500;

/// How big a run is.
struct Shape {
    services: usize,
    churn: usize,
    kills: usize,
    settle: Duration,
    bound: Duration,
}

fn shape(long: bool) -> Shape {
    if long {
        Shape {
            services: 1000,
            churn: 20000,
            kills: 20,
            settle: Duration::from_secs(180),
            bound: Duration::from_secs(30 * 60),
        }
    } else {
        Shape {
            services: 200,
            churn: 800,
            kills: 3,
            settle: Duration::from_secs(30),
            bound: Duration::from_secs(120),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// What a Service asks for, as one version of it shows.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    primary: Family,
    dual: bool,
    ips: Vec<IpAddr>,
    annotated: bool,
}

impl Seen {
    fn of(svc: &Service) -> Option<(String, Seen)> {
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
        let annotated = svc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(ann::ALLOCATED_BY).map(String::as_str) == Some("ferrolb"));
        Some((
            uid,
            Seen {
                name: svc.metadata.name.clone().unwrap_or_default(),
                primary,
                dual: spec.ip_family_policy.as_deref() != Some("SingleStack"),
                ips,
                annotated,
            },
        ))
    }

    fn wants(&self, f: Family) -> bool {
        f == self.primary || self.dual
    }
}

/// Everything the watch saw: the first address of each (Service uid, family), renumberings,
/// and addresses shown by two Services at once.
#[derive(Clone, Default)]
struct Ledger {
    view: HashMap<String, Seen>,
    relist: Option<HashMap<String, Seen>>,
    holders: HashMap<IpAddr, BTreeSet<String>>,
    first: HashMap<(String, Family), IpAddr>,
    /// Services (by name) once taken from dual- to single-stack: their second family was
    /// released on purpose, so only their first family must keep its address.
    downgraded: HashSet<String>,
    renumbered: BTreeSet<String>,
    /// Two Services that both ask for the family showed one address at the same moment.
    double_use: BTreeSet<String>,
    /// Two Services showed one address while one of them no longer asked for its family (its
    /// status not yet rewritten).
    stale_overlaps: u64,
}

impl Ledger {
    /// Records the addresses `s` shows; flags any that differ from the first one of their family.
    fn remember(&mut self, uid: &str, s: &Seen) {
        for &ip in &s.ips {
            let f = Family::of(ip);
            if !s.wants(f) {
                continue;
            }
            let first = *self.first.entry((uid.to_string(), f)).or_insert(ip);
            let exempt = f != s.primary && self.downgraded.contains(&s.name);
            if first != ip && !exempt {
                self.renumbered
                    .insert(format!("{} {}: {first} -> {ip}", s.name, family_name(f)));
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
            self.double_use
                .insert(format!("{ip} on {}", names.join(" and ")));
        } else {
            self.stale_overlaps += 1;
        }
    }

    fn observe(&mut self, ev: watcher::Event<Service>) {
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

/// The allocator binary scoped to the test's namespace and group; SIGKILLed on drop, its log
/// printed when the test fails.
struct Allocator {
    process: Option<Process>,
    log: PathBuf,
    starts: u32,
}

impl Allocator {
    fn start(&mut self, cp: &ControlPlane, ns: &str) {
        self.starts += 1;
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let out: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the allocator log");
        let mut cmd = tied(env!("CARGO_BIN_EXE_ferrolb-allocator"));
        cmd.arg("--kubeconfig")
            .arg(cp.kubeconfig())
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--leader-elect", "false"])
            .args(["--identity", &format!("soak-{}", self.starts)])
            .args(["--watch-namespace", ns])
            .args(["--group-selector", &format!("{SCOPE_LABEL}={ns}")])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        let label = format!("allocator {}", self.starts);
        self.process = Some(
            Process::spawn(&label, cmd, Some(self.log.clone())).expect("the allocator starts"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    fn running(&self) -> bool {
        self.process.is_some()
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- allocator log {} (last lines) ---\n{}",
                self.log.display(),
                ferrolb_e2e::process::log_tail(&self.log, 60)
            );
        }
    }
}

/// One request of the churn.
enum Op {
    Create {
        name: String,
        primary: Family,
        policy: &'static str,
        port: i32,
    },
    Delete(String),
    Ports(String, i32),
    Touch(String, u64),
    Policy(String, &'static str),
}

const POLICIES: [&str; 3] = ["SingleStack", "PreferDualStack", "RequireDualStack"];

/// The test's own view of the Services it made, to pick targets and policies.
#[derive(Default)]
struct Model {
    alive: BTreeMap<String, &'static str>,
    busy: HashSet<String>,
    /// When each Service's policy last changed.
    policy_changed: HashMap<String, Instant>,
    created: usize,
}

/// A policy flipped back before the allocator wrote the first flip would make the test see a
/// double use it caused itself; flips of one Service are spaced by this.
const POLICY_COOLDOWN: Duration = Duration::from_secs(5);

impl Model {
    fn pick(&self, rng: &mut XorShift) -> Option<String> {
        let free: Vec<&String> = self
            .alive
            .keys()
            .filter(|n| !self.busy.contains(*n))
            .collect();
        (!free.is_empty()).then(|| free[rng.below(free.len())].clone())
    }

    fn create(&mut self, rng: &mut XorShift) -> Op {
        let name = format!("s{}", self.created);
        self.created += 1;
        let primary = if rng.below(100) < 40 {
            Family::V4
        } else {
            Family::V6
        };
        let policy = match rng.below(100) {
            0..60 => POLICIES[0],
            60..85 => POLICIES[1],
            _ => POLICIES[2],
        };
        self.alive.insert(name.clone(), policy);
        Op::Create {
            name,
            primary,
            policy,
            port: 80,
        }
    }

    /// The next churn request (creates keep the population near `cap`).
    fn churn(&mut self, rng: &mut XorShift, cap: usize, ledger: &Mutex<Ledger>) -> Option<Op> {
        let roll = rng.below(100);
        if roll < 20 && self.alive.len() < cap {
            return Some(self.create(rng));
        }
        let name = self.pick(rng)?;
        Some(match roll {
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
                let old = self.alive[&name];
                let others: Vec<&'static str> =
                    POLICIES.into_iter().filter(|p| *p != old).collect();
                let new = others[rng.below(others.len())];
                if new == "SingleStack" {
                    // Before the request: from now on its second family may change.
                    lock(ledger).downgraded.insert(name.clone());
                }
                self.alive.insert(name.clone(), new);
                Op::Policy(name, new)
            }
        })
    }
}

fn service(ns: &str, group: &str, name: &str, primary: Family, policy: &str, port: i32) -> Service {
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
            "ports": [ { "name": "p", "port": port, "protocol": "TCP" } ],
            "selector": { "app": name },
        }
    }))
    .expect("a valid Service")
}

/// Sends one request; `Err` only for failures the churn did not expect.
async fn send(
    api: Api<Service>,
    ns: String,
    group: String,
    op: Op,
) -> (String, Result<(), String>) {
    let pp = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let (name, res) = match op {
        Op::Create {
            name,
            primary,
            policy,
            port,
        } => {
            let svc = service(&ns, &group, &name, primary, policy, port);
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
            let r = api
                .patch(&name, &pp, &Patch::Merge(&body))
                .await
                .map(|_| ());
            (name, r)
        }
        Op::Touch(name, n) => {
            let body = json!({ "metadata": { "annotations": { "soak.ferrolb.io/touch": n.to_string() } } });
            let r = api
                .patch(&name, &pp, &Patch::Merge(&body))
                .await
                .map(|_| ());
            (name, r)
        }
        Op::Policy(name, policy) => {
            let body = json!({ "spec": { "ipFamilyPolicy": policy } });
            let r = api
                .patch(&name, &pp, &Patch::Merge(&body))
                .await
                .map(|_| ());
            (name, r)
        }
    };
    (name, res.map_err(|e| e.to_string()))
}

/// Addresses the group can give out per family, from its status.
async fn capacity(groups: &Api<ServiceGroup>, name: &str) -> BTreeMap<Family, u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cap = groups
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|g| g.status?.capacity);
        if let Some(c) = cap {
            let n = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
            return [(Family::V4, n(&c.ipv4)), (Family::V6, n(&c.ipv6))].into();
        }
        assert!(
            Instant::now() < deadline,
            "the group shows no capacity after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What is wrong with the Services now: addresses renumbered, shown twice, missing while the
/// group has room, shown for a family no longer asked for, or written without the annotation.
fn problems(list: &[Service], ledger: &Ledger, capacity: &BTreeMap<Family, u64>) -> Vec<String> {
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
    let used = |f: Family| users.keys().filter(|ip| Family::of(**ip) == f).count() as u64;
    let room = |f: Family| capacity.get(&f).copied().unwrap_or(0) > used(f);
    for (uid, s) in &seen {
        let mut lacking = Vec::new();
        for f in [Family::V4, Family::V6] {
            let has = s.ips.iter().copied().find(|ip| Family::of(*ip) == f);
            let exempt = f != s.primary && ledger.downgraded.contains(&s.name);
            let first = ledger.first.get(&(uid.clone(), f)).filter(|_| !exempt);
            match (s.wants(f), has) {
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
                    if let Some(first) = first.filter(|f| **f != ip) {
                        out.push(format!("{} shows {ip} but first got {first}", s.name));
                    }
                }
                (false, None) => {}
            }
        }
        if !lacking.is_empty() && lacking.iter().all(|f| room(*f)) {
            let fams: Vec<&str> = lacking.iter().map(|f| family_name(*f)).collect();
            out.push(format!(
                "{} has no {} address though the group has room",
                s.name,
                fams.join("/")
            ));
        }
        if !s.ips.is_empty() && !s.annotated {
            out.push(format!(
                "{} shows an address without {}",
                s.name,
                ann::ALLOCATED_BY
            ));
        }
    }
    out
}

/// Figures of one run.
struct Outcome {
    figures: Value,
    violations: Vec<String>,
}

async fn soak(cp: &ControlPlane, ns: &TestNamespace, shape: &Shape) -> Outcome {
    let client = ns.client();
    let name = ns.name().to_string();
    let api: Api<Service> = Api::namespaced(client.clone(), &name);
    let groups: Api<ServiceGroup> = Api::all(client.clone());
    let group = format!("{name}-g");
    let pools = |cidrs: &[(&str, &str)]| -> Vec<Value> {
        cidrs
            .iter()
            .map(|(s, p)| json!({ "subnet": s, "pool": p }))
            .collect()
    };
    // A virtual group: no agents run here, and a local one would add NoCandidate Events.
    let body = json!({
        "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
        "metadata": { "name": group, "labels": { SCOPE_LABEL: name } },
        "spec": { "virtual": {
            "v4pools": pools(&[("192.0.2.0/24", "192.0.2.0/24"), ("198.51.100.0/24", "198.51.100.0/24"),
                               ("203.0.113.0/24", "203.0.113.0/24")]),
            "v6pools": pools(&[("2001:db8:5::/64", "2001:db8:5::/112")]),
        } },
    });
    groups
        .patch(
            &group,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("the ServiceGroup");

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let synced = Arc::new(tokio::sync::Notify::new());
    let watch = {
        let (ledger, synced, api) = (ledger.clone(), synced.clone(), api.clone());
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(ev) = ev {
                    let done = matches!(ev, watcher::Event::InitDone);
                    lock(&ledger).observe(ev);
                    if done {
                        synced.notify_one();
                    }
                }
            }
        })
    };
    synced.notified().await;

    let mut allocator = Allocator {
        process: None,
        log: std::env::temp_dir().join(format!("ferrolb-allocator-{name}.log")),
        starts: 0,
    };
    allocator.start(cp, &name);
    let capacity = capacity(&groups, &group).await;

    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let total = shape.services + shape.churn;
    let mut kill_at: BTreeSet<usize> = BTreeSet::new();
    while kill_at.len() < shape.kills {
        kill_at.insert(shape.services / 4 + rng.below(total - shape.services / 4));
    }
    let mut model = Model::default();
    let mut inflight = FuturesUnordered::new();
    let mut errors: Vec<String> = Vec::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut sent, mut kills) = (0usize, 0usize);
    let mut restart_at: Option<Instant> = None;
    let mut down = Duration::ZERO;
    let started = Instant::now();
    for i in 0..total {
        if restart_at.is_some_and(|at| Instant::now() >= at) {
            allocator.start(cp, &name);
            restart_at = None;
        }
        if kill_at.contains(&i) {
            if !allocator.running() {
                allocator.start(cp, &name);
            }
            allocator.kill();
            kills += 1;
            let pause = Duration::from_millis(rng.below(MAX_DOWN_MS as usize) as u64);
            down += pause;
            restart_at = Some(Instant::now() + pause);
        }
        let op = if i < shape.services {
            Some(model.create(&mut rng))
        } else {
            model.churn(&mut rng, shape.services, &ledger)
        };
        let Some(op) = op else { continue };
        let (kind, target) = match &op {
            Op::Create { name, .. } => ("create", name),
            Op::Delete(name) => ("delete", name),
            Op::Ports(name, _) => ("ports", name),
            Op::Touch(name, _) => ("annotation", name),
            Op::Policy(name, p) if *p == "SingleStack" => ("to_single_stack", name),
            Op::Policy(name, _) => ("to_dual_stack", name),
        };
        *by_kind.entry(kind).or_default() += 1;
        model.busy.insert(target.clone());
        inflight.push(send(api.clone(), name.clone(), group.clone(), op));
        sent += 1;
        while inflight.len() >= IN_FLIGHT {
            if let Some((done, r)) = inflight.next().await {
                model.busy.remove(&done);
                if let Err(e) = r {
                    errors.push(format!("{done}: {e}"));
                }
            }
        }
    }
    while let Some((done, r)) = inflight.next().await {
        model.busy.remove(&done);
        if let Err(e) = r {
            errors.push(format!("{done}: {e}"));
        }
    }
    if let Some(at) = restart_at {
        tokio::time::sleep_until(at.into()).await;
        allocator.start(cp, &name);
    }
    let churned = started.elapsed();

    // Settle: the allocator catches up with the last changes.
    let deadline = Instant::now() + shape.settle;
    let mut last: Vec<String>;
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list Services")
            .items;
        last = problems(&list, &lock(&ledger), &capacity);
        if last.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = started.elapsed() - churned;
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items;
    allocator.kill();
    watch.abort();

    let ledger = lock(&ledger).clone();
    let mut violations: Vec<String> = Vec::new();
    violations.extend(last.iter().map(|p| format!("after settling: {p}")));
    violations.extend(ledger.renumbered.iter().map(|r| format!("renumbered: {r}")));
    violations.extend(ledger.double_use.iter().map(|d| format!("double use: {d}")));
    violations.extend(errors.iter().map(|e| format!("unexpected API error: {e}")));
    let addressed = list
        .iter()
        .filter_map(Seen::of)
        .filter(|(_, s)| !s.ips.is_empty())
        .count();
    let dual = list
        .iter()
        .filter_map(Seen::of)
        .filter(|(_, s)| s.dual)
        .count();
    let figures = json!({
        "services": shape.services,
        "created": model.created,
        "operations": sent,
        "operations_by_kind": by_kind,
        "kills": kills,
        "allocator_starts": allocator.starts,
        "allocator_down_s": (down.as_secs_f64() * 10.0).round() / 10.0,
        "churn_s": (churned.as_secs_f64() * 10.0).round() / 10.0,
        "settle_s": (settled.as_secs_f64() * 10.0).round() / 10.0,
        "duration_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "services_at_end": list.len(),
        "addressed_at_end": addressed,
        "dual_stack_at_end": dual,
        "capacity": { "ipv4": capacity[&Family::V4], "ipv6": capacity[&Family::V6] },
        "stale_overlaps": ledger.stale_overlaps,
        "violations": violations.len(),
        "etcd": "tmpfs, --unsafe-no-fsync",
        "method": format!("{} Services created, then {} churn requests ({IN_FLIGHT} in flight: \
            creates, deletes, port, annotation and ipFamilyPolicy edits) while the allocator is \
            SIGKILLed at {} seeded random moments and restarted after 0-{MAX_DOWN_MS} ms; then \
            settled. Checked: first address per (Service uid, family) never changes, no address \
            on two Services asking for its family (watch) or on two Services (end), none \
            without an address while its group has room", shape.services, shape.churn, shape.kills),
    });
    // Best effort: the control plane goes with the test binary anyway.
    let unpin = json!({ "metadata": { "finalizers": null } });
    let _ = groups
        .patch(&group, &PatchParams::default(), &Patch::Merge(&unpin))
        .await;
    let _ = groups.delete(&group, &DeleteParams::default()).await;
    Outcome {
        figures,
        violations,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_allocator_keeps_addresses_under_churn_and_kills() {
    let long = std::env::var_os("FERROLB_SOAK").is_some();
    let shape = shape(long);
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let ns = cp
        .namespace("soak-allocator")
        .await
        .expect("a test namespace");
    let out = tokio::time::timeout(shape.bound, soak(cp, &ns, &shape))
        .await
        .unwrap_or_else(|_| panic!("the allocator soak did not finish within {:?}", shape.bound));
    println!("allocator soak: {}", out.figures);
    assert!(
        out.violations.is_empty(),
        "{} violations:\n{}",
        out.violations.len(),
        out.violations.join("\n")
    );
    if long {
        let path = record(Tier::Soak, "allocator", out.figures).expect("soak results written");
        println!("written to {}", path.display());
    }
}
