//! Leader election by the book: a leader whose API connection hangs stops writing within its
//! renew deadline, and another holder's Lease is judged by when it changed, never by the
//! writer's clock.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::{ALLOCATOR_LEASE, ALLOCATOR_RENEW_DEADLINE};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

fn lease_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Lease>(&()))
}

/// The leader Lease's holder, read untyped (the tests write renewTimes of every kind).
async fn holder(env: &Env) -> Option<String> {
    let l = lease_api(&env.client, env.name())
        .get_opt(ALLOCATOR_LEASE)
        .await
        .ok()??;
    l.data["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

async fn wait_holder(env: &Env, who: &str) {
    eventually(&format!("{who} to hold the leader Lease"), || async {
        (holder(env).await.as_deref() == Some(who)).then_some(())
    })
    .await;
}

/// A TCP proxy to the API server that can stop forwarding: bytes in either direction are
/// swallowed and connections are held open, as a hung API server or a silent network does.
struct Proxy {
    port: u16,
    hung: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let hung = Arc::new(AtomicBool::new(false));
        let h = hung.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let h = h.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, h.clone()), pipe(sr, cw, h));
                });
            }
        });
        Proxy { port, hung, task }
    }

    fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    /// A copy of `env`'s kubeconfig that reaches the API server through this proxy.
    fn kubeconfig(&self, env: &Env) -> PathBuf {
        let text = std::fs::read_to_string(env.cp.kubeconfig()).expect("the kubeconfig");
        let direct = format!(":{}\n", env.cp.port());
        assert!(text.contains(&direct), "the server line ends with the port");
        let path = std::env::temp_dir().join(format!("ferrolb-{}-proxied.kubeconfig", env.name()));
        std::fs::write(&path, text.replace(&direct, &format!(":{}\n", self.port)))
            .expect("write the kubeconfig");
        path
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hung: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hung.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if hung.load(Ordering::SeqCst) {
        // A hung peer says nothing, not even goodbye.
        std::future::pending::<()>().await;
    }
}

#[tokio::test]
async fn a_leader_whose_api_connection_hangs_stops_within_its_renew_deadline() {
    let Some(env) = env("election-hang").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(&[("192.0.2.0/24", "192.0.2.170-192.0.2.179")], &[]),
    )
    .await;
    let proxy = Proxy::start(env.cp.port()).await;
    let mut one = env.allocator_via("one", true, &[], &proxy.kubeconfig(&env));
    wait_holder(&env, "one").await;
    let mut two = env.allocator("two", true);
    env.apply_svc(&svc("s0").group(&g)).await;
    let first = env.wait_any_ips("s0", 1).await;
    // The leader's connection hangs: no error, no answer.
    let hung_at = Instant::now();
    proxy.hang();
    let bound = ALLOCATOR_RENEW_DEADLINE + Duration::from_secs(3);
    while !one.exited() {
        assert!(
            hung_at.elapsed() < bound,
            "the leader still runs {:?} after its API connection hung; it must stop within its renew deadline ({ALLOCATOR_RENEW_DEADLINE:?})",
            hung_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        one.log().contains("renew deadline"),
        "the leader says why it stopped"
    );
    // The follower takes over once the Lease it saw last has been unchanged for its duration,
    // and serves new Services, never giving out an address twice.
    env.apply_svc(&svc("s1").group(&g)).await;
    wait_holder(&env, "two").await;
    let second = env.wait_any_ips("s1", 1).await;
    let all: BTreeSet<&String> = first.iter().chain(&second).collect();
    assert_eq!(all.len(), 2, "{first:?} {second:?}");
    assert!(!two.exited());
}

/// Writes the leader Lease as another replica `who` would, with `renew` as its renewTime.
async fn write_as(client: &Client, ns: &str, who: &str, renew: Timestamp) {
    let stamp = renew.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": ALLOCATOR_LEASE },
        "spec": { "holderIdentity": who, "leaseDurationSeconds": 15,
                  "acquireTime": stamp, "renewTime": stamp },
    });
    lease_api(client, ns)
        .patch(
            ALLOCATOR_LEASE,
            &PatchParams::apply(who).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("the API server accepts the Lease");
}

#[tokio::test]
async fn another_holders_lease_is_judged_by_when_it_changed_not_by_its_clock() {
    let Some(env) = env("election-skew").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(
        &g,
        local(&[("192.0.2.0/24", "192.0.2.180-192.0.2.189")], &[]),
    )
    .await;
    // A live replica whose clock is an hour behind: every renewTime it writes looks long
    // expired, yet it renews every 2 s.
    let hour = SignedDuration::from_secs(3600);
    let (client, ns) = (env.client.clone(), env.name().to_string());
    write_as(&client, &ns, "behind", Timestamp::now() - hour).await;
    let behind = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            write_as(&client, &ns, "behind", Timestamp::now() - hour).await;
        }
    });
    let _one = env.allocator("one", true);
    env.apply_svc(&svc("s0").group(&g)).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        holder(&env).await.as_deref(),
        Some("behind"),
        "a renewing holder keeps the Lease whatever its clock says"
    );
    assert!(env.ips("s0").await.is_empty(), "only the leader allocates");
    // It stops, and its last write says it renewed in the year 3000.
    behind.abort();
    write_as(
        &env.client,
        env.name(),
        "behind",
        "3000-01-01T00:00:00Z".parse().expect("a timestamp"),
    )
    .await;
    let stopped = Instant::now();
    wait_holder(&env, "one").await;
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_secs(14),
        "taken {waited:?} after the last change; a Lease stays valid for its duration from when it was seen to change"
    );
    env.wait_any_ips("s0", 1).await;
}
