//! Running chitchat on the node's LAN address with the authenticated transport: publish what
//! this node is and holds, read back who is alive and what they hold.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat};
use ferrolb_api::contracts::{IneligibleReason, gossip};
use tokio::sync::watch;

use super::auth::{AuthCounters, AuthenticatedUdp, GossipKeys};
use super::view::{Peer, Published, decode, encode};

/// How gossip runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name (`Node.metadata.name`).
    pub node: String,
    /// The node's LAN address and the gossip port: never a management network.
    pub listen: SocketAddr,
    /// Other nodes' gossip addresses (from their per-node Leases).
    pub seeds: Vec<SocketAddr>,
    pub interval: Duration,
    /// Failure detector: phi above which a silent node is dead. With 50 ms gossip, 5 marks a
    /// crashed node dead in roughly half a second.
    pub phi_threshold: f64,
    /// Failure detector: heartbeat intervals longer than this are not sampled.
    pub max_interval: Duration,
}

impl Settings {
    pub fn new(node: &str, listen: SocketAddr, seeds: Vec<SocketAddr>) -> Self {
        Self {
            node: node.to_string(),
            listen,
            seeds,
            interval: gossip::INTERVAL,
            phi_threshold: 5.0,
            max_interval: Duration::from_secs(2),
        }
    }
}

/// A running gossip member.
pub struct Membership {
    handle: ChitchatHandle,
    node: String,
}

impl Membership {
    /// Starts gossip. Refuses without keys: gossip is never unauthenticated.
    pub async fn start(
        settings: Settings,
        keys: Arc<RwLock<GossipKeys>>,
        counters: AuthCounters,
    ) -> anyhow::Result<Self> {
        // A new generation per start, so peers tell a restarted agent from its ghost.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(settings.node.clone(), generation, settings.listen),
            cluster_id: gossip::CLUSTER_ID.to_string(),
            gossip_interval: settings.interval,
            listen_addr: settings.listen,
            seed_nodes: settings.seeds.iter().map(ToString::to_string).collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: settings.phi_threshold,
                initial_interval: settings.interval,
                max_interval: settings.max_interval,
                dead_node_grace_period: Duration::from_secs(3600),
                ..Default::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let transport = AuthenticatedUdp::new(&settings.node, keys, counters);
        let not_yet = Published {
            ineligible: Some(IneligibleReason::NotReady),
            ..Default::default()
        };
        let handle =
            spawn_chitchat(config, encode(&not_yet).into_iter().collect(), &transport).await?;
        Ok(Self {
            handle,
            node: settings.node,
        })
    }

    /// Publishes `p`: sets every key and deletes `h/` keys of addresses no longer held.
    pub async fn publish(&self, p: &Published) {
        let want = encode(p);
        let chitchat = self.handle.chitchat();
        let mut guard = chitchat.lock().await;
        let state = guard.self_node_state();
        let stale: Vec<String> = state
            .key_values()
            .map(|(k, _)| k.to_string())
            .filter(|k| k.starts_with(gossip::KEY_HOLDING_PREFIX) && !want.contains_key(k))
            .collect();
        for k in stale {
            state.delete(&k);
        }
        for (k, v) in want {
            if state.get(&k) != Some(v.as_str()) {
                state.set(k, v);
            }
        }
    }

    /// Gossips with more peers (e.g. new per-node Leases).
    pub fn contact(&self, peers: &[SocketAddr]) {
        for p in peers {
            let _ = self.handle.gossip(*p);
        }
    }

    /// Every node this member knows of, alive or not, with what it published. A node known
    /// under several generations is alive if any generation is; it shows what its newest
    /// generation published.
    pub async fn peers(&self) -> Vec<Peer> {
        let chitchat = self.handle.chitchat();
        let guard = chitchat.lock().await;
        let live: BTreeSet<ChitchatId> = guard.live_nodes().cloned().collect();
        let mut by_name: BTreeMap<String, (u64, Peer)> = BTreeMap::new();
        for (id, state) in guard.node_states() {
            // Live only once its key-values are here too: the failure detector can call a
            // node live from a digest before the delta with its keys arrives, and a node seen
            // without its `h/` keys would look as if it held nothing.
            let heard = state.get(gossip::KEY_ELIGIBLE).is_some();
            let alive = live.contains(id) && heard;
            let published = decode(state.key_values());
            let entry = by_name.entry(id.node_id.to_string()).or_insert_with(|| {
                (
                    0,
                    Peer {
                        name: id.node_id.to_string(),
                        alive: false,
                        heard: false,
                        addr: None,
                        published: Published::default(),
                    },
                )
            });
            entry.1.alive |= alive;
            entry.1.heard |= heard;
            if id.generation_id >= entry.0 {
                entry.0 = id.generation_id;
                entry.1.addr = Some(id.gossip_advertise_addr);
                entry.1.published = published;
            }
        }
        by_name.into_values().map(|(_, p)| p).collect()
    }

    /// Fires whenever the set of live nodes or their state changes.
    pub async fn changes(&self) -> watch::Receiver<BTreeMap<ChitchatId, chitchat::NodeState>> {
        self.handle.chitchat().lock().await.live_nodes_watcher()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stops at once, saying nothing more (a rejoin starts a new member right after).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.shutdown().await
    }

    /// chitchat has no leave message: publish `eligible=false,stopping` with no `h/` keys,
    /// give the others a few gossip rounds to hear it, then stop.
    pub async fn leave(self, rounds: u32, interval: Duration) -> anyhow::Result<()> {
        self.publish(&Published {
            ineligible: Some(IneligibleReason::Stopping),
            ..Default::default()
        })
        .await;
        tokio::time::sleep(interval * rounds).await;
        self.handle.shutdown().await
    }
}
