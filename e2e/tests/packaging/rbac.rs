//! Each ServiceAccount gets exactly its rights, and the admission policy lets an agent write only
//! its own node's Lease.

use std::net::IpAddr;
use std::process::{Command, Stdio};

use ferrolb_api::contracts::{INSTALL_NAMESPACE, gossip, node_lease_name};
use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::env;
use ferrolb_e2e::kubelet;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn service_accounts_get_exactly_their_rights() {
    if !helm_ready() {
        return;
    }
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let (_installed, _) = Installed::new(cp, &[]).await;
    let sys = INSTALL_NAMESPACE;
    let st: &[&str] = &["--subresource=status"];
    // (who, verb, resource, namespace, extra flags, allowed)
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &str, &[&str], bool)] = &[
        (ALLOCATOR_SA, "watch", "services", "-A", &[], true),
        (ALLOCATOR_SA, "patch", "services", "tenant", &[], true),
        (ALLOCATOR_SA, "patch", "services", "tenant", st, true),
        (ALLOCATOR_SA, "watch", "servicegroups.ferrolb.io", "-A", &[], true),
        (ALLOCATOR_SA, "patch", "servicegroups.ferrolb.io", "-A", &[], true),
        (ALLOCATOR_SA, "patch", "servicegroups.ferrolb.io", "-A", st, true),
        (ALLOCATOR_SA, "watch", "nodes", "-A", &[], true),
        (ALLOCATOR_SA, "watch", "endpointslices.discovery.k8s.io", "-A", &[], true),
        (ALLOCATOR_SA, "create", "events.events.k8s.io", "tenant", &[], true),
        (ALLOCATOR_SA, "list", "events.events.k8s.io", "-A", &[], true),
        (ALLOCATOR_SA, "create", "leases.coordination.k8s.io", sys, &[], true),
        (ALLOCATOR_SA, "update", "leases.coordination.k8s.io/ferrolb-allocator", sys, &[], true),
        (ALLOCATOR_SA, "watch", "leases.coordination.k8s.io", sys, &[], true),
        (ALLOCATOR_SA, "update", "leases.coordination.k8s.io/ferrolb-node-a", sys, &[], false),
        (ALLOCATOR_SA, "create", "leases.coordination.k8s.io", "default", &[], false),
        (ALLOCATOR_SA, "delete", "services", "tenant", &[], false),
        (ALLOCATOR_SA, "create", "services", "tenant", &[], false),
        (ALLOCATOR_SA, "get", "secrets/ferrolb-gossip", sys, &[], false),
        (ALLOCATOR_SA, "delete", "servicegroups.ferrolb.io", "-A", &[], false),
        (ALLOCATOR_SA, "patch", "nodes", "-A", &[], false),
        (AGENT_SA, "watch", "services", "-A", &[], true),
        (AGENT_SA, "watch", "endpointslices.discovery.k8s.io", "-A", &[], true),
        (AGENT_SA, "watch", "nodes", "-A", &[], true),
        (AGENT_SA, "watch", "servicegroups.ferrolb.io", "-A", &[], true),
        (AGENT_SA, "watch", "lbnodeagents.ferrolb.io", "-A", &[], true),
        (AGENT_SA, "watch", "leases.coordination.k8s.io", sys, &[], true),
        (AGENT_SA, "create", "leases.coordination.k8s.io", sys, &[], true),
        (AGENT_SA, "patch", "leases.coordination.k8s.io", sys, &[], true),
        (AGENT_SA, "create", "events.events.k8s.io", "default", &[], true),
        (AGENT_SA, "patch", "events.events.k8s.io", "default", &[], true),
        (AGENT_SA, "create", "events", "default", &[], true),
        (AGENT_SA, "get", "secrets/ferrolb-gossip", sys, &[], true),
        (AGENT_SA, "patch", "services", "tenant", &[], false),
        (AGENT_SA, "patch", "services", "tenant", st, false),
        (AGENT_SA, "update", "services", "tenant", &[], false),
        (AGENT_SA, "get", "secrets/other", sys, &[], false),
        (AGENT_SA, "list", "secrets", sys, &[], false),
        (AGENT_SA, "create", "events.events.k8s.io", "tenant", &[], false),
        (AGENT_SA, "create", "leases.coordination.k8s.io", "default", &[], false),
        (AGENT_SA, "patch", "nodes", "-A", &[], false),
        (AGENT_SA, "patch", "servicegroups.ferrolb.io", "-A", st, false),
        (AGENT_SA, "delete", "leases.coordination.k8s.io", sys, &[], false),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(who, verb, res, ns, extra, allowed)| {
            can_i(cp, who, verb, res, ns, extra) != *allowed
        })
        .map(|(who, verb, res, ns, extra, allowed)| {
            format!("{who} {verb} {res} in {ns} {extra:?}: expected allowed={allowed}")
        })
        .collect();
    assert!(wrong.is_empty(), "RBAC differs:\n{}", wrong.join("\n"));

    // Real requests, impersonated.
    let tenant = cp.namespace("pkg-rbac").await.expect("a namespace");
    let ns = tenant.name();
    let svc = json!({ "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web", "namespace": ns },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80 } ] } });
    let (ok, out) = cp.kubectl_with_input(&["apply", "-f", "-"], &svc.to_string());
    assert!(ok, "{out}");
    let other = json!({ "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "other", "namespace": INSTALL_NAMESPACE },
        "stringData": { "x": "y" } });
    let (ok, out) = cp.kubectl_with_input(&["apply", "-f", "-"], &other.to_string());
    assert!(ok, "{out}");
    let kubectl_as =
        |user: &str, args: &[&str]| output(cp.kubectl().args(["--as", user]).args(args));
    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.201"}]}}}"#;
    #[rustfmt::skip]
    let allowed: &[(&str, &[&str])] = &[
        (ALLOCATOR_SA, &["annotate", "service", "web", "-n", ns, "ferrolb.io/allocated-by=ferrolb"]),
        (ALLOCATOR_SA, &["patch", "service", "web", "-n", ns, "--subresource=status", "--type=merge", "-p", status]),
        (ALLOCATOR_SA, &["get", "servicegroups,nodes", "-A"]),
        (AGENT_SA, &["get", "secret", gossip::SECRET, "-n", INSTALL_NAMESPACE]),
        (AGENT_SA, &["get", "services,endpointslices", "-A"]),
        (AGENT_SA, &["get", "servicegroups,lbnodeagents,nodes"]),
    ];
    for (who, args) in allowed {
        let (ok, out) = kubectl_as(who, args);
        assert!(ok, "{who} {args:?} is allowed: {out}");
    }
    #[rustfmt::skip]
    let forbidden: &[(&str, &[&str])] = &[
        (AGENT_SA, &["annotate", "service", "web", "-n", ns, "x=y"]),
        (AGENT_SA, &["patch", "service", "web", "-n", ns, "--subresource=status", "--type=merge", "-p", status]),
        (AGENT_SA, &["get", "secret", "other", "-n", INSTALL_NAMESPACE]),
        (ALLOCATOR_SA, &["get", "secret", gossip::SECRET, "-n", INSTALL_NAMESPACE]),
    ];
    for (who, args) in forbidden {
        let (ok, out) = kubectl_as(who, args);
        assert!(
            !ok && out.contains("Forbidden"),
            "{who} {args:?} is forbidden: {out}"
        );
    }
    // Writes that need a body: an Event about a Node (agent, in `default` only) and the leader
    // Lease (allocator: create it, then renew only that one).
    let event = |namespace: &str| {
        json!({ "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": { "generateName": "pkg-rbac-", "namespace": namespace },
            "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal",
            "reportingController": "ferrolb.io/agent", "reportingInstance": "pkg-rbac",
            "action": "Announce", "reason": "RouterConfigApplied", "note": "an RBAC test",
            "regarding": { "apiVersion": "v1", "kind": "Node", "name": "pkg-rbac" } })
        .to_string()
    };
    let create_as =
        |who: &str, body: &str| cp.kubectl_with_input(&["--as", who, "create", "-f", "-"], body);
    let (ok, out) = create_as(AGENT_SA, &event("default"));
    assert!(ok, "the agent creates Events about Nodes in default: {out}");
    let (ok, out) = create_as(AGENT_SA, &event(ns));
    assert!(!ok && out.contains("Forbidden"), "nowhere else: {out}");
    let _ = output(cp.kubectl().args([
        "delete",
        "lease",
        "ferrolb-allocator",
        "-n",
        INSTALL_NAMESPACE,
        "--ignore-not-found",
    ]));
    let (ok, out) = create_as(ALLOCATOR_SA, &lease("ferrolb-allocator", "allocator-0"));
    assert!(ok, "the allocator creates its Lease: {out}");
    let renew = ["annotate", "lease", "-n", INSTALL_NAMESPACE, "--overwrite"];
    let (ok, out) = kubectl_as(
        ALLOCATOR_SA,
        &[&renew[..], &["ferrolb-allocator", "x=1"]].concat(),
    );
    assert!(ok, "the allocator renews its Lease: {out}");
    let (ok, out) = cp.kubectl_with_input(
        &["apply", "-f", "-"],
        &lease("ferrolb-node-pkg-rbac", "pkg-rbac"),
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl_as(
        ALLOCATOR_SA,
        &[&renew[..], &["ferrolb-node-pkg-rbac", "x=1"]].concat(),
    );
    assert!(
        !ok && out.contains("Forbidden"),
        "the allocator writes no node's Lease: {out}"
    );
    for name in ["ferrolb-allocator", "ferrolb-node-pkg-rbac"] {
        let _ = output(
            cp.kubectl()
                .args(["delete", "lease", name, "-n", INSTALL_NAMESPACE]),
        );
    }
    let _ = output(
        cp.kubectl()
            .args(["delete", "secret", "other", "-n", INSTALL_NAMESPACE]),
    );
}

