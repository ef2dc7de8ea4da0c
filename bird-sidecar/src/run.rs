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
use crate::decide::readiness::{BirdState, readiness};
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
    /// How long one `bird -p` or `birdc` call may take before it is killed and fails.
    pub birdc_timeout: Duration,
    /// How long the loop may go without progress before `/healthz` fails; see [`stall_limit`].
    pub stall_limit: Duration,
}

/// The longest a healthy loop goes between beats, with room to spare: a poll, plus the
/// bounded calls of one round (validate, configure, reload after a restart, show protocols)
/// and the wait for a first BIRD to answer.
pub fn stall_limit(poll: Duration, birdc_timeout: Duration) -> Duration {
    poll.saturating_add(birdc_timeout.saturating_mul(5))
        .saturating_add(FIRST_ANSWER)
}

/// How long a first BIRD may take to answer on its control socket.
const FIRST_ANSWER: Duration = Duration::from_secs(10);

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
    /// Why the last attempt to make BIRD run the desired config failed (not ready while set).
    failed: Option<String>,
    restarts_seen: u64,
    /// BIRD restarted since it was last told to load its config file.
    reload: bool,
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
        bird: Bird::with_timeout(settings.paths.clone(), settings.birdc_timeout),
        settings,
        source,
        metrics,
        events,
        supervisor: None,
        applied: None,
        rejected: None,
        failed: None,
        restarts_seen: 0,
        reload: false,
    };
    let changed = match &sidecar.source {
        Source::Cluster(view) => Some(view.changed.clone()),
        Source::Offline => None,
    };
    let mut tick = interval(sidecar.settings.poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        sidecar.beat();
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
    fn beat(&self) {
        self.metrics.beat(self.settings.stall_limit);
    }

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
        {
            // Inputs back to what BIRD runs: whatever failed before no longer matters.
            self.failed = None;
            self.rejected = None;
            return;
        }
        if self.rejected.as_ref() == Some(&want.config) {
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
                self.metrics.config_outcome(true);
                self.events.applied(note).await;
                self.applied = Some((want.config, snapshot));
                self.rejected = None;
                self.failed = None;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!("applying the config (retrying): {e}");
                self.failed = Some(e.to_string());
            }
            Err(e) => self.reject(want.config, e).await,
        }
    }

    /// Counts and reports a config that cannot be applied, once per distinct failure.
    async fn reject(&mut self, key: String, e: Error) {
        self.failed = Some(e.to_string());
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
        self.metrics.config_outcome(false);
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
        let deadline = Instant::now() + FIRST_ANSWER;
        while !self.bird.answers().await {
            self.beat();
            if Instant::now() >= deadline {
                tracing::warn!("BIRD does not answer on its control socket yet");
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Session state into the metrics; readiness; a restarted BIRD re-reads its config file.
    async fn observe_bird(&mut self) {
        let Some(sup) = &self.supervisor else {
            let why = readiness(BirdState::NotStarted, false, self.failed.as_deref());
            self.metrics.set_readiness(why);
            return;
        };
        let restarts = *sup.restarts().borrow();
        if restarts > self.restarts_seen {
            self.reload = true;
        }
        self.metrics
            .bird_restarts
            .inc_by(restarts.saturating_sub(self.restarts_seen));
        self.restarts_seen = restarts;
        let state = match self.bird.protocols().await {
            Ok(protocols) => {
                self.metrics.set_protocols(&protocols);
                BirdState::Answering
            }
            Err(e) => {
                tracing::debug!("BIRD does not answer: {e}");
                BirdState::Silent
            }
        };
        if state == BirdState::Answering && self.reload {
            self.reload_config_file().await;
        }
        let why = readiness(state, self.applied.is_some(), self.failed.as_deref());
        self.metrics.set_readiness(why);
    }

    /// A restarted BIRD read the config file at start; [`Bird::apply`] renames a new config
    /// over that file only after BIRD loaded it, so a restart in between started from the
    /// previous one. Loading the file again closes that gap (a no-op otherwise).
    async fn reload_config_file(&mut self) {
        match self.bird.configure().await {
            Ok(()) => {
                self.reload = false;
                tracing::info!(
                    config = %self.settings.paths.config.display(),
                    "BIRD restarted: it runs the last applied config file"
                );
            }
            Err(e) => tracing::warn!("BIRD restarted; reloading its config file (retrying): {e}"),
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
        self.metrics.set_stopping();
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
