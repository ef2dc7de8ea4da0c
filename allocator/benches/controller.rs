//! Benchmark of the allocator binary (release build) against a private control plane: a
//! 1,000-Service burst (time until all have an address, per-Service latency, CPU, peak RSS), a
//! 10,000-Service burst (sustained allocations per second, next to the API server's plain
//! create rate) and restart-to-ready with 10,000 allocated. Figures are printed and written to
//! `target/bench/results.json` under `allocator`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;
use ferrolb_e2e::controlplane::{BITMAP_CLUSTER_IP_ALLOCATOR, ControlPlane};
use ferrolb_e2e::process::{Process, own_cpu_seconds, tied};
use ferrolb_e2e::results::{Tier, record};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Create requests in flight at once.
const CONCURRENCY: usize = 32;
/// The whole run gives up after this.
const BUDGET: Duration = Duration::from_secs(14 * 60);
/// Kept back from the 10k burst for the restart measurement and the plain creates after it.
const RESTART_RESERVE: Duration = Duration::from_secs(60);
const BACKLOG_RESERVE: Duration = Duration::from_secs(240);
const ETCD: &str = "tmpfs, --unsafe-no-fsync";
const LABEL: &str = "ferrolb.io/bench";
const SMALL: usize = 1_000;
const LARGE: usize = 10_000;
/// The 10k burst is CPU-bound on the API server, whose CPU time for the same work varies by up
/// to a fifth between runs on this machine: it runs this many times, each on a fresh control
/// plane, and the median run is the figure (all rates are kept).
const LARGE_RUNS: usize = 3;
/// Targets from the design brief.
const SMALL_TARGET_S: f64 = 5.0;
const LARGE_TARGET_PER_S: f64 = 300.0;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The allocator binary, SIGKILLed on drop.
struct Allocator {
    process: Process,
    metrics: u16,
}

impl Allocator {
    /// Starts the allocator serving one namespace and the groups labelled for the phase.
    fn start(cp: &ControlPlane, ns: &str, phase: &str) -> anyhow::Result<Allocator> {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = cp.dir().join(format!("allocator-{phase}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = tied(env!("CARGO_BIN_EXE_ferrolb-allocator"));
        cmd.arg("--kubeconfig")
            .arg(cp.kubeconfig())
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--leader-elect", "false"])
            .args(["--watch-namespace", ns])
            .args(["--group-selector", &format!("{LABEL}={phase}")])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(out.try_clone()?)
            .stderr(out);
        let process = Process::spawn(&format!("allocator {phase}"), cmd, Some(log))?;
        Ok(Allocator { process, metrics })
    }

    async fn get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics)).await else {
            return String::new();
        };
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    async fn ready(&self) -> bool {
        self.get("/readyz").await.starts_with("HTTP/1.1 200")
    }

    /// (passes, mean seconds per pass) from the reconcile histogram.
    async fn passes(&self) -> (u64, f64) {
        let text = self.get("/metrics").await;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let count = value("ferrolb_allocator_reconcile_duration_seconds_count");
        let sum = value("ferrolb_allocator_reconcile_duration_seconds_sum");
        (count as u64, if count > 0.0 { sum / count } else { 0.0 })
    }

