//! ferrolb installed from the plain manifest (`kubectl apply -f manifests/ferrolb.yaml`, as
//! docs/install.md does) onto real nodes whose kube-proxy runs in `iptables` mode (the other
//! real-cluster tests use the default, `nftables`).
//!
//! kube-proxy's `ipvs` mode cannot run here: this kernel is built without IPVS
//! (`# CONFIG_IP_VS is not set`; kube-proxy exits with "can't use the IPVS proxier", `ipvsadm`
//! says "Protocol not available").

mod real;

use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_e2e::cluster::{Cluster, ClusterOptions, ProxyMode};
use real::*;

/// The plain manifest with the locally built images, as a user would point it at a registry.
fn manifest(c: &Cluster) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/ferrolb.yaml"
    ))
    .expect("manifests/ferrolb.yaml");
    text.lines()
        .map(|l| {
            let image = |repo: &str, to: &str| {
                l.trim_start()
                    .strip_prefix("image: ")
                    .filter(|v| v.starts_with(repo))
                    .map(|_| format!("{}image: {to}", &l[..l.len() - l.trim_start().len()]))
            };
            image("ghcr.io/ferrolb/agent:", &c.images().agent)
                .or_else(|| image("ghcr.io/ferrolb/allocator:", &c.images().allocator))
                .unwrap_or_else(|| l.to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// MACs that answer an ARP request for `ip` on the LAN, asked from the ToR.
fn arp_answerers(c: &Cluster, ip: &str) -> BTreeSet<String> {
    let topo = c.topo();
    let tor = topo.tor_ns().expect("a ToR");
    let out = topo
        .exec(tor, &["arping", "-c", "3", "-w", "3", "-I", "eth0", ip])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Debian's `arping`: "42 bytes from 02:fb:..:0a (192.0.2.100): index=0 time=..."
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "from");
            words.nth(1).map(str::to_lowercase)
        })
        .collect()
}

#[test]
fn plain_manifest_install_under_iptables_kube_proxy_serves_through_one_arp_answer() {
    let Some(c) = Cluster::shared_with(ClusterOptions {
        tag: "ipt".into(),
        proxy: ProxyMode::Iptables,
        ..ClusterOptions::default()
    }) else {
        return;
    };
    let (ok, out) = c
        .cp()
        .kubectl_with_input(&["apply", "--server-side", "-f", "-"], &manifest(c));
    assert!(ok, "kubectl apply -f manifests/ferrolb.yaml failed:\n{out}");
    // The gossip key, as docs/install.md creates it by hand.
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect();
    kubectl(
        c,
        &[
            "-n",
            "ferrolb-system",
            "create",
            "secret",
            "generic",
            "ferrolb-gossip",
            &format!("--from-literal=key={key}"),
            "--from-literal=previousKey=",
        ],
    );
    wait_ferrolb_ready(c);
    let ns = "ipt-app";
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "web", "lan", "Cluster"));
    let ips = wait_ingress(c, ns, "web");
    let v4 = ips
        .iter()
        .find(|ip| !ip.contains(':'))
        .cloned()
        .expect("v4");
    wait(&format!("{v4} answering"), Duration::from_secs(90), || {
        get_from_client(c, &v4)
    });
    let mut answerers = BTreeSet::new();
    let mut holders = BTreeSet::new();
    for _ in 0..5 {
        answerers.extend(arp_answerers(c, &v4));
        holders.extend(holders_of(c, &v4));
    }
    // (kubectl's output here is stdout then stderr: "No resources found" is no Event.)
    let conflicts: Vec<String> = c
        .kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=AddressConflict",
            "-o",
            "custom-columns=OBJECT:.involvedObject.name,COUNT:.count,MESSAGE:.message",
            "--no-headers",
        ])
        .1
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("No resources found"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "kube-proxy iptables: {v4} held on eth0 by {holders:?}; ARP answered by {answerers:?}; \
         AddressConflict Events: {}",
        conflicts.len()
    );
    assert_eq!(holders.len(), 1, "one holder: {holders:?}");
    assert!(
        conflicts.is_empty(),
        "no AddressConflict:\n{}",
        conflicts.join("\n")
    );
    assert_eq!(
        answerers.len(),
        1,
        "one MAC answers ARP for {v4}: {answerers:?}"
    );
}
