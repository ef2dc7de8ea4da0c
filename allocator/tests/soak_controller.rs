//! Soak: two allocator replicas with leader election on, under Service churn over three
//! ServiceGroups (IPv4-only, IPv6-only, dual-stack) whose pools are grown, extended and shrunk
//! while the leader is SIGKILLed or hung (SIGSTOP past the lease duration, then SIGCONT) at
//! random moments. No Service is renumbered, no address is shown by two Services, the addresses
//! held before the pool edits are kept (outside a shrunken pool too, reported as
//! OutOfPoolAllocations), and once settled every Service has one address of each family it asks
//! for where its group has room. `make soak` runs it long (FERROLB_SOAK=1) and writes its
//! figures; `make test` runs it short.

#[path = "soak_controller/checks.rs"]
mod checks;
#[path = "soak_controller/churn.rs"]
mod churn;
#[path = "soak_controller/faults.rs"]
mod faults;
#[path = "soak_controller/groups.rs"]
mod groups;
#[path = "soak_controller/ledger.rs"]
mod ledger;
#[path = "soak_controller/replicas.rs"]
mod replicas;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_api::ServiceGroup;
use ferrolb_api::pool::Family;
use ferrolb_e2e::controlplane::{ControlPlane, TestNamespace};
use ferrolb_e2e::results::{Tier, record};
use ferrolb_e2e::rng::XorShift;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use churn::{Model, send};
use faults::{Faults, Step};
use ledger::Ledger;
use replicas::{Holders, Replicas};

const SCOPE_LABEL: &str = "ferrolb.io/test";
const MANAGER: &str = "ferrolb-soak";
/// Churn requests in flight at once.
const IN_FLIGHT: usize = 8;

/// How big a run is.
struct Shape {
    long: bool,
    services: usize,
    /// Churn requests per second.
    rate: u32,
    kills: usize,
    hangs: usize,
    /// Churn after the last fault and edit.
    tail: Duration,
    settle: Duration,
    bound: Duration,
}

