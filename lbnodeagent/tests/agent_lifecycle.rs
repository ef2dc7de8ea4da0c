//! The real `ferrolb-agent` binary in node namespaces against the real API server: graceful
//! stop, crash and restart, Events for failed announcements, Lease renewal.

mod world;

use std::time::{Duration, Instant};

use ferrolb_api::contracts::{CLUSTER_EVENTS_NAMESPACE, lease, reason};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use world::{World, settings};

#[tokio::test]
async fn sigterm_withdraws_local_addresses_at_once_and_virtual_ones_after_the_drain() {
    let Some(mut w) = World::new("at", "sigterm", settings("5s", "2s")).await else {
        return;
    };
    w.sh(
        w.node_ns(0),
        &["ip", "addr", "add", "192.0.2.78/24", "dev", "eth0"],
    );
    w.start_agent(0);
    let (local, virtual_) = (w.local_group(), w.virtual_group());
    w.service("lan", &local, &["192.0.2.104"], false).await;
    w.service("routed", &virtual_, &["203.0.113.49"], false)
        .await;
    w.eventually("both addresses are there", || {
        w.has(0, "eth0", "192.0.2.104/24") && w.has(0, "kube-lb0", "203.0.113.49/28")
    })
    .await;

    w.agent(0).signal("TERM").expect("SIGTERM");
    let stopped = Instant::now();
    w.eventually_within("the local address is gone", Duration::from_secs(2), || {
        !w.addrs(0, "eth0").contains("192.0.2.104/")
    })
    .await;
    assert!(
        w.has(0, "kube-lb0", "203.0.113.49/28"),
        "the virtual address left before the drain"
    );
    w.eventually_async("the Lease says stopping", || async {
        w.lease(0)
            .await
            .and_then(|l| l.metadata.annotations)
            .is_some_and(|a| a.get(lease::ELIGIBLE).map(String::as_str) == Some("false,stopping"))
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "the Lease said stopping only after the drain"
    );

    w.eventually("the virtual address and kube-lb0 are gone", || {
        w.sh(w.node_ns(0), &["ip", "link", "show", "kube-lb0"])
            .is_empty()
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        stopped.elapsed()
    );
    let deadline = Instant::now() + world::TIMEOUT;
    let status = loop {
        if let Some(status) = w.agent(0).exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit\n{}",
            w.logs()
        );
        tokio::time::sleep(world::STEP).await;
    };
    assert!(status.success(), "{status}\n{}", w.logs());
    assert!(
        w.has(0, "eth0", "192.0.2.78/24"),
        "the hand-made address went"
    );
}

#[tokio::test]
async fn after_sigkill_local_addresses_expire_and_a_restart_converges() {
    let Some(mut w) = World::new("ak", "sigkill", settings("3s", "5s")).await else {
        return;
    };
    w.start_agent(0);
    let (local, virtual_) = (w.local_group(), w.virtual_group());
    w.service("lan", &local, &["192.0.2.105"], false).await;
    w.service("keep", &virtual_, &["203.0.113.49"], false).await;
    w.service("drop", &virtual_, &["203.0.113.50"], false).await;
    w.eventually("all three are there", || {
        w.has(0, "eth0", "192.0.2.105/24")
            && w.has(0, "kube-lb0", "203.0.113.49/28")
            && w.has(0, "kube-lb0", "203.0.113.50/28")
    })
    .await;

    w.agent(0).kill();
    // Lifetime 3 s; the kernel's expiry works in whole seconds.
    w.eventually_within(
        "the dead agent's local address expires",
        Duration::from_secs(6),
        || !w.addrs(0, "eth0").contains("192.0.2.105/"),
    )
    .await;
    assert!(
        w.has(0, "kube-lb0", "203.0.113.50/28"),
        "virtual addresses stay without the agent"
    );

    w.delete_service("drop").await;
    w.start_agent(0);
    w.eventually("the restarted agent converges", || {
        w.has(0, "eth0", "192.0.2.105/24")
            && w.has(0, "kube-lb0", "203.0.113.49/28")
            && !w.addrs(0, "kube-lb0").contains("203.0.113.50/")
    })
    .await;
}

#[tokio::test]
async fn a_failed_announcement_is_an_event_on_the_node_and_is_retried() {
    let Some(mut w) = World::new("af", "announce-failed", settings("5s", "5s")).await else {
        return;
    };
    w.start_agent(0);
    let group = w.virtual_group();
    w.service("v4", &group, &["203.0.113.1"], false).await;
    w.eventually("kube-lb0 is there", || {
        w.has(0, "kube-lb0", "203.0.113.1/28")
    })
    .await;
    let ns = w.node_ns(0).to_string();
    let sysctl = |value: &str| {
        let setting = format!("net.ipv6.conf.kube-lb0.disable_ipv6={value}");
        w.topo
            .run(&ns, &["sysctl", "-q", "-w", &setting])
            .expect("sysctl");
    };
    // The kernel refuses IPv6 addresses on an interface with IPv6 disabled.
    sysctl("1");
    w.service("v6", &group, &["2001:db8:ff::1"], false).await;
    let events: Api<Event> = Api::namespaced(w.client.clone(), CLUSTER_EVENTS_NAMESPACE);
    let node = w.nodes[0].clone();
    w.eventually_async("an AnnouncementFailed Event names the address", || async {
        let list = events.list(&Default::default()).await.expect("list Events");
        list.items.iter().any(|e| {
            e.reason.as_deref() == Some(reason::ANNOUNCEMENT_FAILED)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(node.as_str())
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Node")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("2001:db8:ff::1/64") && n.contains("kube-lb0"))
        })
    })
    .await;
    assert!(
        w.has(0, "kube-lb0", "203.0.113.1/28"),
        "one failure must not stop the others"
    );

    sysctl("0");
    w.eventually("the retry adds it", || {
        w.has(0, "kube-lb0", "2001:db8:ff::1/64")
    })
    .await;
    assert!(
        !w.metrics(0)
            .contains("ferrolb_agent_netlink_errors_total 0"),
        "the failure is counted"
    );

    // The Lease is renewed every 5 s whether or not anything changes.
    let renewed = || async {
        w.lease(0)
            .await
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time)
            .map(|t| t.0)
    };
    let first = renewed().await.expect("a renewTime");
    let start = Instant::now();
    while renewed().await == Some(first) {
        assert!(
            start.elapsed() < Duration::from_secs(7),
            "the Lease was not renewed"
        );
        tokio::time::sleep(world::STEP).await;
    }
}

