//! Gossip membership with real chitchat over the authenticated transport (loopback): what a
//! node publishes reaches the others; a leaving node says so; a crashed one is declared dead.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::IneligibleReason;
use ferrolb_lbnodeagent::gossip::auth::{AuthCounters, GossipKeys};
use ferrolb_lbnodeagent::gossip::membership::{Membership, Settings};
use ferrolb_lbnodeagent::gossip::view::{Peer, Published};

const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c2b7e151628aed2a6abf7158809cf4f3c";

fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback port")
}

async fn member(name: &str, listen: SocketAddr, seeds: Vec<SocketAddr>) -> Membership {
    let keys = GossipKeys::from_secret(Some(KEY.as_bytes()), None).expect("key");
    Membership::start(
        Settings::new(name, listen, seeds),
        Arc::new(RwLock::new(keys)),
        AuthCounters::default(),
    )
    .await
    .expect("gossip starts")
}

async fn wait_peer(m: &Membership, name: &str, what: &str, ok: impl Fn(&Peer) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let peers = m.peers().await;
        if peers.iter().any(|p| p.name == name && ok(p)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}: {name} never {what}: {peers:?}",
            m.node()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holding(addr: &str) -> Published {
    Published {
        ineligible: None,
        subnets: ["192.0.2.0/24".parse().expect("cidr")].into(),
        macs: [("eth0".to_string(), "02:00:00:00:00:0a".to_string())].into(),
        holding: [addr.parse().expect("ip")].into(),
    }
}

#[tokio::test]
async fn publishes_leaves_and_detects_a_crash() {
    let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
    let a = member("node-a", a_addr, vec![b_addr, c_addr]).await;
    let b = member("node-b", b_addr, vec![a_addr]).await;
    let c = member("node-c", c_addr, vec![a_addr]).await;
    b.publish(&holding("192.0.2.100")).await;
    wait_peer(&a, "node-b", "published its holding", |p| {
        p.alive
            && p.published.ineligible.is_none()
            && p.published
                .holding
                .contains(&"192.0.2.100".parse().expect("ip"))
    })
    .await;
    wait_peer(&c, "node-b", "published its holding", |p| {
        !p.published.holding.is_empty()
    })
    .await;

    // Letting go of an address clears its h/ key everywhere.
    b.publish(&Published {
        holding: Default::default(),
        ..holding("192.0.2.100")
    })
    .await;
    wait_peer(&a, "node-b", "cleared its h/ key", |p| {
        p.published.holding.is_empty()
    })
    .await;

    // A graceful leave: stopping, nothing held.
    b.publish(&holding("192.0.2.101")).await;
    wait_peer(&a, "node-b", "published again", |p| {
        !p.published.holding.is_empty()
    })
    .await;
    let leave = tokio::spawn(b.leave(5, Duration::from_millis(50)));
    let heard = wait_peer(&a, "node-b", "said it is stopping", |p| {
        p.published.ineligible == Some(IneligibleReason::Stopping) && p.published.holding.is_empty()
    })
    .await;
    leave.await.expect("join").expect("leave");
    println!("stopping heard after {heard:?}");

    // A crash (no goodbye): the failure detector declares node-c dead.
    drop(c);
    let dead = wait_peer(&a, "node-c", "was declared dead", |p| !p.alive).await;
    println!("crash detected after {dead:?}");
    assert!(
        dead < Duration::from_secs(5),
        "crash detection took {dead:?}"
    );
}