    /// [`Allocator::passes`] once the first pass has finished (it ends with the group's status,
    /// after the Services a measurement waits for), for at most 5 s.
    async fn passes_after_first(&self) -> (u64, f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let p = self.passes().await;
            if p.0 > 0 || Instant::now() > deadline {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn exited(&mut self) -> Option<String> {
        self.process.exited()
    }
}

/// When each Service (by name) was asked for, and first seen with an address, with the
/// annotation and with its `AddressAllocated` Event.
#[derive(Default)]
struct Track {
    asked: HashMap<String, Instant>,
    addressed: HashMap<String, (Instant, String)>,
    annotated: HashMap<String, Instant>,
    evented: HashMap<String, Instant>,
}

impl Track {
    /// When the Service had all three, if it has.
    fn complete(&self, name: &str) -> Option<Instant> {
        let a = self.addressed.get(name)?.0;
        Some(
            a.max(*self.annotated.get(name)?)
                .max(*self.evented.get(name)?),
        )
    }
}

/// Watches the namespace's Services and Events into `track` until aborted.
async fn watch(client: &Client, ns: &str, track: Arc<Mutex<Track>>) -> Vec<JoinHandle<()>> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let (tx, mut synced) = tokio::sync::mpsc::channel::<()>(2);
    let t = track.clone();
    let tx2 = tx.clone();
    let svc_task = tokio::spawn(async move {
        let s = watcher(services, watcher::Config::default()).default_backoff();
        let mut s = std::pin::pin!(s);
        while let Some(ev) = s.next().await {
            let svc = match ev {
                Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) => svc,
                Ok(watcher::Event::InitDone) => {
                    let _ = tx.send(()).await;
                    continue;
                }
                _ => continue,
            };
            let now = Instant::now();
            let name = svc.meta().name.clone().unwrap_or_default();
            let ip = svc.status.as_ref().and_then(|s| {
                s.load_balancer
                    .as_ref()?
                    .ingress
                    .as_ref()?
                    .first()?
                    .ip
                    .clone()
            });
            let by = svc
                .meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(ann::ALLOCATED_BY).cloned());
            let mut t = lock(&t);
            if let Some(ip) = ip {
                t.addressed.entry(name.clone()).or_insert((now, ip));
            }
            if by.is_some() {
                t.annotated.entry(name).or_insert(now);
            }
        }
    });
    let ev_task = tokio::spawn(async move {
        let s = watcher(events, watcher::Config::default()).default_backoff();
        let mut s = std::pin::pin!(s);
        while let Some(ev) = s.next().await {
            let e = match ev {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
                Ok(watcher::Event::InitDone) => {
                    let _ = tx2.send(()).await;
                    continue;
                }
                _ => continue,
            };
            if e.reason.as_deref() == Some(reason::ADDRESS_ALLOCATED)
                && let Some(name) = e.regarding.and_then(|r| r.name)
            {
                lock(&track)
                    .evented
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    });
    for _ in 0..2 {
        synced.recv().await;
    }
    vec![svc_task, ev_task]
}

fn service(name: &str, group: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "annotations": { ann::SERVICE_GROUP: group } },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack",
            // 10,000 Services would exhaust the node-port range.
            "allocateLoadBalancerNodePorts": false,
            "ports": [ { "port": 80, "protocol": "TCP" } ],
            "selector": { "app": name },
        }
    }))
    .expect("a valid Service")
}

