//! Every chart knob reaches the objects it should, all set at once.

use ferrolb_api::contracts::INSTALL_NAMESPACE;
use serde_json::{Value, json};

use crate::support::*;

/// Every chart knob set at once (a values file, so dots in keys and nulls need no escaping).
pub fn knobs() -> Value {
    json!({
        "nameOverride": "edge-lb",
        "fullnameOverride": "lb",
        "logLevel": "debug,kube=warn",
        "allocator": {
            "priorityClassName": "system-cluster-critical",
            "podAnnotations": { "example.com/team": "net" },
            // A podLabel cannot take a selector label away from the Deployment.
            "podLabels": { "example.com/tier": "lb", "app.kubernetes.io/component": "stolen" },
            "podSecurityContext": { "runAsUser": 1000 },
            "securityContext": { "readOnlyRootFilesystem": false },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
            "serviceAccount": { "annotations": { "example.com/role": "allocator" } },
        },
        "agent": {
            "priorityClassName": "ferrolb-nodes",
            "podAnnotations": { "example.com/team": "net" },
            "podLabels": { "example.com/tier": "lb" },
            "podSecurityContext": { "fsGroup": 2000 },
            "securityContext": { "capabilities": { "add": ["NET_ADMIN", "NET_RAW", "SYS_TIME"] } },
            "updateStrategy": { "type": "OnDelete" },
            "serviceAccount": { "name": "lb-node" },
        },
        "birdSidecar": { "securityContext": { "allowPrivilegeEscalation": null } },
        "networkPolicy": {
            "enabled": true,
            "metricsFrom": [ { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } } ],
        },
        "extraObjects": [
            { "apiVersion": "v1", "kind": "ConfigMap",
              "metadata": { "name": "lb-extra", "namespace": "{{ .Release.Namespace }}" },
              "data": { "release": "{{ .Release.Name }}" } },
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lb-extra-text\n  namespace: {{ .Release.Namespace }}\ndata:\n  chart: {{ .Chart.Name }}\n",
        ],
    })
}

