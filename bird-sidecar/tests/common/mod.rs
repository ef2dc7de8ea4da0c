//! Helpers shared by the root tests: entering a node namespace, bounded polling, test inputs.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_bird_sidecar::apply::BirdPaths;
use ferrolb_bird_sidecar::decide::DEFAULT_TEMPLATE;
use ferrolb_bird_sidecar::observe::files::Files;
use ferrolb_bird_sidecar::run::Settings;
use ferrolb_bird_sidecar::supervise::Backoff;
use ferrolb_e2e::topology::Topology;

/// Runs `f` on a thread of its own inside network namespace `ns` (children it spawns follow
/// it), so the test thread never joins the namespace and the topology's teardown, which kills
/// every process in it, never finds the test process there. A panic in `f` is the caller's.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_namespace(ns);
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn enter_namespace(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("opening namespace {ns}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("entering namespace {ns}: {e}"));
}

/// A current-thread runtime, so every task (and every child it spawns) stays in the thread's
/// namespace.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Polls `probe` every 100 ms until it returns `Some` or `timeout` passes; panics with `what`
/// and `detail()` on timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A virtual ServiceGroup as YAML: `subnet` with `aggregation`, and its communities.
pub fn virtual_group_yaml(name: &str, subnet: &str, aggregation: &str, community: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1\nkind: ServiceGroup\nmetadata:\n  name: {name}\nspec:\n  virtual:\n    v4pools:\n      - subnet: {subnet}\n        pool: {subnet}\n        aggregation: {aggregation}\n    bgp:\n      communities: ['{community}']\n"
    )
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// How long the sidecar tests wait for a state they expect.
pub const WAIT: Duration = Duration::from_secs(15);

/// Offline sidecar settings for node 0 of `topo`: the default template, one virtual group,
/// config and control socket in the topology's scratch dir, quick polls.
pub fn settings(topo: &Topology) -> Settings {
    let dir = topo.dir().join("sidecar");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    write(&dir.join("bird.conf.tmpl"), DEFAULT_TEMPLATE);
    write(&dir.join("values.yaml"), "");
    write(
        &dir.join("groups.yaml"),
        &virtual_group_yaml("web", "203.0.113.0/25", "/28", "64520:100"),
    );
    Settings {
        node_name: "n0".into(),
        node_addresses: vec![topo.node(0).lan_v4().into()],
        files: Files {
            template: Some(dir.join("bird.conf.tmpl")),
            values: Some(dir.join("values.yaml")),
            groups: Some(dir.join("groups.yaml")),
        },
        paths: BirdPaths {
            bird: "bird".into(),
            birdc: "birdc".into(),
            config: dir.join("etc/bird.conf"),
            socket: dir.join("run/bird.ctl"),
        },
        drain: Duration::from_millis(200),
        poll: Duration::from_millis(100),
        backoff: Backoff::default(),
        stop_grace: Duration::from_secs(2),
        birdc_timeout: Duration::from_secs(10),
        stall_limit: Duration::from_secs(60),
    }
}

/// The pid of the `bird -f` whose command line names `config`.
pub fn bird_pid(config: &Path) -> Option<i32> {
    let needle = config.to_string_lossy().into_owned();
    processes().find_map(|(pid, args)| {
        (args.first().is_some_and(|a| a.ends_with("bird")) && args.contains(&needle)).then_some(pid)
    })
}

/// Every live process's pid and command line.
pub fn processes() -> impl Iterator<Item = (i32, Vec<String>)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
}

/// `GET path` on the sidecar's metrics server: status code and body; `None` when it does not
/// answer. Async, so a server on the same current-thread runtime keeps running.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.ok()?;
    let code = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Some((code, body.unwrap_or_default()))
}
