//! Helpers shared by the root tests: entering a node namespace, bounded polling, test inputs.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

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