#[test]
fn chart_knobs_reach_the_rendered_objects() {
    if !helm_ready() {
        return;
    }
    let file = values_file(&knobs());
    let (ok, out) = output(
        helm(None)
            .args(["lint", "--strict", "--namespace", INSTALL_NAMESPACE])
            .args(["--kube-version", &kube_version()])
            .arg("-f")
            .arg(&file)
            .arg(chart()),
    );
    assert!(ok, "helm lint with every knob: {out}");
    let (ok, rendered) = template_of(&chart(), Some(&knobs()), EVERYTHING);
    assert!(ok, "every knob renders: {rendered}");
    let all = objects(&rendered);

    let allocator = find(&all, "Deployment", "lb-allocator");
    let pod = &allocator["spec"]["template"];
    assert_eq!(
        allocator["spec"]["strategy"],
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } })
    );
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({ "example.com/team": "net" })
    );
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["example.com/tier"], "lb", "{labels}");
    assert_eq!(
        labels["app.kubernetes.io/component"], "allocator",
        "{labels}"
    );
    assert_eq!(labels["app.kubernetes.io/name"], "edge-lb", "{labels}");
    assert_eq!(
        allocator["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "edge-lb"
    );
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["spec"]["serviceAccountName"], "lb-allocator");
    // One field overridden, the others still hardened.
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({ "runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 65532,
                "seccompProfile": { "type": "RuntimeDefault" } })
    );
    let c = container(allocator, "allocator");
    assert_eq!(
        c["securityContext"],
        json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false,
                "capabilities": { "drop": ["ALL"] } })
    );
    assert_eq!(env_of(c, "RUST_LOG"), "debug,kube=warn");

    let agent = find(&all, "DaemonSet", "lb-agent");
    let pod = &agent["spec"]["template"];
    assert_eq!(
        agent["spec"]["updateStrategy"],
        json!({ "type": "OnDelete" })
    );
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({ "example.com/team": "net" })
    );
    assert_eq!(pod["metadata"]["labels"]["example.com/tier"], "lb");
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/component"],
        "agent"
    );
    assert_eq!(pod["spec"]["priorityClassName"], "ferrolb-nodes");
    assert_eq!(pod["spec"]["serviceAccountName"], "lb-node");
    assert_eq!(pod["spec"]["securityContext"], json!({ "fsGroup": 2000 }));
    assert_eq!(
        container(agent, "agent")["securityContext"],
        json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "SYS_TIME"] } }),
        "capabilities.add replaced, capabilities.drop kept"
    );
    assert_eq!(
        container(agent, "bird-sidecar")["securityContext"],
        json!({ "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"] } }),
        "a field set to null is removed"
    );
    for name in ["agent", "bird-sidecar"] {
        assert_eq!(
            env_of(container(agent, name), "RUST_LOG"),
            "debug,kube=warn"
        );
    }

    // fullnameOverride renames what nothing looks up by name; the ServiceAccount name follows
    // into the bindings and the admission policy; the Contracts' names stay.
    let sa = find(&all, "ServiceAccount", "lb-allocator");
    assert_eq!(
        sa["metadata"]["annotations"]["example.com/role"],
        "allocator"
    );
    find(&all, "ServiceAccount", "lb-node");
    for (kind, name, sa) in [
        ("ClusterRoleBinding", "lb-allocator", "lb-allocator"),
        ("RoleBinding", "lb-allocator", "lb-allocator"),
        ("ClusterRoleBinding", "lb-agent", "lb-node"),
        ("RoleBinding", "lb-agent", "lb-node"),
        ("RoleBinding", "lb-agent-events", "lb-node"),
    ] {
        let binding = find(&all, kind, name);
        assert_eq!(binding["subjects"][0]["name"], sa, "{kind}/{name}");
        assert_eq!(binding["roleRef"]["name"], name, "{kind}/{name}");
    }
    let leases = &find(&all, "Role", "lb-allocator")["rules"][1]["resourceNames"];
    assert_eq!(
        leases,
        &json!(["ferrolb-allocator"]),
        "the leader Lease keeps its name"
    );
    let secrets = &find(&all, "Role", "lb-agent")["rules"][1]["resourceNames"];
    assert_eq!(
        secrets,
        &json!(["ferrolb-gossip"]),
        "the gossip Secret keeps its name"
    );
    let policy = find(&all, "ValidatingAdmissionPolicy", "lb-agent-own-lease");
    let who = policy["spec"]["matchConditions"][0]["expression"].to_string();
    assert!(
        who.contains("system:serviceaccount:ferrolb-system:lb-node"),
        "{who}"
    );
    let binding = find(
        &all,
        "ValidatingAdmissionPolicyBinding",
        "lb-agent-own-lease",
    );
    assert_eq!(binding["spec"]["policyName"], "lb-agent-own-lease");
    find(&all, "PodDisruptionBudget", "lb-allocator");
    find(&all, "PodDisruptionBudget", "lb-agent");
    find(&all, "ConfigMap", "ferrolb-bird");
    for component in ["allocator", "agent", "bird-sidecar"] {
        find(&all, "Service", &format!("ferrolb-{component}-metrics"));
    }
    for o in all
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        let name = &o["metadata"]["labels"]["app.kubernetes.io/name"];
        if o["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("lb-extra"))
        {
            continue;
        }
        assert_eq!(name, "edge-lb", "{:?}", names(std::slice::from_ref(o)));
    }

    // The NetworkPolicy governs the allocator (the agent pods are on the host network).
    let policy = find(&all, "NetworkPolicy", "lb-allocator");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        json!({ "app.kubernetes.io/name": "edge-lb", "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "allocator" })
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([ { "ports": [ { "port": 9470, "protocol": "TCP" } ],
                  "from": knobs()["networkPolicy"]["metricsFrom"] } ])
    );
    let policies = all.iter().filter(|o| o["kind"] == "NetworkPolicy").count();
    assert_eq!(policies, 1, "{:?}", names(&all));

    // extraObjects, maps and strings, through tpl.
    let extra = find(&all, "ConfigMap", "lb-extra");
    assert_eq!(extra["metadata"]["namespace"], INSTALL_NAMESPACE);
    assert_eq!(extra["data"]["release"], RELEASE);
    assert_eq!(
        find(&all, "ConfigMap", "lb-extra-text")["data"]["chart"],
        "ferrolb"
    );

    // rbac.create=false and serviceAccount.create=false: no RBAC, no ServiceAccount of that
    // component; the workload uses the named one.
    let (ok, rendered) = template(&[
        "rbac.create=false",
        "agent.serviceAccount.create=false",
        "agent.serviceAccount.name=node-lb",
    ]);
    assert!(ok, "{rendered}");
    let all = objects(&rendered);
    let rbac = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    let left: Vec<String> = names(&all)
        .into_iter()
        .filter(|n| rbac.iter().any(|k| n.starts_with(&format!("{k}/"))))
        .collect();
    assert!(
        left.is_empty(),
        "rbac.create=false renders no RBAC: {left:?}"
    );
    let accounts: Vec<String> = names(&all)
        .into_iter()
        .filter(|n| n.starts_with("ServiceAccount/"))
        .collect();
    assert_eq!(accounts, ["ServiceAccount/ferrolb-allocator"]);
    let agent = find(&all, "DaemonSet", "ferrolb-agent");
    assert_eq!(
        agent["spec"]["template"]["spec"]["serviceAccountName"],
        "node-lb"
    );
    let policy = find(&all, "ValidatingAdmissionPolicy", "ferrolb-agent-own-lease");
    let who = policy["spec"]["matchConditions"][0]["expression"].to_string();
    assert!(
        who.contains(":node-lb"),
        "the admission policy follows the name: {who}"
    );

    // Strategy types: rollingUpdate only where the API server takes it; "" priority = none.
    let (ok, rendered) = template(&[
        "allocator.strategy.type=Recreate",
        "allocator.strategy.rollingUpdate.maxSurge=1",
        "agent.priorityClassName=",
    ]);
    assert!(ok, "{rendered}");
    let all = objects(&rendered);
    let allocator = find(&all, "Deployment", "ferrolb-allocator");
    assert_eq!(allocator["spec"]["strategy"], json!({ "type": "Recreate" }));
    let agent = find(&all, "DaemonSet", "ferrolb-agent");
    let spec = &agent["spec"]["template"]["spec"];
    assert!(spec.get("priorityClassName").is_none(), "{spec}");
}