fn shape(long: bool) -> Shape {
    if long {
        Shape {
            long,
            services: 1000,
            rate: 50,
            kills: 10,
            hangs: 6,
            tail: Duration::from_secs(10),
            settle: Duration::from_secs(180),
            bound: Duration::from_secs(30 * 60),
        }
    } else {
        Shape {
            long,
            services: 150,
            rate: 40,
            kills: 1,
            hangs: 1,
            tail: Duration::from_secs(2),
            settle: Duration::from_secs(30),
            bound: Duration::from_secs(150),
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

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Figures and violations of one run.
struct Outcome {
    figures: Value,
    violations: Vec<String>,
}

async fn soak(cp: &'static ControlPlane, ns: &TestNamespace, shape: &Shape) -> Outcome {
    let client = ns.client();
    let name = ns.name().to_string();
    let api: Api<Service> = Api::namespaced(client.clone(), &name);
    let groups_api: Api<ServiceGroup> = Api::all(client.clone());
    let mut groups = groups::initial(&name, shape.long);
    for g in &groups {
        g.apply(&groups_api, &name).await;
    }
    let edits = groups::edits(shape.long);

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
    let (holders, tracker) = Holders::track(client.clone(), &name);
    let mut replicas = Replicas::new(cp, &name);
    replicas.start();
    replicas.start();

    let started = Instant::now();
    let started_at = k8s_openapi::jiff::Timestamp::now();
    lock(&ledger).epoch = Some(started);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut model = Model::default();
    let mut errors: Vec<String> = Vec::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sent = 0usize;
    // The first Services, as fast as the API server takes them; then they get addresses.
    {
        let mut inflight = FuturesUnordered::new();
        for _ in 0..shape.services {
            let op = model.create(&mut rng, &groups);
            *by_kind.entry("create").or_default() += 1;
            inflight.push(send(api.clone(), name.clone(), op));
            sent += 1;
            while inflight.len() >= IN_FLIGHT {
                if let Some((done, Err(e))) = inflight.next().await {
                    errors.push(format!("{done}: {e}"));
                }
            }
        }
        while let Some((done, r)) = inflight.next().await {
            if let Err(e) = r {
                errors.push(format!("{done}: {e}"));
            }
        }
    }
    model.keep = model
        .alive
        .keys()
        .take(shape.services / 3)
        .cloned()
        .collect();
    let (_, initial) =
        checks::settle(&api, &groups_api, &groups, &ledger, Duration::from_secs(30)).await;
    let populated = started.elapsed();

    // Churn, paced, until the schedule of edits and faults has run.
    let steps = faults::schedule(shape.kills, shape.hangs, edits.len(), &mut rng);
    let done = AtomicBool::new(false);
    let churn_groups = groups.clone();
    let churn = async {
        let period = Duration::from_secs(1) / shape.rate;
        let mut next = Instant::now();
        let mut inflight = FuturesUnordered::new();
        let mut crng = XorShift(0x9e37_79b9_7f4a_7c15);
        loop {
            let stopping = done.load(Ordering::SeqCst);
            if stopping && inflight.is_empty() {
                break;
            }
            if !stopping && inflight.len() < IN_FLIGHT && Instant::now() >= next {
                next = next.max(Instant::now() - period) + period;
                if let Some(op) = model.churn(&mut crng, shape.services, &churn_groups, &ledger) {
                    let (kind, target) = op.describe();
                    *by_kind.entry(kind).or_default() += 1;
                    model.busy.insert(target.clone());
                    inflight.push(send(api.clone(), name.clone(), op));
                    sent += 1;
                }
                continue;
            }
            let wait = tokio::time::sleep_until(next.max(Instant::now()).into());
            tokio::select! {
                Some((target, r)) = inflight.next(), if !inflight.is_empty() => {
                    model.busy.remove(&target);
                    if let Err(e) = r {
                        errors.push(format!("{target}: {e}"));
                    }
                }
                _ = wait => {}
            }
        }
    };
    let mut faults = Faults::new(&mut replicas, &holders, &ledger, &mut rng, started);
    let mut before: Option<HashMap<(String, Family), IpAddr>> = None;
    let mut acks = Vec::new();
    let mut edit_log: Vec<Value> = Vec::new();
    let mut edit_violations: Vec<String> = Vec::new();
    let scheduler = async {
        // When the last edit was made, if no fault has come since.
        let mut burst: Option<Instant> = None;
        for step in &steps {
            match step {
                Step::Edit(k) => {
                    faults.pause(200, 1200).await;
                    if before.is_none() {
                        before = Some(lock(&ledger).first.clone());
                    }
                    let e = &edits[*k];
                    e.apply_to(&mut groups);
                    let g = &groups[e.group];
                    let edited = Instant::now();
                    let generation = g.apply(&groups_api, &name).await;
                    let at = started.elapsed();
                    let mut outside = 0;
                    if e.shrinks {
                        let list = api
                            .list(&ListParams::default())
                            .await
                            .expect("list Services")
                            .items;
                        outside = list
                            .iter()
                            .filter_map(ledger::Seen::of)
                            .filter(|(_, s)| s.group == g.name)
                            .filter_map(|(_, s)| s.ip(e.family))
                            .filter(|ip| !g.contains(*ip))
                            .count();
                        if outside == 0 {
                            edit_violations.push(format!(
                                "\"{}\" left no allocated address outside the pool: the soak did not test keeping them",
                                e.what
                            ));
                        }
                        acks.push((
                            e.what,
                            tokio::spawn(checks::acknowledged(
                                groups_api.clone(),
                                api.clone(),
                                g.name.clone(),
                                generation,
                            )),
                        ));
                    }
                    edit_log.push(json!({ "edit": e.what, "at_s": secs(at),
                                          "left_outside_pool": outside }));
                    burst = Some(edited);
                }
                Step::Fault(kind) => {
                    match burst.take() {
                        Some(edited) => faults.in_the_burst(edited).await,
                        None => faults.pause(500, 3000).await,
                    }
                    faults.fault(*kind).await;
                }
            }
        }
        tokio::time::sleep(shape.tail).await;
        faults.check_exits();
        done.store(true, Ordering::SeqCst);
    };
    tokio::join!(churn, scheduler);
    let churned = started.elapsed();
    let fault_figures = faults.figures();
    let mut violations = faults.violations;

    // Settle: the leader catches up with the last changes.
    let (list, last) = checks::settle(&api, &groups_api, &groups, &ledger, shape.settle).await;
    let settled = started.elapsed() - churned;
    let ledger = lock(&ledger).clone();
    let (before_checked, changed) = match &before {
        Some(b) => checks::changed_since(b, &list, &ledger),
        None => (0, vec!["no pool edit was made".to_string()]),
    };
    let mut held_at_ack = HashSet::new();
    let mut ack_s = Vec::new();
    for (what, mut task) in acks {
        // Settled means every group's status is current, so this is quick unless it is not.
        let acked = tokio::time::timeout(Duration::from_secs(30), &mut task).await;
        task.abort();
        match acked {
            Ok(Ok((took, held))) => {
                ack_s.push(secs(took));
                held_at_ack.extend(held);
            }
            _ => violations.push(format!(
                "the allocator never wrote the group status of \"{what}\""
            )),
        }
    }
    let outside = checks::outside_after_edit(&list, &groups, &held_at_ack);
    let leader_changes = holders.changes();
    let starts = replicas.starts;
    drop(replicas);
    tracker.abort();
    watch.abort();

    violations.extend(
        initial
            .iter()
            .map(|p| format!("after the first Services: {p}")),
    );
    violations.extend(edit_violations);
    violations.extend(last.iter().map(|p| format!("after settling: {p}")));
    violations.extend(changed);
    violations.extend(outside);
    violations.extend(ledger.renumbered.iter().map(|r| format!("renumbered: {r}")));
    violations.extend(ledger.double_use.iter().map(|d| format!("double use: {d}")));
    violations.extend(errors.iter().map(|e| format!("unexpected API error: {e}")));
    let seen: Vec<ledger::Seen> = list
        .iter()
        .filter_map(ledger::Seen::of)
        .map(|(_, s)| s)
        .collect();
    let per_group: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mine: Vec<&ledger::Seen> = seen.iter().filter(|s| s.group == g.name).collect();
            let addressed = mine.iter().filter(|s| !s.ips.is_empty()).count();
            let outside = mine
                .iter()
                .flat_map(|s| &s.ips)
                .filter(|ip| !g.contains(**ip))
                .count();
            json!({ "group": g.name, "services": mine.len(), "addressed": addressed,
                    "outside_pool": outside, "v4pools": g.v4, "v6pools": g.v6 })
        })
        .collect();
    let mut figures = json!({
        "started_at": started_at.to_string(),
        "services": shape.services,
        "created": model.created,
        "operations": sent,
        "operations_by_kind": by_kind,
        "replicas": 2,
        "allocator_starts": starts,
        "leader_changes": leader_changes,
        "pool_edits": edit_log,
        "pool_edit_acknowledged_s": ack_s,
        "addresses_kept_from_before_the_edits": before_checked,
        "populate_s": secs(populated),
        "churn_s": secs(churned),
        "settle_s": secs(settled),
        "duration_s": secs(started.elapsed()),
        "services_at_end": list.len(),
        "groups_at_end": per_group,
        "stale_overlaps": ledger.stale_overlaps,
        "violations": violations.len(),
        "etcd": "tmpfs, --unsafe-no-fsync",
        "method": format!("2 allocator replicas (leader election on; each start a new identity) \
            serve 3 virtual ServiceGroups (IPv4-only ranges, IPv6-only CIDRs, dual-stack); {} \
            Services created over them, then churn at {}/s ({IN_FLIGHT} in flight: creates, \
            deletes, port, annotation and ipFamilyPolicy edits) while the pools are edited \
            (grown, extended, shrunk below allocated addresses) and the leader is SIGKILLed \
            {} times (restarted after 0-{} ms) and SIGSTOPped {} times (past the lease \
            duration and until the next leader allocated, then SIGCONT), at seeded random \
            moments (a fault right after an edit strikes 0-100 ms after the first allocation the \
            edit allowed, amid the burst of writes it starts); then \
            settled. Checked: first address per (Service uid, family) never changes, no \
            address on two Services asking for its family (watch) or on two Services (end), \
            addresses held before the edits kept (also outside a shrunken pool, with \
            OutOfPoolAllocations true and naming them), nothing given out from outside the \
            pools once the edit was acknowledged, a woken hung leader exits without writing, \
            one address per family asked for where the group has room", shape.services,
            shape.rate, shape.kills, faults::MAX_DOWN_MS, shape.hangs),
    });
    if let (Value::Object(f), Value::Object(extra)) = (&mut figures, fault_figures) {
        f.extend(extra);
    }
    // Best effort: the control plane goes with the test binary anyway.
    let unpin = json!({ "metadata": { "finalizers": null } });
    for g in &groups {
        let _ = groups_api
            .patch(&g.name, &PatchParams::default(), &Patch::Merge(&unpin))
            .await;
        let _ = groups_api.delete(&g.name, &DeleteParams::default()).await;
    }
    Outcome {
        figures,
        violations,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_two_allocators_keep_addresses_under_churn_pool_edits_kills_and_hangs() {
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
