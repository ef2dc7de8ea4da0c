//! Install, upgrade and uninstall with the allocator and an agent running lose no address, CRD or
//! default ServiceGroup.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferrolb_api::contracts::{INSTALL_NAMESPACE, gossip};
use ferrolb_e2e::controlplane::{ControlPlane, MANAGEMENT_ADDRESS};
use ferrolb_e2e::env;
use ferrolb_e2e::kubelet;
use ferrolb_e2e::process::{Process, tied};
use ferrolb_e2e::topology::Topology;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::support::*;

/// `Some(why)` when ferrolb's own binaries have not been built.
fn missing_binaries() -> Option<String> {
    ["ferrolb-allocator", "ferrolb-agent"]
        .into_iter()
        .map(env::binary)
        .find(|p| !p.exists())
        .map(|p| {
            format!(
                "{} is not built; run `cargo build --workspace --bins`",
                p.display()
            )
        })
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let (ok, out) = output(cp.kubectl().args(["get", "-o", "json"]).args(args));
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn ingress(cp: &ControlPlane, ns: &str, svc: &str) -> Vec<String> {
    get_json(cp, &["service", svc, "-n", ns])
        .and_then(|s| s["status"]["loadBalancer"]["ingress"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["ip"].as_str().map(String::from))
        .collect()
}

/// The gossip key as the Secret stores it (base64) and as the agents read it (hex text).
#[derive(Debug, PartialEq)]
struct GossipKey {
    base64: String,
    hex: String,
}

impl GossipKey {
    fn printed_in(&self, text: &str) -> bool {
        text.contains(&self.base64) || text.contains(&self.hex)
    }
}

async fn gossip_key(client: &kube::Client) -> Option<GossipKey> {
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let secret = api.get_opt(gossip::SECRET).await.ok().flatten()?;
    let key = secret.data?.remove(gossip::SECRET_KEY)?;
    Some(GossipKey {
        base64: serde_json::to_value(&key).ok()?.as_str()?.to_string(),
        hex: String::from_utf8(key.0).ok()?,
    })
}

/// Cluster objects the lifecycle test leaves behind on purpose (kept by helm), removed at the end
/// also when the test fails.
struct Leftovers<'a>(&'a ControlPlane, &'a str);

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        let cp = self.0;
        delete_pod(cp, self.1);
        let patch = r#"{"metadata":{"finalizers":null}}"#;
        let _ = output(cp.kubectl().args([
            "patch",
            "servicegroup",
            "default",
            "--type=merge",
            "-p",
            patch,
        ]));
        for args in [
            &["delete", "servicegroup", "default", "--ignore-not-found"][..],
            &[
                "delete",
                "secret",
                gossip::SECRET,
                "-n",
                INSTALL_NAMESPACE,
                "--ignore-not-found",
            ],
            &["delete", "leases", "--all", "-n", INSTALL_NAMESPACE],
            &["delete", "node", "pkg-node-0", "--ignore-not-found"],
        ] {
            let _ = output(cp.kubectl().args(args));
        }
    }
}

