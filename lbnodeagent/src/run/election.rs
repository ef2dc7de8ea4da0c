//! The election in the running agent: gossip on the node's LAN address, the view each round
//! decides with, and what this node publishes back after the round.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::gossip::auth::{AuthCounters, GossipKeys};
use crate::gossip::leases::LeaseClock;
use crate::gossip::membership::{Membership, Settings};
use crate::gossip::view::{Peer, Published, View, settled};
use crate::metrics::Metrics;

/// Gossip tuning (the failure detector); the defaults are [`Settings::new`]'s.
#[derive(Clone, Debug)]
pub struct GossipTuning {
    pub interval: Duration,
    pub phi_threshold: f64,
    pub max_interval: Duration,
}

impl Default for GossipTuning {
    fn default() -> Self {
        let s = Settings::new("", SocketAddr::from(([0, 0, 0, 0], 0)), Vec::new());
        Self {
            interval: s.interval,
            phi_threshold: s.phi_threshold,
            max_interval: s.max_interval,
        }
    }
}

/// Who holds a local address this node is a candidate for.
#[derive(Clone, Debug)]
pub enum Holder {
    /// This node, always: no gossip (tests of a single node without the Secret).
    Always,
    /// The holder elected over gossip (Contracts: election hash, break before make).
    Elected(GossipTuning),
}

/// Rounds of gossip a stopping agent keeps talking after it said `stopping`.
const LEAVE_ROUNDS: u32 = 5;

/// The election's state across rounds.
pub(crate) struct Election {
    node: String,
    tuning: Option<GossipTuning>,
    keys: Option<Arc<RwLock<GossipKeys>>>,
    counters: AuthCounters,
    wake: Arc<Notify>,
    member: Option<Member>,
    /// This node was eligible after the last round.
    was_eligible: bool,
    /// When this agent saw each per-node Lease renewed (liveness on its own clock).
    leases: LeaseClock,
    /// The last round's view had settled (to log the changes).
    was_settled: bool,
}

struct Member {
    membership: Membership,
    listen: SocketAddr,
    started: Instant,
    contacted: BTreeSet<SocketAddr>,
    _watch: AbortOnDrop,
}

/// The task that wakes the loop on gossip changes ends with its membership.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a round decides with.
pub(crate) enum Decider {
    Always,
    /// `None` before gossip runs: claim nothing.
    Elected(Option<View>),
}

impl Decider {
    /// This node should have `addr` now. `on_kernel`: the local addresses it has now.
    pub fn holds(
        &self,
        addr: IpAddr,
        endpoint_nodes: Option<&BTreeSet<String>>,
        on_kernel: &BTreeSet<IpAddr>,
    ) -> bool {
        match self {
            Decider::Always => true,
            Decider::Elected(view) => view
                .as_ref()
                .is_some_and(|v| v.should_hold(addr, endpoint_nodes, on_kernel.contains(&addr))),
        }
    }

    /// A node that is not live in gossip (crashed, or cut off) still published `addr`, on
    /// gossip or on its Lease: its copy may linger until its lifetime ends, so this node
    /// probes before it adds it.
    pub fn lingering(&self, addr: IpAddr) -> bool {
        match self {
            Decider::Elected(Some(v)) => {
                v.peers
                    .iter()
                    .any(|p| p.name != v.me && !p.alive && p.published.holding.contains(&addr))
                    || v.unheard().any(|n| n.may_hold(addr))
            }
            _ => false,
        }
    }

