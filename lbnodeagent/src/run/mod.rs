//! The agent's loop: reflectors and kernel notifications wake it, a renewal tick keeps local
//! addresses alive whatever fails (back-off is per change, see `decide::Retries`), each turn
//! beats for `/healthz`, and SIGTERM walks it through the graceful stop.

mod election;
mod keys;
mod round;
mod stores;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferrolb_api::contracts::IneligibleReason;
use kube::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{info, warn};

pub use election::{GossipTuning, Holder};
pub use round::Held;
pub use stores::Stores;

use self::election::Election;
use crate::apply::{LeasePublisher, NodeEvents};
use crate::conflict::{Prober, Reporting};
use crate::decide::{BACKOFF_MAX, BACKOFF_MIN, Rejected, Retries, agent_config, renewal_period};
use crate::gratuitous::Senders;
use crate::metrics::Metrics;
use crate::netlink::{Netlink, PROTO_PROBE_ADDRESS};
use crate::snapshot::{AgentConfig, Lifecycle};
use crate::{Error, Result};

/// What `run` needs besides the client.
pub struct RunConfig {
    pub node: String,
    /// Where the per-node Leases live.
    pub namespace: String,
    /// Only the Services (and EndpointSlices) of this namespace; all when `None`.
    pub services_in: Option<String>,
    /// How the holder of a local address is found; the binary always elects.
    pub holder: Holder,
    pub metrics: Arc<Metrics>,
}

/// Everything a round reads and writes through.
pub(crate) struct Context {
    node: String,
    netlink: Netlink,
    stores: Stores,
    metrics: Arc<Metrics>,
    events: NodeEvents,
    lease: LeasePublisher,
    held: Held,
    /// Gratuitous ARP/NA sockets, one per interface.
    senders: Senders,
    /// Conflict probes; only where holders are elected.
    prober: Option<Prober>,
    /// The rejected LBNodeAgents already reported, as their messages: each is logged and
    /// posted once, and again only when it changes.
    rejected: Mutex<BTreeSet<String>>,
    /// When setting strict ARP on the local interface last failed (retried a minute later).
    strict_arp_failed: Mutex<Option<std::time::Instant>>,
}

/// Kernel notifications come in bursts (an address and its routes): rounds start at least this
/// long apart, so a burst makes one round while an agent at rest reacts at once.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// The loop turns at least this often, whatever else it waits for: it beats for `/healthz`
/// and looks at the kernel (something may have deleted an address without a notification).
pub const MAX_IDLE: Duration = Duration::from_secs(10);
/// How long the stop waits for the Lease to say `stopping` and, at the end, what it holds.
const LEASE_FLUSH: Duration = Duration::from_secs(2);

/// Runs the agent until SIGTERM (or SIGINT) and the drain are over.
pub async fn run(client: Client, cfg: RunConfig) -> Result<()> {
    let io = |what| move |source| Error::Io { what, source };
    let mut terminate = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let keys = match &cfg.holder {
        Holder::Elected(_) => Some(Arc::new(RwLock::new(
            keys::load(&client, &cfg.namespace).await?,
        ))),
        Holder::Always => None,
    };
    let key_watch = keys
        .clone()
        .map(|k| keys::keep_current(&client, &cfg.namespace, k));
    let wake = Arc::new(Notify::new());
    let (netlink, mut changes) = Netlink::connect_watching()?;
    let kernel_wake = wake.clone();
    let kernel_watch = tokio::spawn(async move {
        while changes.next().await.is_some() {
            kernel_wake.notify_one();
        }
        warn!("kernel notifications stopped");
    });
    let stores = Stores::start(
        &client,
        &cfg.node,
        &cfg.namespace,
        cfg.services_in.as_deref(),
        wake.clone(),
    );
    info!(node = cfg.node, "waiting for the caches to sync");
    tokio::select! {
        synced = stores.synced() => synced.map_err(|e| Error::Io {
            what: "reflector",
            source: std::io::Error::other(e),
        })?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    }
    let events = NodeEvents::new(client.clone(), &cfg.node);
    let held = Held::default();
    let prober = matches!(cfg.holder, Holder::Elected(_)).then(|| {
        Prober::start(Reporting {
            node: cfg.node.clone(),
            held: held.clone(),
            events: events.clone(),
            metrics: cfg.metrics.clone(),
            wake: wake.clone(),
        })
    });
    let ctx = Context {
        lease: LeasePublisher::start(client, &cfg.namespace, &cfg.node, cfg.metrics.clone()),
        events,
        node: cfg.node,
        netlink,
        stores,
        metrics: cfg.metrics,
        held,
        senders: Senders::default(),
        prober,
        rejected: Mutex::default(),
        strict_arp_failed: Mutex::default(),
    };
    let mut election = Election::new(&ctx.node, cfg.holder, keys, &ctx.metrics, wake.clone());
    let cluster = ctx.stores.cluster(&ctx.node);
    let selection = agent_config(&cluster.agents, &cluster.node, None);
    report_rejected(&ctx, &selection.rejected);
    let config = selection.config;
    check_kernel(&ctx.netlink, &config).await?;
    info!(
        node = ctx.node,
        "caches synced, kernel checked; reconciling"
    );

    let mut config = Some(config);
    let mut lifecycle = Lifecycle::Running;
    let mut drain_until: Option<Instant> = None;
    let mut backoff = BACKOFF_MIN;
    let mut retries = Retries::default();
    let mut stopping_published = false;
    let health = ctx.metrics.health();
    loop {
        health.beat();
        let outcome = round::reconcile(
            &ctx,
            &mut election,
            lifecycle,
            config.as_ref(),
            &mut retries,
        )
        .await;
        let round_ended = Instant::now();
        let renew_in = renewal_wait(config.as_ref());
        let next = match outcome {
            Ok(round) => {
                backoff = BACKOFF_MIN;
                health.round(round.problem);
                let renew_in = renewal_wait(Some(&round.config));
                config = Some(round.config);
                next_wait(
                    renew_in,
                    round
                        .next_retry
                        .map(|at| Instant::from_std(at).saturating_duration_since(round_ended)),
                )
            }
            Err(e) => {
                // The kernel could not be read: nothing was renewed either, so the retry
                // comes no later than the next renewal would.
                warn!(error = %e, "reconcile failed; retrying");
                health.round(Some(e.to_string()));
                next_wait(renew_in, Some(step(&mut backoff)))
            }
        };
        if lifecycle != Lifecycle::Running && !stopping_published {
            stopping_published = ctx.lease.flushed(LEASE_FLUSH).await;
            info!(
                eligible = IneligibleReason::Stopping.as_str(),
                published = stopping_published,
                "stopping: local addresses removed, virtual addresses kept for the drain"
            );
        }
        if lifecycle == Lifecycle::Drained {
            break;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let running = lifecycle == Lifecycle::Running;
        let mut stop = false;
        tokio::select! {
            // Leading edge: a wake long after the last round runs one at once; one right
            // after it waits out the rest of DEBOUNCE, so a burst still makes one round.
            _ = wake.notified() => sleep_until(round_ended + DEBOUNCE).await,
            _ = sleep(next) => {}
            _ = terminate.recv(), if running => stop = true,
            _ = interrupt.recv(), if running => stop = true,
            _ = sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                lifecycle = Lifecycle::Drained;
            }
        }
        if stop {
            let drain = config.as_ref().map_or(Duration::from_secs(5), |c| c.drain);
            info!(?drain, "SIGTERM: stopping");
            health.stopping();
            lifecycle = Lifecycle::Draining;
            // The drain is bounded when parsed; checked all the same, a signal must not panic.
            drain_until = Some(Instant::now().checked_add(drain).unwrap_or(far));
        }
    }
    election.leave().await;
    let flushed = ctx.lease.flushed(LEASE_FLUSH).await;
    kernel_watch.abort();
    if let Some(task) = key_watch {
        task.abort();
    }
    info!(
        lease_flushed = flushed,
        "stopped: virtual addresses and the virtual interface removed"
    );
    Ok(())
}