/// `curl` in node `i`'s namespace: (HTTP status, body); status 0 when nothing answers.
fn http(w: &World, i: usize, url: &str) -> (u16, String) {
    let out = w
        .topo
        .exec(
            w.node_ns(i),
            &["curl", "-s", "-m", "2", "-w", "\n%{http_code}", url],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Issue 16 items 11 and 16: a change that keeps failing backs off on its own while the local
/// addresses keep their renewal period (before, the whole loop backed off up to 300 s and a 3 s
/// address expired and came back); `/readyz` says what fails and `/healthz` stays ok; the
/// endpoint listens on loopback, not on the node's LAN address.
#[tokio::test]
async fn renewals_keep_their_period_while_a_change_keeps_failing() {
    let Some(mut w) = World::new("ar", "renewals", settings("3s", "1s")).await else {
        return;
    };
    w.start_agent(0);
    let (local, virtual_) = (w.local_group(), w.virtual_group());
    w.service("lan", &local, &["192.0.2.108"], false).await;
    w.service("v4", &virtual_, &["203.0.113.2"], false).await;
    w.eventually("both addresses are there", || {
        w.has(0, "eth0", "192.0.2.108/24") && w.has(0, "kube-lb0", "203.0.113.2/28")
    })
    .await;
    let local_url = "http://127.0.0.1:9471";
    w.eventually("ready", || {
        http(&w, 0, &format!("{local_url}/readyz")).0 == 200
    })
    .await;
    let lan = w.topo.node(0).lan_v4().to_string();
    assert_eq!(
        http(&w, 0, &format!("http://{lan}:9471/metrics")).0,
        0,
        "the metrics endpoint answers on the LAN address"
    );

    let ns = w.node_ns(0).to_string();
    let sysctl = |value: &str| {
        let setting = format!("net.ipv6.conf.kube-lb0.disable_ipv6={value}");
        w.topo
            .run(&ns, &["sysctl", "-q", "-w", &setting])
            .expect("sysctl");
    };
    sysctl("1");
    w.service("v6", &virtual_, &["2001:db8:ff::1"], false).await;
    w.eventually("readyz names the failing change", || {
        let (code, body) = http(&w, 0, &format!("{local_url}/readyz"));
        code == 503 && body.contains("add kube-lb0 2001:db8:ff::1/64")
    })
    .await;

    // 20 s of failures: a loop-wide back-off would have reached gaps of 4 s, 8 s and 16 s.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        assert!(
            w.has(0, "eth0", "192.0.2.108/24"),
            "the local address expired {:?} into the failures\n{}",
            start.elapsed(),
            w.logs()
        );
        assert_eq!(
            http(&w, 0, &format!("{local_url}/healthz")).0,
            200,
            "a failing change is no stuck loop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failures = w
        .metrics(0)
        .lines()
        .find(|l| l.starts_with("ferrolb_agent_netlink_errors_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        (3.0..=10.0).contains(&failures),
        "the failing change backs off on its own: {failures} attempts in 20 s"
    );

    sysctl("0");
    w.eventually_within("the retry adds it", Duration::from_secs(40), || {
        w.has(0, "kube-lb0", "2001:db8:ff::1/64")
    })
    .await;
    w.eventually("ready again", || {
        http(&w, 0, &format!("{local_url}/readyz")) == (200, "ok\n".to_string())
    })
    .await;
}