    /// The LAN MACs every node in the gossip view published, live or not.
    pub fn macs(&self) -> Vec<(String, String)> {
        match self {
            Decider::Elected(Some(v)) => v
                .peers
                .iter()
                .flat_map(|p| {
                    p.published
                        .macs
                        .values()
                        .map(|m| (m.clone(), p.name.clone()))
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Election {
    /// `keys` must be there for [`Holder::Elected`].
    pub fn new(
        node: &str,
        holder: Holder,
        keys: Option<Arc<RwLock<GossipKeys>>>,
        metrics: &Metrics,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            node: node.to_string(),
            tuning: match holder {
                Holder::Always => None,
                Holder::Elected(t) => Some(t),
            },
            keys,
            counters: metrics.gossip_counters(),
            wake,
            member: None,
            was_eligible: false,
            leases: LeaseClock::default(),
            was_settled: false,
        }
    }

    /// The view for this round. `subnets` and `on_kernel`: this node's own facts now (fresher
    /// than what it last gossiped); it is asked only while eligible.
    pub async fn decider(
        &mut self,
        subnets: &BTreeSet<IpNetwork>,
        on_kernel: &BTreeSet<IpAddr>,
        leases: &[Arc<Lease>],
        settle: Duration,
        metrics: &Metrics,
    ) -> Decider {
        if self.tuning.is_none() {
            return Decider::Always;
        }
        let Some(member) = &self.member else {
            return Decider::Elected(None);
        };
        let mut peers: Vec<Peer> = member
            .membership
            .peers()
            .await
            .into_iter()
            .filter(|p| p.name != self.node)
            .collect();
        metrics.live_peers(peers.iter().filter(|p| p.alive).count());
        let heard_from: BTreeSet<String> = peers
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.name.clone())
            .chain([self.node.clone()])
            .collect();
        let leased = self.leases.alive(leases, &self.node, Timestamp::now());
        let fresh: BTreeSet<String> = leased.iter().map(|n| n.node.clone()).collect();
        // Not eligible after the last round: this may be the round it (re)joins in, on the
        // view of the member that ran while it was out; it claims nothing before the member
        // that the end of this round starts anew has settled (see `publish`).
        let settled = self.was_eligible
            && settled(
                &self.node,
                member.started,
                Instant::now(),
                settle,
                &fresh,
                &heard_from,
            );
        if settled != self.was_settled {
            let waiting: Vec<&String> = fresh.difference(&heard_from).collect();
            let view: Vec<String> = peers
                .iter()
                .map(|p| format!("{}:{}:{:?}", p.name, p.alive, p.published.holding))
                .collect();
            info!(settled, ?waiting, ?view, "gossip view");
            self.was_settled = settled;
        }
        peers.push(Peer {
            name: self.node.clone(),
            alive: true,
            heard: true,
            addr: self.member.as_ref().map(|m| m.listen),
            published: Published {
                ineligible: None,
                subnets: subnets.clone(),
                macs: Default::default(),
                holding: on_kernel.clone(),
            },
        });
        Decider::Elected(Some(View {
            me: self.node.clone(),
            peers,
            settled,
            leases: leased,
        }))
    }

    /// After a round: gossip runs on `listen` (started, or moved), knows the nodes of the fresh
    /// Leases, and carries `published`.
    ///
    /// A node that becomes eligible again (carrier back, label removed, Ready again) starts
    /// gossip anew: the old member's view of the others is what it heard before it went out,
    /// and chitchat calls a peer live again from a digest (its heartbeat) one exchange before
    /// its new key-values arrive. A new member knows a peer only with its key-values, so
    /// "heard from everyone" means the same after a rejoin as after a start.
    pub async fn publish(
        &mut self,
        listen: Option<SocketAddr>,
        published: &Published,
        leases: &[Arc<Lease>],
    ) {
        let eligible = published.ineligible.is_none();
        let rejoining = eligible && !self.was_eligible;
        self.was_eligible = eligible;
        let Some(tuning) = self.tuning.clone() else {
            return;
        };
        if rejoining && let Some(old) = self.member.take() {
            info!("eligible again: gossip starts anew, so the view holds only what it hears now");
            if let Err(e) = old.membership.stop().await {
                warn!(error = %e, "stopping gossip failed");
            }
        }
        let seeds: BTreeSet<SocketAddr> = self
            .leases
            .alive(leases, &self.node, Timestamp::now())
            .into_iter()
            .filter(|n| n.node != self.node)
            .filter_map(|n| n.gossip_addr)
            .collect();
        if let Some(listen) = listen
            && self.member.as_ref().is_none_or(|m| m.listen != listen)
        {
            if let Some(old) = self.member.take() {
                warn!(from = %old.listen, to = %listen, "the LAN address changed; gossip moves");
                if let Err(e) = old.membership.leave(1, tuning.interval).await {
                    warn!(error = %e, "stopping gossip failed");
                }
            }
            self.member = self.start(listen, &tuning, &seeds).await;
        }
        let Some(member) = &mut self.member else {
            return;
        };
        let new: Vec<SocketAddr> = seeds.difference(&member.contacted).copied().collect();
        if !new.is_empty() {
            member.membership.contact(&new);
            member.contacted.extend(new);
        }
        member.membership.publish(published).await;
    }

    async fn start(
        &self,
        listen: SocketAddr,
        tuning: &GossipTuning,
        seeds: &BTreeSet<SocketAddr>,
    ) -> Option<Member> {
        let keys = self.keys.clone()?;
        let mut settings = Settings::new(&self.node, listen, seeds.iter().copied().collect());
        settings.interval = tuning.interval;
        settings.phi_threshold = tuning.phi_threshold;
        settings.max_interval = tuning.max_interval;
        let membership = match Membership::start(settings, keys, self.counters.clone()).await {
            Ok(m) => m,
            Err(e) => {
                warn!(%listen, error = %e, "cannot start gossip; retrying next round");
                return None;
            }
        };
        info!(%listen, seeds = seeds.len(), "gossip started");
        let mut changes = membership.changes().await;
        let wake = self.wake.clone();
        let watch = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                wake.notify_one();
            }
        });
        Some(Member {
            membership,
            listen,
            started: Instant::now(),
            contacted: seeds.clone(),
            _watch: AbortOnDrop(watch),
        })
    }

    /// The graceful end: say `stopping` with nothing held, gossip a few more rounds, stop.
    pub async fn leave(&mut self) {
        let Some(member) = self.member.take() else {
            return;
        };
        let interval = self.tuning.as_ref().map_or(Duration::ZERO, |t| t.interval);
        info!(rounds = LEAVE_ROUNDS, "leaving gossip");
        if let Err(e) = member.membership.leave(LEAVE_ROUNDS, interval).await {
            warn!(error = %e, "stopping gossip failed");
        }
    }
}
