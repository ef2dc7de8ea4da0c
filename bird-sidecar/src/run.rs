//! The sidecar's loop: observe inputs, render, apply when the config changes, report BIRD's
//! sessions, and drain on shutdown.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval, sleep};

use crate::apply::events::Events;
use crate::apply::{Bird, BirdPaths};
use crate::decide::drain::{Step, plan};
use crate::decide::{NodeFacts, Snapshot, desired};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::observe::files::Files;
use crate::observe::kube::ClusterView;
use crate::supervise::{Backoff, Supervisor};

/// How the sidecar is set up (from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    /// Offline only: the node's addresses (in a cluster they come from its Node).
    pub node_addresses: Vec<IpAddr>,
    pub files: Files,
    pub paths: BirdPaths,
    /// Used when no LBNodeAgent says otherwise.
    pub drain: Duration,
    /// How often files are re-read and BIRD's sessions polled.
    pub poll: Duration,
    pub backoff: Backoff,
    /// How long SIGTERM to BIRD may take before SIGKILL.
    pub stop_grace: Duration,
}

/// Where ServiceGroups and node facts come from.
pub enum Source {
    /// `--groups` file and `--node-address` flags.
    Offline,
    Cluster(ClusterView),
}

struct Sidecar {
    settings: Settings,
    source: Source,
    bird: Bird,
    metrics: Arc<Metrics>,
    events: Events,
    supervisor: Option<Supervisor>,
    /// The config BIRD runs, and the snapshot it came from (drain re-renders that one).
    applied: Option<(String, Snapshot)>,
    /// The last config (or error text) that failed for good: not retried until inputs change.
    rejected: Option<String>,
    restarts_seen: u64,
}