/// The IFA_PROTO check (refuse to run when the kernel drops it), on the virtual interface.
async fn check_kernel(netlink: &Netlink, config: &AgentConfig) -> Result<()> {
    netlink
        .ensure_virtual_interface(&config.virtual_interface)
        .await?;
    netlink
        .check_address_protocol(&config.virtual_interface, PROTO_PROBE_ADDRESS)
        .await
}

/// Until the next look at the local addresses: a sixth of their lifetime. The diff renews once
/// a third has passed, but the kernel reports lifetimes in whole seconds, rounded down, so a
/// tick of exactly a third could see "not yet" and renew only at two thirds. Without settings
/// yet, the shortest lifetime's.
fn renewal_wait(config: Option<&AgentConfig>) -> Duration {
    renewal_period(config.map_or(3, |c| c.local_address_lifetime)) / 2
}

/// The loop's next turn: the renewal tick, a retry if one comes sooner, and never later than
/// [`MAX_IDLE`]. A retry's back-off never pushes a renewal back.
fn next_wait(renew_in: Duration, retry_in: Option<Duration>) -> Duration {
    retry_in.map_or(renew_in, |r| r.min(renew_in)).min(MAX_IDLE)
}

/// Logs and posts (once each, again when it changes) every LBNodeAgent the agent set aside;
/// says so when one is usable again.
fn report_rejected(ctx: &Context, rejected: &[Rejected]) {
    let now: BTreeSet<String> = rejected.iter().map(ToString::to_string).collect();
    let mut reported = ctx.rejected.lock().unwrap_or_else(|p| p.into_inner());
    if *reported == now {
        return;
    }
    for r in rejected {
        if !reported.contains(&r.to_string()) {
            warn!(lbnodeagent = r.agent, problem = %r, "LBNodeAgent ignored: it does not parse");
            ctx.events.invalid_agent(r);
        }
    }
    for gone in reported.difference(&now) {
        info!(was = gone, "an LBNodeAgent ignored before is fixed or gone");
    }
    *reported = now;
}

fn step(backoff: &mut Duration) -> Duration {
    let now = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 item 11: after a failed round the loop backed off up to 300 s and the local
    /// addresses, renewed only in rounds, expired. The back-off may bring a turn forward,
    /// never push a renewal back.
    #[test]
    fn a_back_off_never_pushes_a_renewal_back() {
        let ms = Duration::from_millis;
        let renew = renewal_wait(None);
        let cases = [
            ("at rest", renew, None, renew),
            ("a retry due later", renew, Some(BACKOFF_MAX), renew),
            ("a retry due sooner", renew, Some(BACKOFF_MIN), BACKOFF_MIN),
            (
                "a long lifetime still beats",
                ms(55 * 3600 * 1000),
                None,
                MAX_IDLE,
            ),
        ];
        for (name, renew_in, retry_in, want) in cases {
            assert_eq!(next_wait(renew_in, retry_in), want, "{name}");
        }
        assert_eq!(renew, ms(500), "3 s lifetime: a look every 500 ms");
    }
}
