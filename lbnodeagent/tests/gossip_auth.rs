//! Authenticated gossip with real chitchat nodes: nodes sharing the key see each other; a node
//! with a wrong key, unsigned chitchat and garbage inject no node, key or heartbeat, and every
//! such datagram is counted. Runs on loopback in the test process.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chitchat::transport::UdpTransport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, ChitchatMessage, FailureDetectorConfig,
    Serializable, spawn_chitchat,
};
use ferrolb_lbnodeagent::gossip::auth::{AuthCounters, AuthenticatedUdp, GossipKeys};

const KEY: &str = "8f3a0c1d2e4b5a69788796a5b4c3d2e100112233445566778899aabbccddeeff";
const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback port")
}

fn config(name: &str, addr: SocketAddr, seeds: &[SocketAddr]) -> ChitchatConfig {
    ChitchatConfig {
        chitchat_id: ChitchatId::new(name, 1, addr),
        cluster_id: "ferrolb".into(),
        gossip_interval: Duration::from_millis(50),
        listen_addr: addr,
        seed_nodes: seeds.iter().map(ToString::to_string).collect(),
        failure_detector_config: FailureDetectorConfig {
            initial_interval: Duration::from_millis(50),
            ..Default::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(60),
        catchup_callback: None,
        extra_liveness_predicate: None,
    }
}

async fn node(
    name: &str,
    addr: SocketAddr,
    seeds: &[SocketAddr],
    key: &str,
) -> (ChitchatHandle, AuthCounters) {
    let keys = GossipKeys::from_secret(Some(key.as_bytes()), None).expect("test key");
    let counters = AuthCounters::default();
    let transport = AuthenticatedUdp::new(Arc::new(RwLock::new(keys)), counters.clone());
    let handle = spawn_chitchat(
        config(name, addr, seeds),
        vec![(format!("h/{name}"), "x".into())],
        &transport,
    )
    .await
    .expect("chitchat starts");
    (handle, counters)
}

async fn live_names(h: &ChitchatHandle) -> Vec<String> {
    let chitchat = h.chitchat();
    let guard = chitchat.lock().await;
    let mut names: Vec<String> = guard
        .live_nodes()
        .map(|id| id.node_id.to_string())
        .collect();
    names.sort();
    names
}

async fn known_keys(h: &ChitchatHandle) -> Vec<String> {
    let chitchat = h.chitchat();
    let guard = chitchat.lock().await;
    let snapshot = guard.state_snapshot();
    snapshot
        .node_states
        .iter()
        .flat_map(|s| {
            s.key_values()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn only_nodes_with_the_key_join_and_rogue_datagrams_are_dropped_and_counted() {
    let (a_addr, b_addr, rogue_addr, plain_addr) =
        (free_addr(), free_addr(), free_addr(), free_addr());
    let (a, a_counters) = node("node-a", a_addr, &[b_addr], KEY).await;
    let (b, _) = node("node-b", b_addr, &[a_addr], KEY).await;
    // A rogue with the wrong key, and a rogue speaking plain (unsigned) chitchat.
    let (rogue, _) = node("rogue-key", rogue_addr, &[a_addr, b_addr], WRONG).await;
    let plain = spawn_chitchat(
        config("rogue-plain", plain_addr, &[a_addr, b_addr]),
        vec![("h/192.0.2.10".into(), "x".into())],
        &UdpTransport,
    )
    .await
    .expect("plain chitchat starts");

    // The two real nodes find each other.
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_names(&a).await != ["node-a", "node-b"] {
        assert!(
            Instant::now() < deadline,
            "node-a sees {:?}",
            live_names(&a).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Garbage and a forged Syn without a MAC, straight at node-a.
    let raw = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let forged = ChitchatMessage::BadCluster.serialize_to_vec();
    for payload in [&b"garbage"[..], &forged[..], &[0u8; 40][..]] {
        raw.send_to(payload, a_addr).expect("send");
    }
    // Give the rogues many gossip rounds to try.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for h in [&a, &b] {
        assert_eq!(live_names(h).await, ["node-a", "node-b"], "a rogue joined");
        let keys = known_keys(h).await;
        assert!(
            keys.iter().all(|k| k == "h/node-a" || k == "h/node-b"),
            "a rogue injected keys: {keys:?}"
        );
    }
    let rejected = a_counters.rejected.get();
    assert!(
        rejected >= 3 + 10,
        "only {rejected} datagrams were rejected"
    );
    assert!(a_counters.accepted.get() > 0);
    for h in [a, b, rogue, plain] {
        h.shutdown().await.expect("chitchat stops");
    }
}

#[tokio::test]
async fn a_rotated_key_keeps_old_and_new_nodes_together() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    // node-a already has the new key with the old one as previousKey; node-b still the old.
    let keys = GossipKeys::from_secret(Some(WRONG.as_bytes()), Some(KEY.as_bytes())).expect("keys");
    let counters = AuthCounters::default();
    let transport = AuthenticatedUdp::new(Arc::new(RwLock::new(keys)), counters.clone());
    let a = spawn_chitchat(config("node-a", a_addr, &[b_addr]), vec![], &transport)
        .await
        .expect("chitchat");
    // node-b must accept node-a's new key too: it has been rolled the other way round.
    let keys_b =
        GossipKeys::from_secret(Some(KEY.as_bytes()), Some(WRONG.as_bytes())).expect("keys");
    let transport_b = AuthenticatedUdp::new(Arc::new(RwLock::new(keys_b)), AuthCounters::default());
    let b = spawn_chitchat(config("node-b", b_addr, &[a_addr]), vec![], &transport_b)
        .await
        .expect("chitchat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_names(&a).await != ["node-a", "node-b"]
        || live_names(&b).await != ["node-a", "node-b"]
    {
        assert!(
            Instant::now() < deadline,
            "a sees {:?}, b sees {:?}",
            live_names(&a).await,
            live_names(&b).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counters.rejected.get(), 0);
    a.shutdown().await.expect("stop");
    b.shutdown().await.expect("stop");
}