/// Runs until `shutdown` completes, then drains and stops BIRD.
pub async fn run(
    settings: Settings,
    source: Source,
    metrics: Arc<Metrics>,
    events: Events,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut sidecar = Sidecar {
        bird: Bird::new(settings.paths.clone()),
        settings,
        source,
        metrics,
        events,
        supervisor: None,
        applied: None,
        rejected: None,
        restarts_seen: 0,
    };
    let changed = match &sidecar.source {
        Source::Cluster(view) => Some(view.changed.clone()),
        Source::Offline => None,
    };
    let mut tick = interval(sidecar.settings.poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        sidecar.reconcile().await;
        sidecar.observe_bird().await;
        let notified = async {
            match &changed {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
            _ = notified => {}
        }
    }
    sidecar.drain().await;
    Ok(())
}

impl Sidecar {
    async fn snapshot(&self) -> Result<Snapshot> {
        let files = self.settings.files.read().await?;
        let mut values = files.values;
        let (node, groups) = match &self.source {
            Source::Offline => (
                NodeFacts {
                    name: self.settings.node_name.clone(),
                    addresses: self.settings.node_addresses.clone(),
                },
                files.groups.unwrap_or_default(),
            ),
            Source::Cluster(view) => {
                let node = view.node_facts().ok_or_else(|| {
                    Error::Facts(format!("Node {} not found", self.settings.node_name))
                })?;
                if values.virtual_interface.is_none() {
                    values.virtual_interface = view.agent_settings().map(|a| a.virtual_interface);
                }
                (node, view.groups())
            }
        };
        Ok(Snapshot {
            node,
            values,
            groups,
            template: files.template,
        })
    }

    async fn reconcile(&mut self) {
        let snapshot = match self.snapshot().await {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot read the inputs (retrying): {e}");
                return;
            }
            Err(e) => return self.reject(e.to_string(), e).await,
        };
        let want = match desired(&snapshot, false) {
            Ok(d) => d,
            Err(e) => return self.reject(e.to_string(), e).await,
        };
        if self
            .applied
            .as_ref()
            .is_some_and(|(c, _)| *c == want.config)
            || self.rejected.as_ref() == Some(&want.config)
        {
            return;
        }
        for w in &want.warnings {
            tracing::warn!("{w}");
        }
        match self.apply(&want.config).await {
            Ok(()) => {
                let groups = snapshot
                    .groups
                    .iter()
                    .filter(|g| g.spec.virtual_.is_some())
                    .count();
                let note = format!(
                    "BIRD runs the new config ({} peers, {groups} virtual ServiceGroups)",
                    snapshot.values.peers.len()
                );
                tracing::info!(config = %self.settings.paths.config.display(), "{note}");
                self.metrics.config_applied.inc();
                self.events.applied(note).await;
                self.applied = Some((want.config, snapshot));
                self.rejected = None;
            }
            Err(e) if e.is_transient() => tracing::warn!("applying the config (retrying): {e}"),
            Err(e) => self.reject(want.config, e).await,
        }
    }

    /// Counts and reports a config that cannot be applied, once per distinct failure.
    async fn reject(&mut self, key: String, e: Error) {
        if self.rejected.as_ref() == Some(&key) {
            return;
        }
        self.rejected = Some(key);
        let kept = if self.applied.is_some() {
            "BIRD keeps running the previous config"
        } else {
            "BIRD is not started until a config is valid"
        };
        let note = format!("{e}. {kept}; fix the ferrolb-bird template or the values.");
        tracing::error!("{note}");
        self.metrics.config_rejected.inc();
        self.events.rejected(note).await;
    }

    /// Installs `config`; the first one also starts BIRD.
    async fn apply(&mut self, config: &str) -> Result<()> {
        if self.supervisor.is_some() {
            return self.bird.apply(config).await;
        }
        self.bird.install(config).await?;
        self.supervisor = Some(Supervisor::start(
            &self.settings.paths,
            self.settings.backoff,
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.bird.answers().await {
            if Instant::now() >= deadline {
                tracing::warn!("BIRD does not answer on its control socket yet");
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Session state into the metrics; readiness.
    async fn observe_bird(&mut self) {
        if let Some(sup) = &self.supervisor {
            let restarts = *sup.restarts().borrow();
            self.metrics
                .bird_restarts
                .inc_by(restarts.saturating_sub(self.restarts_seen));
            self.restarts_seen = restarts;
        }
        if self.supervisor.is_none() {
            self.metrics.set_ready(false);
            return;
        }
        match self.bird.protocols().await {
            Ok(protocols) => {
                self.metrics.set_protocols(&protocols);
                self.metrics.set_ready(self.applied.is_some());
            }
            Err(e) => {
                tracing::debug!("BIRD does not answer: {e}");
                self.metrics.set_ready(false);
            }
        }
    }

    fn drain_duration(&self) -> Duration {
        match &self.source {
            Source::Cluster(view) => view
                .agent_settings()
                .and_then(|a| a.drain)
                .unwrap_or(self.settings.drain),
            Source::Offline => self.settings.drain,
        }
    }

    /// Graceful-shutdown community, half the drain, withdraw, stop BIRD.
    async fn drain(mut self) {
        self.metrics.draining.set(1);
        self.metrics.set_ready(false);
        let Some(supervisor) = self.supervisor.take() else {
            tracing::info!("stopping; BIRD was never started");
            return;
        };
        let protocols = self.bird.protocols().await.unwrap_or_else(|e| {
            tracing::warn!("cannot list BIRD's protocols to disable them: {e}");
            Vec::new()
        });
        let drain = self.drain_duration();
        let mut supervisor = Some(supervisor);
        for step in plan(drain, &protocols) {
            match step {
                Step::GracefulShutdown => self.graceful_shutdown().await,
                Step::Wait(d) => {
                    tracing::info!(wait = ?d, "drain: waiting for routers to move traffic away");
                    sleep(d).await;
                }
                Step::Disable(names) => {
                    for name in names {
                        match self.bird.disable(&name).await {
                            Ok(()) => {
                                tracing::info!(protocol = %name, "drain: disabled; routes withdrawn")
                            }
                            Err(e) => tracing::warn!(protocol = %name, "drain: {e}"),
                        }
                    }
                }
                Step::StopBird => {
                    if let Some(s) = supervisor.take() {
                        s.stop(self.settings.stop_grace).await;
                    }
                    tracing::info!("drain: BIRD stopped");
                }
            }
        }
    }

    async fn graceful_shutdown(&self) {
        let Some((_, snapshot)) = &self.applied else {
            return;
        };
        let result = match desired(snapshot, true) {
            Ok(d) => self.bird.apply(&d.config).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::info!("drain: every export carries the graceful-shutdown community"),
            Err(e) => tracing::warn!("drain: cannot add the graceful-shutdown community: {e}"),
        }
    }
}
