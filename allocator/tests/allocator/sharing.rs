//! Sharing an address by key, and the rules that refuse it.

use std::time::Duration;

use ferrolb_api::annotations::ALLOW_SHARED_IP;
use ferrolb_api::contracts::reason;

use crate::support::*;

#[tokio::test]
async fn shares_an_address_by_key_and_refuses_what_breaks_the_rules() {
    let Some(env) = env("sharing").await else {
        return;
    };
    let g = env.group_name("g");
    env.apply_group(&g, local(&[("192.0.2.0/24", "192.0.2.70-192.0.2.79")], &[]))
        .await;
    let _a = env.allocator("a", false);
    let keyed = |name: &str, proto: &str, port: i32| {
        svc(name)
            .group(&g)
            .ann(ALLOW_SHARED_IP, "k")
            .ports(&[(proto, port)])
    };
    env.apply_svc(&keyed("web", "TCP", 80)).await;
    let ip = env.wait_any_ips("web", 1).await;
    // Creation timestamps have seconds: web must be the oldest for the checks below.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply_svc(&keyed("tls", "TCP", 443)).await;
    env.apply_svc(&keyed("dns", "UDP", 80)).await;
    env.wait_ips("tls", &[ip[0].as_str()]).await;
    env.wait_ips("dns", &[ip[0].as_str()]).await;
    // A port collision is refused.
    env.apply_svc(&keyed("clash", "TCP", 443)).await;
    let note = env.wait_event("clash", reason::SHARING_CONFLICT).await;
    assert!(note.contains("443"), "{note}");
    assert!(env.ips("clash").await.is_empty());
    // Local traffic policy needs the same policy and selector.
    env.apply_svc(&keyed("local", "TCP", 8080).spec("externalTrafficPolicy", "Local".into()))
        .await;
    env.wait_event("local", reason::SHARING_CONFLICT).await;
    // Retried when things change: tls moves off 443 and clash joins.
    env.apply_svc(&keyed("tls", "TCP", 8443)).await;
    env.wait_ips("clash", &[ip[0].as_str()]).await;
    // An edit that breaks the rules on a sharing Service releases nothing.
    env.apply_svc(&keyed("dns", "TCP", 80)).await;
    env.wait_event_with("dns", reason::SHARING_CONFLICT, "nothing is released")
        .await;
    assert_eq!(env.ips("dns").await, ip);
    // Freed only with its last user (`local`, waiting on the key, would take it next).
    for s in ["web", "tls", "dns", "local"] {
        env.delete_svc(s).await;
    }
    env.apply_svc(&svc("next").group(&g)).await;
    let next = env.wait_any_ips("next", 1).await;
    assert_ne!(next, ip, "clash still uses it");
    env.delete_svc("clash").await;
    // The address is free once the allocator has seen clash go: only `next` is left.
    eventually("the group to count one allocation", || async {
        let group = env.groups().get(&g).await.ok()?;
        let allocated = group.status?.allocated?.ipv4;
        (allocated == 1).then_some(())
    })
    .await;
    env.apply_svc(&svc("last").group(&g)).await;
    env.wait_ips("last", &[ip[0].as_str()]).await;
    // A key added after allocation binds to the address the Service already has.
    env.apply_svc(&svc("last").group(&g).ann(ALLOW_SHARED_IP, "late"))
        .await;
    env.apply_svc(
        &svc("buddy")
            .group(&g)
            .ann(ALLOW_SHARED_IP, "late")
            .ports(&[("TCP", 8081)]),
    )
    .await;
    env.wait_ips("buddy", &[ip[0].as_str()]).await;
}
