//! The allocator's main loop: sync every cache, then (while leading) decide and apply on every
//! change, when a per-node Lease expires, and when a failed object's own back-off ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrolb_api::contracts::ALLOCATOR_LEASE;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use tokio::sync::watch;

use crate::apply::Applier;
use crate::decide::{self, Settings};
use crate::leader::{self, Term};
use crate::metrics::Metrics;
use crate::observe::{Observer, Scope};
use crate::{Error, Result};

/// Coalesces bursts of watch events into one pass.
const SETTLE: Duration = Duration::from_millis(30);

/// What `run` needs besides a client.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub settings: Settings,
    pub leader_elect: bool,
    /// Where the leader Lease and the per-node Leases are (the install namespace).
    pub lease_namespace: String,
    pub identity: String,
    pub scope: Scope,
}

/// Runs until SIGTERM/SIGINT (`Ok`) or until leadership is lost or a cache cannot start (`Err`).
pub async fn run(client: Client, cfg: RunConfig, metrics: Arc<Metrics>) -> Result<()> {
    let observer = Observer::start(&client, &cfg.scope, &cfg.lease_namespace);
    let (lead_tx, mut leading) = watch::channel(!cfg.leader_elect);
    let term = if cfg.leader_elect {
        Term::default()
    } else {
        Term::unbounded()
    };
    let mut election = if cfg.leader_elect {
        let (c, ns, id) = (
            client.clone(),
            cfg.lease_namespace.clone(),
            cfg.identity.clone(),
        );
        let tx = lead_tx.clone();
        let term = term.clone();
        Some(tokio::spawn(async move {
            let e = leader::run(c, ns, id, tx.clone(), term).await;
            let _ = tx.send(false);
            e
        }))
    } else {
        None
    };
    // Phase one: every cache lists its objects before anything is decided.
    observer.wait_synced().await?;
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %cfg.identity, "caches synced");
    let applier = Applier::new(
        client.clone(),
        &cfg.identity,
        metrics.clone(),
        leading.clone(),
        term,
    );
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut primed = false;
    loop {
        let mut wake: Option<Instant> = None;
        if *leading.borrow() && !primed {
            match applier.remember_told(cfg.scope.namespace.as_deref()).await {
                Ok(()) => primed = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list earlier Events; they may be told again")
                }
            }
        }
        if *leading.borrow() {
            let started = Instant::now();
            let snap = observer.snapshot(Timestamp::now());
            let plan = decide::plan(&snap, &cfg.settings);
            // A pass stops (its requests dropped) the moment leadership goes, not when its
            // writes return.
            let mut still = leading.clone();
            let outcome = tokio::select! {
                r = applier.apply(&plan, &snap, &observer) => r,
                _ = still.wait_for(|l| !*l) => Err(Error::LeaderLost(ALLOCATOR_LEASE.into())),
            };
            // Failed writes back off per object inside the applier; only a lost lease ends here.
            outcome?;
            metrics.reconciled(started.elapsed().as_secs_f64());
            wake = applier.next_retry();
            if let Some(exp) = snap.next_expiry() {
                let until = Duration::try_from(exp.duration_since(snap.now)).unwrap_or_default();
                let at = started + until + Duration::from_millis(10);
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = observer.changed() => tokio::time::sleep(SETTLE).await,
            _ = sleep => {}
            _ = leading.changed() => {}
            e = async { match election.as_mut() { Some(h) => h.await, None => std::future::pending().await } } => {
                return Err(e.unwrap_or_else(|j| Error::WatchEnded(format!("leader election task: {j}"))));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if cfg.leader_elect && *leading.borrow() {
        let _ = lead_tx.send(false);
        leader::release(client, &cfg.lease_namespace, &cfg.identity).await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    Ok(tokio::signal::unix::signal(kind)?)
}