fn lease(name: &str, holder: &str) -> String {
    json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name, "namespace": INSTALL_NAMESPACE },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15 } })
    .to_string()
}

#[tokio::test]
async fn an_agent_writes_only_its_own_nodes_lease() {
    if !helm_ready() {
        return;
    }
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    let client = cp.client().await.expect("a client");
    let (_installed, _) = Installed::new(cp, &[]).await;
    let (mine, theirs) = ("pkg-vap-a", "pkg-vap-b");
    for (node, ip) in [(mine, "192.0.2.31"), (theirs, "192.0.2.32")] {
        let ip: IpAddr = ip.parse().expect("an address");
        kubelet::create_node(&client, node, &[ip], &[], true)
            .await
            .expect("a Node");
    }
    let pod = "ferrolb-agent-vap";
    bound_pod(cp, pod, mine);
    let token = token(cp, "ferrolb-agent", Some(pod));
    let kc = token_kubeconfig(cp, "127.0.0.1", "agent-vap", &token);
    let as_agent = |body: &str| {
        let mut cmd = Command::new(env::tool("kubectl"));
        cmd.arg("--kubeconfig").arg(&kc).args([
            "apply",
            "--server-side",
            "--field-manager=ferrolb-agent",
            "--force-conflicts",
            "-f",
            "-",
        ]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), body.as_bytes())
            .expect("kubectl reads");
        let out = child.wait_with_output().expect("kubectl ends");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    // A new policy takes effect a moment after it is created: wait until a write without a
    // bound token (impersonating the ServiceAccount, so no node) is refused, in a dry run.
    let nobody = || String::new();
    let refusal = eventually("the admission policy takes effect", &nobody, || {
        let (ok, out) = cp.kubectl_with_input(
            &[
                "--as",
                AGENT_SA,
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &lease(&node_lease_name(mine), mine),
        );
        (!ok).then_some(out)
    })
    .await;
    assert!(
        refusal.contains("not bound to a Pod on a node"),
        "{refusal}"
    );
    // The allocator's Lease and another node's, as the admin wrote them.
    for (name, holder) in [
        ("ferrolb-allocator", "allocator-0"),
        (&*node_lease_name(theirs), theirs),
    ] {
        let (ok, out) = cp.kubectl_with_input(&["apply", "-f", "-"], &lease(name, holder));
        assert!(ok, "{out}");
    }
    let (ok, out) = as_agent(&lease(&node_lease_name(mine), mine));
    assert!(ok, "the agent on {mine} writes ferrolb-node-{mine}: {out}");
    let refused = [
        (
            lease(&node_lease_name(theirs), theirs),
            "another node's Lease",
        ),
        (
            lease(&node_lease_name("pkg-vap-new"), "pkg-vap-new"),
            "a new Lease of another node",
        ),
        (lease("ferrolb-allocator", mine), "the allocator's Lease"),
        (
            lease(&node_lease_name(mine), theirs),
            "its Lease with another holder",
        ),
    ];
    for (body, what) in refused {
        let (ok, out) = as_agent(&body);
        assert!(
            !ok && out.contains("ferrolb-agent-own-lease"),
            "{what} is refused by the policy: {out}"
        );
    }
    // The policy's CEL is type-checked by the API server without warnings.
    let (_, vap) = output(cp.kubectl().args([
        "get",
        "validatingadmissionpolicy",
        "ferrolb-agent-own-lease",
        "-o",
        "jsonpath={.status.typeChecking}",
    ]));
    assert!(!vap.contains("warning"), "type-check warnings: {vap}");

    delete_pod(cp, pod);
    for name in [
        node_lease_name(mine),
        node_lease_name(theirs),
        "ferrolb-allocator".into(),
    ] {
        let _ = output(
            cp.kubectl()
                .args(["delete", "lease", &name, "-n", INSTALL_NAMESPACE]),
        );
    }
    let _ = output(cp.kubectl().args(["delete", "node", mine, theirs]));
}