/// Creates up to `n` Services `<prefix>-<i>`, CONCURRENCY in flight, starting none after
/// `deadline`; returns when the first request started, how long all took and how many were
/// created. Each request's start goes into `track`.
async fn create(
    api: &Api<Service>,
    prefix: &str,
    n: usize,
    group: &str,
    track: &Mutex<Track>,
    deadline: Instant,
) -> anyhow::Result<(Instant, Duration, usize)> {
    let first = Instant::now();
    let results: Vec<Result<(), kube::Error>> = stream::iter(0..n)
        .take_while(|_| std::future::ready(Instant::now() < deadline))
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            let svc = service(&name, group);
            lock(track).asked.insert(name, Instant::now());
            api.create(&PostParams::default(), &svc).await.map(|_| ())
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = first.elapsed();
    let created = results.len();
    if let Some(e) = results.into_iter().find_map(Result::err) {
        bail!("creating Services failed: {e}");
    }
    Ok((first, took, created))
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// A virtual group (no agents run here, and a local one would add NoCandidate Events) with an
/// IPv6 /112: room for every Service of a phase.
async fn group(client: &Client, phase: &str, pool: &str) -> anyhow::Result<String> {
    let name = format!("bench-{phase}");
    let body = json!({
        "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
        "metadata": { "name": name, "labels": { LABEL: phase } },
        "spec": { "virtual": { "v6pools": [ { "subnet": format!("{pool}/64"), "pool": format!("{pool}/112") } ] } },
    });
    let api: Api<ferrolb_api::ServiceGroup> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("ferrolb-bench").force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(name)
}

/// Starts the allocator for a phase and waits until it is ready and has written its group's
/// status (its first pass is done), so the burst measures allocation, not start-up.
async fn idle_allocator(
    cp: &ControlPlane,
    client: &Client,
    ns: &str,
    phase: &str,
    group: &str,
) -> anyhow::Result<Allocator> {
    let mut a = Allocator::start(cp, ns, phase)?;
    let api: Api<ferrolb_api::ServiceGroup> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dead) = a.exited() {
            bail!("{dead}");
        }
        let has_status = api
            .get_opt(group)
            .await?
            .is_some_and(|g| g.status.is_some());
        if has_status && a.ready().await {
            return Ok(a);
        }
        if Instant::now() > deadline {
            bail!("the allocator for {phase} was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `done(track)` or the deadline; false when the deadline came first.
async fn wait(track: &Mutex<Track>, deadline: Instant, done: impl Fn(&Track) -> bool) -> bool {
    loop {
        if done(&lock(track)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Creation → first address, in ms, sorted.
fn latencies(t: &Track, prefix: &str) -> Vec<f64> {
    let mut v: Vec<f64> = t
        .asked
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .filter_map(|(n, asked)| {
            Some(t.addressed.get(n)?.0.duration_since(*asked).as_secs_f64() * 1e3)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

impl Allocator {
    fn kill(&mut self) {
        self.process.kill();
    }
}

/// Where the CPU time of a measurement went: the control plane's processes, this bench (its
/// creates and watches) and the allocator, from [`CpuSplit::start`] on.
struct CpuSplit {
    control_plane: Vec<(String, f64)>,
    bench: f64,
}

impl CpuSplit {
    fn start(cp: &ControlPlane) -> CpuSplit {
        CpuSplit {
            control_plane: cp.cpu_seconds(),
            bench: own_cpu_seconds(),
        }
    }

    /// CPU seconds by process since the start; `allocator_s` is the allocator's own.
    fn json(&self, cp: &ControlPlane, allocator_s: f64) -> Value {
        let mut out = serde_json::Map::new();
        for (label, now) in cp.cpu_seconds() {
            let before = self
                .control_plane
                .iter()
                .find(|(l, _)| *l == label)
                .map_or(0.0, |(_, s)| *s);
            out.insert(label, round(now - before, 1).into());
        }
        out.insert(
            "bench client".into(),
            round(own_cpu_seconds() - self.bench, 1).into(),
        );
        out.insert("allocator".into(), round(allocator_s, 1).into());
        Value::Object(out)
    }
}

/// Figures of a burst: how long creating took, when every Service had its address, and when
/// every Service was complete (status, annotation and Event).
struct Burst {
    n: usize,
    first: Instant,
    create_s: f64,
    addressed: usize,
    last_addressed: Option<Instant>,
    complete: usize,
    last_complete: Option<Instant>,
    distinct_addresses: usize,
    latencies_ms: Vec<f64>,
    cpu_s: f64,
    peak_rss_mib: f64,
    passes: u64,
    mean_pass_ms: f64,
    cpu_split: Value,
}

impl Burst {
    fn all_addressed_s(&self) -> Option<f64> {
        (self.addressed == self.n)
            .then(|| {
                self.last_addressed
                    .map(|l| l.duration_since(self.first).as_secs_f64())
            })
            .flatten()
    }

    fn json(&self) -> Value {
        let l = &self.latencies_ms;
        json!({
            "services": self.n,
            "create_requests_s": round(self.create_s, 2),
            "addressed": self.addressed,
            "complete": self.complete,
            "distinct_addresses": self.distinct_addresses,
            "all_addressed_s": self.all_addressed_s().map(|s| round(s, 2)),
            "latency_ms": { "p50": round(percentile(l, 50.0), 1), "p99": round(percentile(l, 99.0), 1),
                            "max": round(percentile(l, 100.0), 1) },
            "allocator_cpu_s": round(self.cpu_s, 2),
            "allocator_peak_rss_mib": round(self.peak_rss_mib, 1),
            "allocator_passes": self.passes,
            "allocator_mean_pass_ms": round(self.mean_pass_ms, 1),
            "cpu_s_by_process": self.cpu_split,
        })
    }
}

/// Creates `n` Services at once in `ns` and waits (until `deadline`) for every one to be
/// complete; the allocator must be running and idle.
async fn burst(
    cp: &ControlPlane,
    ns: &str,
    group: &str,
    n: usize,
    allocator: &Allocator,
    track: &Arc<Mutex<Track>>,
    deadline: Instant,
) -> anyhow::Result<Burst> {
    let api: Api<Service> = Api::namespaced(cp.client().await?, ns);
    let cpu0 = allocator.process.cpu_seconds();
    let split = CpuSplit::start(cp);
    let (first, took, _) = create(&api, "s", n, group, track, deadline).await?;
    let complete = |t: &Track| t.asked.keys().filter(|k| t.complete(k).is_some()).count();
    wait(track, deadline, |t| complete(t) >= n).await;
    let cpu_s = allocator.process.cpu_seconds() - cpu0;
    let cpu_split = split.json(cp, cpu_s);
    let (passes, mean_pass) = allocator.passes().await;
    let t = lock(track);
    let ours = |k: &&String| k.starts_with("s-");
    Ok(Burst {
        n,
        first,
        create_s: took.as_secs_f64(),
        addressed: t.addressed.keys().filter(ours).count(),
        last_addressed: t
            .addressed
            .iter()
            .filter(|(k, _)| ours(k))
            .map(|(_, v)| v.0)
            .max(),
        complete: complete(&t),
        last_complete: t.asked.keys().filter_map(|k| t.complete(k)).max(),
        distinct_addresses: t
            .addressed
            .values()
            .map(|v| &v.1)
            .collect::<HashSet<_>>()
            .len(),
        latencies_ms: latencies(&t, "s-"),
        cpu_s,
        peak_rss_mib: allocator.process.status_mib("VmHWM:"),
        passes,
        mean_pass_ms: mean_pass * 1e3,
        cpu_split,
    })
}

/// Services of `ns` with an `AddressAllocated` Event, by a list at the end.
async fn with_event(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await?;
    let names: HashSet<String> = list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason::ADDRESS_ALLOCATED))
        .filter_map(|e| e.regarding?.name)
        .collect();
    Ok(names.len())
}

fn print_burst(title: &str, b: &Burst) {
    let l = &b.latencies_ms;
    println!("  {title}:");
    println!(
        "    create requests: {:.2} s ({:.0}/s); addressed {}/{}, complete {}/{}, distinct addresses {}",
        b.create_s,
        b.n as f64 / b.create_s,
        b.addressed,
        b.n,
        b.complete,
        b.n,
        b.distinct_addresses
    );
    match b.all_addressed_s() {
        Some(s) => println!("    first create -> all addressed: {s:.2} s"),
        None => println!("    first create -> all addressed: NOT REACHED"),
    }
    println!(
        "    creation -> address latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(l, 50.0),
        percentile(l, 99.0),
        percentile(l, 100.0)
    );
    println!(
        "    allocator: {:.2} CPU s, peak RSS {:.1} MiB, {} passes of {:.1} ms mean",
        b.cpu_s, b.peak_rss_mib, b.passes, b.mean_pass_ms
    );
    println!("    CPU s by process: {}", b.cpu_split);
}

async fn small(cp: &ControlPlane, client: &Client, deadline: Instant) -> anyhow::Result<Value> {
    let ns = "burst-1k";
    namespace(client, ns).await?;
    let group = group(client, "1k", "2001:db8:a::").await?;
    let mut a = idle_allocator(cp, client, ns, "1k", &group).await?;
    let track = Arc::new(Mutex::new(Track::default()));
    let tasks = watch(client, ns, track.clone()).await;
    let limit = deadline.min(Instant::now() + Duration::from_secs(120));
    let b = burst(cp, ns, &group, SMALL, &a, &track, limit).await?;
    tasks.iter().for_each(JoinHandle::abort);
    a.kill();
    print_burst(&format!("{SMALL} Services at once"), &b);
    let met = b.all_addressed_s().is_some_and(|s| s < SMALL_TARGET_S);
    println!(
        "    target: all addressed in < {SMALL_TARGET_S} s: {}",
        if met { "met" } else { "NOT met" }
    );
    let mut v = b.json();
    v["target_all_addressed_s"] = json!(SMALL_TARGET_S);
    v["target_met"] = json!(met);
    Ok(v)
}

/// The allocator alone: `n` Services created while it is stopped, then it starts; how fast
/// it works off the backlog with no creates competing for the API server.
async fn backlog(
    cp: &ControlPlane,
    client: &Client,
    deadline: Instant,
    n: usize,
    phase: &str,
    pool: &str,
) -> anyhow::Result<Value> {
    let ns = format!("backlog-{phase}");
    let ns = ns.as_str();
    namespace(client, ns).await?;
    let group = group(client, &format!("backlog-{phase}"), pool).await?;
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let track = Arc::new(Mutex::new(Track::default()));
    let (_, took, created) = create(&api, "s", n, &group, &track, deadline).await?;
    let tasks = watch(client, ns, track.clone()).await;
    let started = Instant::now();
    let split = CpuSplit::start(cp);
    let mut a = Allocator::start(cp, ns, &format!("backlog-{phase}"))?;
    let complete = |t: &Track| t.asked.keys().filter(|k| t.complete(k).is_some()).count();
    let limit = deadline.min(Instant::now() + Duration::from_secs(180));
    wait(&track, limit, |t| complete(t) >= created).await;
    let (passes, mean_pass) = a.passes_after_first().await;
    let (cpu_s, rss) = (a.process.cpu_seconds(), a.process.status_mib("VmHWM:"));
    let cpu_split = split.json(cp, cpu_s);
    tasks.iter().for_each(JoinHandle::abort);
    a.kill();
    let t = lock(&track);
    let done = complete(&t);
    let last = t.asked.keys().filter_map(|k| t.complete(k)).max();
    let span = last.map_or(started.elapsed(), |l| l.duration_since(started));
    let rate = done as f64 / span.as_secs_f64();
    println!(
        "  {created} Services waiting (created in {:.1} s, {:.0}/s), then the allocator starts (no creates competing):",
        took.as_secs_f64(),
        created as f64 / took.as_secs_f64()
    );
    println!(
        "    complete {done}/{created} after {:.2} s from the allocator's start: {rate:.0}/s; {cpu_s:.2} CPU s, peak RSS {rss:.1} MiB, {passes} passes of {:.1} ms mean",
        span.as_secs_f64(),
        mean_pass * 1e3
    );
    println!("    CPU s by process: {cpu_split}");
    Ok(json!({
        "services": created,
        "create_requests_s": round(took.as_secs_f64(), 2),
        "complete": done,
        "seconds_from_start": round(span.as_secs_f64(), 2),
        "allocations_per_second": rate.round(),
        "allocator_cpu_s": round(cpu_s, 2),
        "allocator_peak_rss_mib": round(rss, 1),
        "allocator_passes": passes,
        "allocator_mean_pass_ms": round(mean_pass * 1e3, 1),
        "cpu_s_by_process": cpu_split,
    }))
}

/// The 10k burst, then restart-to-ready with those allocated.
async fn large(
    cp: &ControlPlane,
    client: &Client,
    deadline: Instant,
) -> anyhow::Result<(Value, Value)> {
    let ns = "burst-10k";
    namespace(client, ns).await?;
    let group = group(client, "10k", "2001:db8:b::").await?;
    let mut a = idle_allocator(cp, client, ns, "10k", &group).await?;
    let track = Arc::new(Mutex::new(Track::default()));
    let tasks = watch(client, ns, track.clone()).await;
    let b = burst(
        cp,
        ns,
        &group,
        LARGE,
        &a,
        &track,
        deadline - RESTART_RESERVE - BACKLOG_RESERVE,
    )
    .await?;
    let events = with_event(client, ns).await?;
    print_burst(&format!("{LARGE} Services at once"), &b);
    let span = b
        .last_complete
        .map_or(b.first.elapsed(), |l| l.duration_since(b.first))
        .as_secs_f64();
    let rate = b.complete as f64 / span;
    let met = b.complete == LARGE && rate >= LARGE_TARGET_PER_S;
    println!(
        "    complete (status + {} + {} Event): {}/{LARGE} in {span:.1} s from the first create: {rate:.0}/s; AddressAllocated Events listed at the end: {events}",
        ann::ALLOCATED_BY,
        reason::ADDRESS_ALLOCATED,
        b.complete
    );
    println!(
        "    target: >= {LARGE_TARGET_PER_S} allocations/s sustained: {}",
        if met { "met" } else { "NOT met" }
    );
    let mut v = b.json();
    let tail = b
        .last_complete
        .filter(|_| b.complete == LARGE)
        .map(|l| l.saturating_duration_since(b.first + Duration::from_secs_f64(b.create_s)));
    if let Some(tail) = tail {
        println!(
            "    the last Service was complete {:.1} s after the last create returned",
            tail.as_secs_f64()
        );
    }
    v["allocations_per_second"] = json!(rate.round());
    v["complete_after_last_create_s"] = json!(tail.map(|t| round(t.as_secs_f64(), 2)));
    v["complete_span_s"] = json!(round(span, 2));
    v["services_with_event_listed"] = json!(events);
    v["target_allocations_per_second"] = json!(LARGE_TARGET_PER_S);
    v["target_met"] = json!(met);
    if b.complete < LARGE {
        let note = format!(
            "gave up waiting: {} of {LARGE} complete when the time budget ran out",
            b.complete
        );
        println!("    {note}");
        v["note"] = json!(note);
    }

    // Restart: SIGKILL, start again, and a new Service asked for at the same moment.
    let held = b.addressed;
    a.kill();
    let started = Instant::now();
    let mut r = Allocator::start(cp, ns, "10k")?;
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    lock(&track).asked.insert("probe".into(), Instant::now());
    api.create(&PostParams::default(), &service("probe", &group))
        .await?;
    let limit = Instant::now() + RESTART_RESERVE;
    let mut ready_at = None;
    let mut probe_at = None;
    while (ready_at.is_none() || probe_at.is_none()) && Instant::now() < limit {
        if let Some(dead) = r.exited() {
            bail!("{dead}");
        }
        if ready_at.is_none() && r.ready().await {
            ready_at = Some(Instant::now());
        }
        probe_at = lock(&track).addressed.get("probe").map(|p| p.0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tasks.iter().for_each(JoinHandle::abort);
    let ms =
        |t: Option<Instant>| t.map(|t| round(t.duration_since(started).as_secs_f64() * 1e3, 0));
    let total = ready_at.zip(probe_at).map(|(a, b)| a.max(b));
    let (passes, mean_pass) = r.passes_after_first().await;
    let fmt = |v: Option<f64>| v.map_or("NOT REACHED".to_string(), |v| format!("{v:.0} ms"));
    let waiting = LARGE.saturating_sub(held);
    println!(
        "  restart with {held} allocated, {waiting} still waiting (SIGKILL, start, a new Service created at once):"
    );
    println!(
        "    /readyz 200 after {}; the new Service addressed after {}; restart-to-ready {}",
        fmt(ms(ready_at)),
        fmt(ms(probe_at)),
        fmt(ms(total))
    );
    println!(
        "    allocator: {:.2} CPU s, peak RSS {:.1} MiB, {passes} passes of {:.1} ms mean",
        r.process.cpu_seconds(),
        r.process.status_mib("VmHWM:"),
        mean_pass * 1e3
    );
    let restart = json!({
        "allocated": held,
        "still_waiting": waiting,
        "readyz_ms": ms(ready_at),
        "new_service_addressed_ms": ms(probe_at),
        "restart_to_ready_ms": ms(total),
        "allocator_cpu_s": round(r.process.cpu_seconds(), 2),
        "allocator_peak_rss_mib": round(r.process.status_mib("VmHWM:"), 1),
        "allocator_passes": passes,
        "allocator_mean_pass_ms": round(mean_pass * 1e3, 1),
    });
    r.kill();
    Ok((v, restart))
}

/// A fresh control plane, so that each phase starts from an empty one. Its API server uses the
/// bitmap ClusterIP allocator: with the IPAddress allocator (the default since 1.33) a create
/// costs time in proportion to the Services already held (measured here: 279 creates/s empty,
/// 71/s from 4,500 to 6,000 held), which would make the bench measure the API server.
async fn fresh(phase: &str) -> anyhow::Result<(ControlPlane, Client)> {
    let started = Instant::now();
    let cp = ControlPlane::start_with(BITMAP_CLUSTER_IP_ALLOCATOR)
        .await
        .context("cannot start a control plane")?;
    let client = cp.client().await?;
    println!(
        "  (a fresh control plane for {phase}: up in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok((cp, client))
}

/// The run with the median allocation rate, with every run's rate and the verdict on the median.
fn median_run(mut runs: Vec<(Value, Value)>) -> (Value, Value) {
    let rate = |r: &(Value, Value)| r.0["allocations_per_second"].as_f64().unwrap_or(0.0);
    runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let rates: Vec<f64> = runs.iter().map(rate).collect();
    let (mut b, restart) = runs.swap_remove(runs.len() / 2);
    let median = b["allocations_per_second"].as_f64().unwrap_or(0.0);
    let met = b["complete"].as_u64() == Some(LARGE as u64) && median >= LARGE_TARGET_PER_S;
    println!(
        "  10k burst, median of {} runs: {median:.0} allocations/s (runs: {rates:?}); target >= {LARGE_TARGET_PER_S}/s: {}",
        rates.len(),
        if met { "met" } else { "NOT met" }
    );
    b["runs_allocations_per_second"] = json!(rates);
    b["figure"] = json!("the median run");
    b["target_met"] = json!(met);
    (b, restart)
}

/// The phases to run: all, or those named in `FERROLB_BENCH_PHASES` (comma-separated: `1k`,
/// `10k`, `backlog_10k`), for work on one of them; a partial run is marked so in the figures.
fn phases() -> Option<Vec<String>> {
    let v = std::env::var("FERROLB_BENCH_PHASES").ok()?;
    Some(v.split(',').map(|p| p.trim().to_string()).collect())
}

fn wanted(phase: &str) -> bool {
    phases().is_none_or(|p| p.iter().any(|x| x == phase))
}

async fn run(figures: &Mutex<serde_json::Map<String, Value>>) -> anyhow::Result<()> {
    let deadline = Instant::now() + BUDGET;
    let set = |k: &str, v: Value| {
        lock(figures).insert(k.into(), v);
    };
    if wanted("1k") {
        let (cp, client) = fresh("the 1k burst and the 1k backlog").await?;
        set("burst_1k", small(&cp, &client, deadline).await?);
        set(
            "backlog_1k",
            backlog(&cp, &client, deadline, SMALL, "1k", "2001:db8:c::").await?,
        );
    }
    let mut burst = Value::Null;
    if wanted("10k") {
        let mut runs = Vec::new();
        for i in 1..=LARGE_RUNS {
            let (cp, client) = fresh(&format!(
                "the 10k burst and the restart, run {i} of {LARGE_RUNS}"
            ))
            .await?;
            runs.push(large(&cp, &client, deadline).await?);
        }
        let (b, restart) = median_run(runs);
        set("burst_10k", b.clone());
        set("restart_10k", restart);
        burst = b;
    }
    if !wanted("backlog_10k") {
        return Ok(());
    }
    let (cp, client) = fresh("the 10k backlog").await?;
    let backlog = backlog(&cp, &client, deadline, LARGE, "10k", "2001:db8:d::").await?;
    drop(cp);
    set("backlog_10k", backlog.clone());
    let plain = json!({
        "services": backlog["services"],
        "seconds": backlog["create_requests_s"],
        "creates_per_second": (backlog["services"].as_f64().unwrap_or(0.0)
            / backlog["create_requests_s"].as_f64().unwrap_or(f64::NAN)).round(),
        "note": "the creates of the 10k backlog, with no allocator running",
    });
    let plain_rate = plain["creates_per_second"].as_f64();
    set("plain_create_10k", plain);
    let rate = burst["allocations_per_second"].as_f64();
    if let (Some(p), Some(r)) = (plain_rate, rate) {
        println!(
            "  summary: the API server alone creates {p:.0} Services/s; with the allocator running, {r:.0}/s are created and complete ({:.0}% of the plain create rate); on a backlog it did not create, the allocator completes {:.0}/s",
            100.0 * r / p,
            backlog["allocations_per_second"]
                .as_f64()
                .unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("allocator controller bench: run it with `cargo bench --bench controller`");
        return;
    }
    if let Some(why) = ControlPlane::missing() {
        println!("SKIPPED: the allocator controller bench needs a control plane: {why}");
        return;
    }
    println!(
        "allocator controller figures (release binary, one process, leader election off, etcd {ETCD}):"
    );
    let figures = Mutex::new(serde_json::Map::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = rt.block_on(async { tokio::time::timeout(BUDGET, run(&figures)).await });
    // Dropping the runtime drops the control plane and the allocators: nothing outlives us.
    drop(rt);
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some(format!("gave up after the {} s budget", BUDGET.as_secs())),
    };
    let mut all = figures.into_inner().unwrap_or_else(|p| p.into_inner());
    all.insert("etcd".into(), ETCD.into());
    all.insert(
        "allocator_build".into(),
        "release (cargo bench profile)".into(),
    );
    all.insert("create_concurrency".into(), CONCURRENCY.into());
    if let Some(p) = phases() {
        all.insert("partial_run_of_phases".into(), p.into());
    }
    all.insert(
        "method".into(),
        format!("one allocator process per phase (--watch-namespace of the phase, leader election off) on a \
         private control plane on this machine, a fresh one for the 1k phases, the plain creates and \
         each 10k burst (the API server's create cost grows with the Services it holds); the 10k \
         burst runs {LARGE_RUNS} times and its figures are the median run's; backlog = \
         Services created with the allocator stopped, then it starts (10k: the allocator's throughput on a backlog it did not \
         create; plain creates = that backlog's creates); API server with the bitmap ClusterIP allocator \
         (--emulated-version=kube=1.33, MultiCIDRServiceAllocator=false); Services IPv6 SingleStack without node ports, from a \
         virtual group; latency = client-side create-request start -> first watch event with \
         status.loadBalancer.ingress; complete = address + ferrolb.io/allocated-by + AddressAllocated \
         Event; CPU = utime+stime of the allocator during the burst; RSS = VmHWM")
        .into(),
    );
    if let Some(f) = &failure {
        all.insert("error".into(), f.clone().into());
    }
    match record(Tier::Bench, "allocator", Value::Object(all)) {
        Ok(path) => println!("  written to {}", path.display()),
        Err(e) => eprintln!("could not write bench results: {e}"),
    }
    if let Some(f) = failure {
        eprintln!("allocator controller bench failed: {f}");
        std::process::exit(1);
    }
}
