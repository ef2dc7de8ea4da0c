//! ferrolb installed from the plain manifest (`kubectl apply -f manifests/ferrolb.yaml`, as
//! docs/install.md does) onto real nodes whose kube-proxy runs in `iptables` mode (the other
//! real-cluster tests use the default, `nftables`).
//!
//! kube-proxy's `ipvs` mode cannot run here: this kernel is built without IPVS
//! (`# CONFIG_IP_VS is not set`; kube-proxy exits with "can't use the IPVS proxier", `ipvsadm`
//! says "Protocol not available"). What IPVS mode does to ARP (every Service address on
//! `kube-ipvs0` of every node) is made by hand at the end of the test, and what the agents do
//! about it is checked there.

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
    let _logs = LogsOnFailure(c);
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
    let conflicts = events(c, "AddressConflict");
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
    ipvs_kube_ipvs0_addresses_are_answered_by_the_holder_only(c, &v4, &holders);
}

/// kube-proxy's IPVS mode, as far as this kernel allows (it has no IPVS, see the module's
/// comment): kube-proxy makes `kube-ipvs0` at start and puts every Service address on it on
/// every node, so with Linux's default `arp_ignore` 0 every node answers ARP for a local
/// address, not only its holder. The agents find `kube-ipvs0`, make their eth0 answer only for
/// its own addresses (`arp_ignore` 1, `arp_announce` 2: strictARP per interface) and say so on
/// their Node; then one MAC answers, the holder's, with the address on every `kube-ipvs0`.
fn ipvs_kube_ipvs0_addresses_are_answered_by_the_holder_only(
    c: &Cluster,
    v4: &str,
    holders: &BTreeSet<String>,
) {
    let topo = c.topo();
    let nodes = c.node_names();
    let sysctl = |ns: &str, key: &str| {
        topo.run(ns, &["sysctl", "-n", &format!("net.ipv4.conf.eth0.{key}")])
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| e.to_string())
    };
    for ns in &nodes {
        assert_eq!(
            sysctl(ns, "arp_ignore"),
            "0",
            "{ns}: Linux's default before IPVS"
        );
        // kube-proxy makes a `dummy` link; this kernel has no dummy driver, and which kind
        // carries the address does not matter to ARP.
        topo.run(ns, &["ip", "link", "add", "kube-ipvs0", "type", "ifb"])
            .unwrap_or_else(|e| panic!("{ns}: kube-ipvs0: {e}"));
    }
    let strict = |ns: &str| sysctl(ns, "arp_ignore") == "1" && sysctl(ns, "arp_announce") == "2";
    wait("every node's eth0 strict", Duration::from_secs(60), || {
        let loose: Vec<&String> = nodes.iter().filter(|ns| !strict(ns)).collect();
        loose
            .is_empty()
            .then_some(())
            .ok_or(format!("not yet: {loose:?}"))
    });
    let applied = wait(
        "a StrictARPApplied Event per node",
        Duration::from_secs(30),
        || {
            let e = events(c, "StrictARPApplied");
            let all = nodes
                .iter()
                .all(|n| e.iter().any(|l| l.starts_with(n.as_str())));
            all.then_some(e.clone()).ok_or(format!("{e:?}"))
        },
    );
    assert!(
        applied
            .iter()
            .all(|l| l.contains("arp_ignore 1 and arp_announce 2 on eth0")),
        "{applied:?}"
    );
    for ns in &nodes {
        topo.run(
            ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{v4}/32"),
                "dev",
                "kube-ipvs0",
            ],
        )
        .unwrap_or_else(|e| panic!("{ns}: {v4} on kube-ipvs0: {e}"));
    }
    let mut answerers = BTreeSet::new();
    let mut seen_holders = BTreeSet::new();
    for _ in 0..5 {
        answerers.extend(arp_answerers(c, v4));
        seen_holders.extend(holders_of(c, v4));
    }
    get_from_client(c, v4).unwrap_or_else(|e| panic!("{v4} with kube-ipvs0: {e}"));
    eprintln!(
        "kube-ipvs0 on every node with {v4}: ARP answered by {answerers:?}; held by {seen_holders:?}"
    );
    assert_eq!(&seen_holders, holders, "the holder stays");
    assert_eq!(
        answerers.len(),
        1,
        "one MAC answers ARP for {v4}: {answerers:?}"
    );
    assert!(
        events(c, "AddressConflict").is_empty(),
        "no AddressConflict"
    );
    // Whoever resets it (a node's sysctl configuration applied later), the agent sets it again.
    let other = nodes
        .iter()
        .find(|n| !holders.contains(*n))
        .expect("a node that does not hold it");
    topo.run(
        other,
        &["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_ignore=0"],
    )
    .expect("reset arp_ignore");
    wait(
        &format!("{other}'s agent makes eth0 strict again"),
        Duration::from_secs(30),
        || {
            strict(other)
                .then_some(())
                .ok_or(sysctl(other, "arp_ignore"))
        },
    );
}

/// `<involved object> <count> <message>` of every Event with `reason`, in all namespaces.
fn events(c: &Cluster, reason: &str) -> Vec<String> {
    // (kubectl's output here is stdout then stderr: "No resources found" is no Event.)
    c.kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("reason={reason}"),
        "-o",
        "custom-columns=OBJECT:.involvedObject.name,COUNT:.count,MESSAGE:.message",
        "--no-headers",
    ])
    .1
    .lines()
    .filter(|l| !l.trim().is_empty() && !l.starts_with("No resources found"))
    .map(str::to_string)
    .collect()
}