#[tokio::test]
async fn install_upgrade_and_uninstall_keep_addresses_crds_and_the_default_group() {
    if !helm_ready()
        || !env::require_root()
        || !env::require("ferrolb's binaries", missing_binaries())
    {
        return;
    }
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("a client");
    let topo = Topology::builder("pkg")
        .nodes(1)
        .management(true)
        .build()
        .expect("a one-node topology");
    let (node, pod) = ("pkg-node-0", "ferrolb-agent-pkg");
    let tenant = cp.namespace("pkg-lifecycle").await.expect("a namespace");
    let ns = tenant.name();

    let (installed, notes) = Installed::new(cp, EVERYTHING).await;
    let _leftovers = Leftovers(cp, pod);
    let key = gossip_key(&client)
        .await
        .expect("helm generated the gossip Secret");
    assert_eq!(key.hex.len(), 2 * gossip::KEY_BYTES, "32 bytes as hex");
    assert!(key.hex.bytes().all(|b| b.is_ascii_hexdigit()), "hex");
    assert!(!key.printed_in(&notes), "helm install never prints the key");

    // The components run as processes with their ServiceAccounts' tokens; the agent's token is
    // bound to a Pod on its Node, as the kubelet would mount it.
    let lan = [
        IpAddr::V4(topo.node(0).lan_v4()),
        IpAddr::V6(topo.node(0).lan_v6()),
    ];
    kubelet::create_node(&client, node, &lan, &[], true)
        .await
        .expect("a Node");
    bound_pod(cp, pod, node);
    let allocator_token = token(cp, "ferrolb-allocator", None);
    let alloc_kc = token_kubeconfig(cp, "127.0.0.1", "allocator-pkg", &allocator_token);
    let agent_token = token(cp, "ferrolb-agent", Some(pod));
    let agent_kc = token_kubeconfig(cp, MANAGEMENT_ADDRESS, "agent-pkg", &agent_token);
    let mut allocator = start_allocator(cp, &alloc_kc);
    let mut agent = start_agent(&topo, node, &agent_kc);
    let agent_log = agent.log_path().map(Path::to_path_buf).unwrap_or_default();
    let logs = || {
        format!(
            "--- allocator ---\n{}\n--- agent ---\n{}",
            tail(&allocator_log(cp)),
            tail(&std::fs::read_to_string(&agent_log).unwrap_or_default())
        )
    };

    create_services(cp, ns);
    let before = eventually("both Services get an address", &logs, || {
        let now: Vec<Vec<String>> = SERVICES.iter().map(|s| ingress(cp, ns, s)).collect();
        now.iter().all(|v| v.len() == 1).then_some(now)
    })
    .await;
    for ips in &before {
        assert!(
            ips[0].starts_with("192.0.2.20"),
            "from the default group: {ips:?}"
        );
    }
    // The agent holds the address (published on its own Lease, through the policy) and the
    // allocator mirrors that onto the Service.
    let announced = eventually(
        "the agent's holding mirrored onto the Service",
        &logs,
        || {
            get_json(cp, &["service", SERVICES[0], "-n", ns]).and_then(|s| {
                s["metadata"]["annotations"]["ferrolb.io/announcing-IPv4"]
                    .as_str()
                    .filter(|a| a.contains(node))
                    .map(String::from)
            })
        },
    )
    .await;
    let on_node = topo
        .run(topo.node(0).ns_name(), &["ip", "-4", "addr", "show"])
        .expect("ip addr");
    let held = format!("{}/", before[0][0]);
    assert!(on_node.contains(&held), "{announced}: {on_node}");
    let unchanged = |stage: &str| {
        for (svc, ips) in SERVICES.iter().zip(&before) {
            let now = ingress(cp, ns, svc);
            assert_eq!(&now, ips, "{svc} keeps its address through {stage}");
        }
    };

    let chart_path = chart().display().to_string();
    let (ok, out) = installed.helm(&[
        "upgrade",
        RELEASE,
        &chart_path,
        "--reuse-values",
        "--set",
        "logFormat=json",
        "--set",
        "allocator.replicas=3",
        "--timeout",
        "2m",
    ]);
    assert!(ok, "helm upgrade: {out}");
    assert!(!key.printed_in(&out), "helm upgrade never prints the key");
    let now = gossip_key(&client).await;
    assert_eq!(now.as_ref(), Some(&key), "an upgrade keeps the gossip key");
    tokio::time::sleep(Duration::from_secs(3)).await;
    unchanged("helm upgrade");
    if let Some(dead) = allocator.exited().or_else(|| agent.exited()) {
        panic!("the components run on through the upgrade: {dead}");
    }

    let (ok, out) = installed.helm(&["uninstall", RELEASE, "--wait", "--timeout", "2m"]);
    assert!(ok, "helm uninstall: {out}");
    // Their pods would go with the release.
    allocator.kill();
    agent.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    unchanged("helm uninstall");
    assert_uninstall_kept_only_what_it_should(cp);
    let now = gossip_key(&client).await;
    assert_eq!(now.as_ref(), Some(&key), "the gossip Secret remains");
    let (ok, list) = installed.helm(&["list", "-q"]);
    assert!(ok && list.trim().is_empty(), "no release remains: {list}");

    // Installing again adopts what the uninstall kept (the key, the group) and a new allocator
    // adopts every address.
    let mut again = vec!["install", RELEASE, &chart_path];
    EVERYTHING
        .iter()
        .for_each(|set| again.extend(["--set", set]));
    let (ok, out) = installed.helm(&again);
    assert!(
        ok,
        "helm install after uninstall adopts the kept objects: {out}"
    );
    assert!(!key.printed_in(&out), "helm install never prints the key");
    let now = gossip_key(&client).await;
    assert_eq!(now.as_ref(), Some(&key), "the same gossip key");
    // A new ServiceAccount (tokens name its UID), so a new token, as a new pod would get.
    let allocator_token = token(cp, "ferrolb-allocator", None);
    let alloc_kc = token_kubeconfig(cp, "127.0.0.1", "allocator-pkg-2", &allocator_token);
    let logged = allocator_log(cp).lines().count();
    let mut allocator = start_allocator(cp, &alloc_kc);
    eventually("the new allocator leads", &logs, || {
        let log = allocator_log(cp);
        log.lines()
            .skip(logged)
            .any(|l| l.contains("leading"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    unchanged("a second install");
    if let Some(dead) = allocator.exited() {
        panic!("the allocator runs on: {dead}");
    }
}

/// An unclassed Service and one of ferrolb's class.
const SERVICES: [&str; 2] = ["unclassed", "classed"];

fn create_services(cp: &ControlPlane, ns: &str) {
    for (name, class) in SERVICES.into_iter().zip([None, Some("ferrolb.io/ferrolb")]) {
        let mut svc = json!({ "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ] } });
        if let Some(class) = class {
            svc["spec"]["loadBalancerClass"] = class.into();
        }
        let (ok, out) = cp.kubectl_with_input(&["apply", "-f", "-"], &svc.to_string());
        assert!(ok, "{out}");
    }
}

/// After `helm uninstall`: CRDs and the default ServiceGroup remain (not Terminating), nothing
/// else of the release does, and nothing in ferrolb-system hangs in Terminating.
fn assert_uninstall_kept_only_what_it_should(cp: &ControlPlane) {
    for crd in ["servicegroups.ferrolb.io", "lbnodeagents.ferrolb.io"] {
        assert!(get_json(cp, &["crd", crd]).is_some(), "CRD {crd} remains");
    }
    let group = get_json(cp, &["servicegroup", "default"]).expect("the default group remains");
    let deleting = &group["metadata"]["deletionTimestamp"];
    assert!(
        deleting.is_null(),
        "the default group is not Terminating: {group}"
    );
    let namespaced = "deployments,daemonsets,configmaps,serviceaccounts,roles,rolebindings,\
                      services,poddisruptionbudgets";
    let (_, left) = output(
        cp.kubectl()
            .args(["get", namespaced, "-n", INSTALL_NAMESPACE])
            .args(["-o", "name"]),
    );
    let ours: Vec<&str> = left.lines().filter(|l| l.contains("/ferrolb")).collect();
    assert!(ours.is_empty(), "the release's objects are gone: {ours:?}");
    let (_, events_role) =
        output(
            cp.kubectl()
                .args(["get", "roles,rolebindings", "-n", "default", "-o", "name"]),
        );
    assert!(!events_role.contains("ferrolb"), "{events_role}");
    let cluster = "clusterroles,clusterrolebindings,validatingadmissionpolicies,\
                   validatingadmissionpolicybindings";
    let (_, left) = output(cp.kubectl().args(["get", cluster, "-o", "name"]));
    assert!(
        !left.contains("ferrolb"),
        "cluster-wide objects are gone: {left}"
    );
    let terminating: Vec<String> = get_json(cp, &["all,leases,secrets", "-n", INSTALL_NAMESPACE])
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o["metadata"]["deletionTimestamp"].is_null())
        .map(|o| o["metadata"]["name"].to_string())
        .collect();
    assert!(
        terminating.is_empty(),
        "nothing hangs in Terminating: {terminating:?}"
    );
}

/// The agent in the node's namespace, with its Pod-bound token, as the DaemonSet would run it.
fn start_agent(topo: &Topology, node: &str, kubeconfig: &Path) -> Process {
    let mut cmd = Command::new(env::binary("ferrolb-agent"));
    cmd.args(["--node-name", node])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("RUST_LOG", "info,kube=warn");
    topo.spawn_in(topo.node(0).ns_name(), &cmd)
        .expect("the agent starts")
}

/// The allocator as its pod would run it, with the allocator ServiceAccount's token; appends to
/// `allocator-pkg.log`.
fn start_allocator(cp: &ControlPlane, kubeconfig: &Path) -> Process {
    let log = cp.dir().join("allocator-pkg.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("a log file");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = tied(env::binary("ferrolb-allocator"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .args(["--identity", "ferrolb-allocator-pkg"])
        .env("RUST_LOG", "info,kube=warn")
        .stdout(out.try_clone().expect("log"))
        .stderr(out);
    Process::spawn("allocator", cmd, Some(log)).expect("the allocator starts")
}

fn allocator_log(cp: &ControlPlane) -> String {
    std::fs::read_to_string(cp.dir().join("allocator-pkg.log")).unwrap_or_default()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
