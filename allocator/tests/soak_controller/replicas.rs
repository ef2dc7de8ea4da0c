//! The allocator binary as replicas with leader election on, scoped to the test's namespace and
//! groups, and who holds the leader Lease over time. Each start gets a new identity, as a
//! Deployment's replacement pod gets a new name; every replica is SIGKILLed on drop and their
//! logs are printed when the test fails.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::ALLOCATOR_LEASE;
use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::process::{Process, log_tail, tied};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;

use crate::{SCOPE_LABEL, lock};

pub struct Replica {
    pub identity: String,
    process: Process,
    /// SIGSTOPped and not yet continued.
    pub stopped: bool,
}

impl Replica {
    pub fn exited(&mut self) -> bool {
        self.process.exit_status().is_some()
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .log_path()
            .map(|p| log_tail(p, lines))
            .unwrap_or_default()
    }
}

pub struct Replicas {
    cp: &'static ControlPlane,
    ns: String,
    pub running: Vec<Replica>,
    pub starts: u32,
    logs: Vec<PathBuf>,
}

impl Replicas {
    pub fn new(cp: &'static ControlPlane, ns: &str) -> Self {
        Replicas {
            cp,
            ns: ns.to_string(),
            running: Vec::new(),
            starts: 0,
            logs: Vec::new(),
        }
    }

    /// Starts a replica under a new identity; returns it.
    pub fn start(&mut self) -> String {
        self.starts += 1;
        let identity = format!("soak-{}", self.starts);
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ferrolb-allocator-{}-{identity}.log", self.ns));
        let out = File::create(&log).expect("the allocator log");
        let mut cmd = tied(env!("CARGO_BIN_EXE_ferrolb-allocator"));
        cmd.arg("--kubeconfig")
            .arg(self.cp.kubeconfig())
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--leader-elect", "true"])
            .args(["--lease-namespace", &self.ns])
            .args(["--identity", &identity])
            .args(["--watch-namespace", &self.ns])
            .args(["--group-selector", &format!("{SCOPE_LABEL}={}", self.ns)])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        let process = Process::spawn(&format!("allocator {identity}"), cmd, Some(log.clone()))
            .expect("the allocator starts");
        self.logs.push(log);
        self.running.push(Replica {
            identity: identity.clone(),
            process,
            stopped: false,
        });
        identity
    }

    pub fn find(&mut self, identity: &str) -> Option<&mut Replica> {
        self.running.iter_mut().find(|r| r.identity == identity)
    }

    /// SIGKILL, no graceful release of anything; the replica is gone from `running`.
    pub fn kill(&mut self, identity: &str) {
        if let Some(i) = self.running.iter().position(|r| r.identity == identity) {
            let mut r = self.running.remove(i);
            r.process.kill();
        }
    }

    /// SIGSTOP (`hang`) or SIGCONT.
    pub fn signal(&mut self, identity: &str, hang: bool) {
        if let Some(r) = self.find(identity) {
            r.process
                .signal(if hang { "STOP" } else { "CONT" })
                .expect("the replica is signalled");
            r.stopped = hang;
        }
    }

    /// Replicas that exited by themselves, with their log tails; they are gone from `running`.
    pub fn reap(&mut self) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].exited() {
                let mut r = self.running.remove(i);
                let status = r.process.exit_status();
                gone.push((
                    r.identity.clone(),
                    format!("{status:?}; its last lines:\n{}", r.log_tail(15)),
                ));
            } else {
                i += 1;
            }
        }
        gone
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for mut r in self.running.drain(..) {
            r.process.kill();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                eprintln!(
                    "--- allocator log {} (last lines) ---\n{}",
                    log.display(),
                    log_tail(log, 40)
                );
            }
        }
    }
}

/// The leader Lease's holder as polled, each change with when it was seen.
#[derive(Clone, Default)]
pub struct Holders(Arc<Mutex<Vec<(Instant, Option<String>)>>>);

impl Holders {
    /// Polls the Lease every 100 ms until the task is aborted.
    pub fn track(client: Client, ns: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let holders = Holders::default();
        let api: Api<Lease> = Api::namespaced(client, ns);
        let h = holders.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(lease) = api.get_opt(ALLOCATOR_LEASE).await {
                    let now = lease.and_then(|l| l.spec?.holder_identity);
                    let mut seen = lock(&h.0);
                    if seen.last().is_none_or(|(_, last)| *last != now) {
                        seen.push((Instant::now(), now));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (holders, task)
    }

    pub fn current(&self) -> Option<String> {
        lock(&self.0).last().and_then(|(_, h)| h.clone())
    }

    /// When the Lease was first seen held by someone other than `lost` at or after `since`.
    pub fn taken_from(&self, lost: &str, since: Instant) -> Option<Instant> {
        lock(&self.0)
            .iter()
            .find(|(t, h)| *t >= since && h.as_deref().is_some_and(|h| h != lost))
            .map(|(t, _)| *t)
    }

    /// How many times the holder changed from one identity to another.
    pub fn changes(&self) -> usize {
        let seen = lock(&self.0);
        let named: Vec<&String> = seen.iter().filter_map(|(_, h)| h.as_ref()).collect();
        named.windows(2).filter(|w| w[0] != w[1]).count()
    }
}
