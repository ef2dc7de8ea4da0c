//! Packaging, proven on the real API server: the chart lints, its schema refuses bad values,
//! every knob reaches the objects it should (and values of an older release render today's
//! objects), every object it renders is accepted, the plain manifest is fresh, each
//! ServiceAccount gets exactly its rights (the agent only its own node's Lease), and install,
//! upgrade and uninstall with the allocator and an agent running lose no address, CRD or default
//! ServiceGroup.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::{INSTALL_NAMESPACE, gossip, node_lease_name};
use ferrolb_e2e::controlplane::{ControlPlane, MANAGEMENT_ADDRESS};
use ferrolb_e2e::env;
use ferrolb_e2e::kubelet;
use ferrolb_e2e::process::{Process, tied};
use ferrolb_e2e::topology::Topology;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// One release of the chart at a time: the tests that install it share the cluster-wide names.
static CHART: Mutex<()> = Mutex::const_new(());
const RELEASE: &str = "ferrolb";
const AGENT_SA: &str = "system:serviceaccount:ferrolb-system:ferrolb-agent";
const ALLOCATOR_SA: &str = "system:serviceaccount:ferrolb-system:ferrolb-allocator";
/// Loose bound for anything the running components must show (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

fn chart() -> PathBuf {
    repo().join("manifests/helm/ferrolb")
}

fn kube_version() -> String {
    let versions = std::fs::read_to_string(repo().join("e2e/control-plane/versions.env"))
        .expect("versions.env");
    versions
        .lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION=v"))
        .expect("KUBERNETES_VERSION in versions.env")
        .trim()
        .to_string()
}

/// `(succeeded, stdout + stderr)` of a finished command.
fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// helm with its own config and cache directories (nothing of the user's is read or written).
fn helm(kubeconfig: Option<&Path>) -> Command {
    let home = std::env::temp_dir().join(format!("ferrolb-helm-{}", std::process::id()));
    let mut cmd = Command::new(env::tool("helm"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    if let Some(kc) = kubeconfig {
        cmd.arg("--kubeconfig").arg(kc);
    }
    cmd
}

fn helm_ready() -> bool {
    env::require("helm", env::missing_tool("helm"))
}

/// `helm template` of the chart in ferrolb-system with `sets`.
fn template(sets: &[&str]) -> (bool, String) {
    template_of(&chart(), None, sets)
}

/// `helm template` of the chart at `dir` in ferrolb-system, with a values file (written as JSON,
/// which is YAML) and `sets`.
fn template_of(dir: &Path, values: Option<&Value>, sets: &[&str]) -> (bool, String) {
    let mut cmd = helm(None);
    cmd.args(["template", RELEASE]).arg(dir).args([
        "--namespace",
        INSTALL_NAMESPACE,
        "--kube-version",
        &kube_version(),
    ]);
    if let Some(values) = values {
        cmd.arg("-f").arg(values_file(values));
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    output(&mut cmd)
}

/// A file holding `values`, unique to this call.
fn values_file(values: &Value) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ferrolb-values-{}-{n}.json", std::process::id()));
    std::fs::write(&path, values.to_string()).expect("write a values file");
    path
}

/// The objects of a rendered stream, as JSON values.
fn objects(rendered: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(rendered)
        .unwrap_or_else(|e| panic!("helm rendered YAML that does not parse: {e}\n{rendered}"))
        .into_iter()
        .filter(|o| !o.is_null())
        .collect()
}

/// `kind/name` of every object, for messages.
fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]).replace('"', ""))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered, only {:?}", names(objects)))
}

/// A container of a workload's pod template.
fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {workload}"))
}

/// The value of the environment variable `name` of a container.
fn env_of<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == name))
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("no {name} in the env of {container}"))
}

/// Values that turn every optional part on (the ServiceMonitor needs the Prometheus Operator's
/// CRD, which this API server does not have; it is rendered and linted only).
const EVERYTHING: &[&str] = &[
    "defaultServiceGroup.create=true",
    "defaultServiceGroup.spec.local.v4pools[0].subnet=192.0.2.0/24",
    "defaultServiceGroup.spec.local.v4pools[0].pool=192.0.2.200-192.0.2.209",
    "birdSidecar.values.localASN=64512",
    "birdSidecar.values.peers[0].address=192.0.2.1",
    "birdSidecar.values.peers[0].asn=64500",
    "agent.gossipMaxInterval=2s",
];

#[test]
fn chart_crds_and_bird_template_are_copies_of_their_sources() {
    let generated = repo().join("crds");
    let copies = chart().join("crds");
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&generated),
        names(&copies),
        "the chart's crds/ must hold exactly the generated CRDs: cp crds/*.yaml {}/",
        copies.display()
    );
    for name in names(&generated) {
        let a = std::fs::read(generated.join(&name)).expect("generated CRD");
        let b = std::fs::read(copies.join(&name)).expect("chart CRD");
        assert!(
            a == b,
            "{}/{name} differs from crds/{name}: cp crds/*.yaml {}/",
            copies.display(),
            copies.display()
        );
    }
    let source = std::fs::read(repo().join("bird-sidecar/templates/bird.conf.tmpl"))
        .expect("bird-sidecar's default template");
    let copy = std::fs::read(chart().join("files/bird.conf.tmpl")).expect("the chart's template");
    assert!(
        source == copy,
        "the chart's files/bird.conf.tmpl differs from bird-sidecar/templates/bird.conf.tmpl"
    );
}

#[test]
fn plain_manifest_is_the_chart_rendered_without_a_secret() {
    if !helm_ready() {
        return;
    }
    let (ok, fresh) = output(
        Command::new("bash")
            .arg(repo().join("manifests/render.sh"))
            .arg("--stdout")
            .env("HELM", env::tool("helm")),
    );
    assert!(ok, "manifests/render.sh failed: {fresh}");
    let committed = std::fs::read_to_string(repo().join("manifests/ferrolb.yaml"))
        .expect("manifests/ferrolb.yaml");
    assert!(
        fresh == committed,
        "manifests/ferrolb.yaml is stale: run manifests/render.sh"
    );
    assert!(
        !committed.contains("kind: Secret"),
        "the plain manifest must not carry a (random) gossip Secret"
    );
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "DaemonSet",
        "ValidatingAdmissionPolicy",
        "ConfigMap",
    ] {
        assert!(committed.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
}

#[test]
fn chart_lints_and_its_schema_refuses_bad_values() {
    if !helm_ready() {
        return;
    }
    let kv = kube_version();
    let (ok, out) = output(
        helm(None)
            .args(["lint", "--strict", "--namespace", INSTALL_NAMESPACE])
            .args(["--kube-version", &kv])
            .arg(chart()),
    );
    assert!(ok, "helm lint: {out}");
    let mut all = EVERYTHING.to_vec();
    all.push("metrics.serviceMonitor.enabled=true");
    let (ok, out) = template(&all);
    assert!(ok, "everything on renders: {out}");
    assert!(out.contains("kind: ServiceMonitor"), "{out}");
    let (ok, out) = template(&["birdSidecar.enabled=false"]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("name: bird-sidecar") && !out.contains("name: ferrolb-bird\n"),
        "without the sidecar neither its container nor its ConfigMap: {out}"
    );
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str)] = &[
        ("no replicas", &["allocator.replicas=0"], "replicas"),
        ("unknown value", &["alocator.replicas=2"], "alocator"),
        ("bad log format", &["logFormat=xml"], "logFormat"),
        ("default group without a pool", &["defaultServiceGroup.create=true"], "defaultServiceGroup"),
        ("BGP password in a ConfigMap", &["birdSidecar.values.peers[0].address=192.0.2.1", "birdSidecar.values.peers[0].asn=64500", "birdSidecar.values.peers[0].password=secret",], "password"),
        ("bad duration", &["agent.gossipMaxInterval=2h"], "gossipMaxInterval"),
        ("bad priority class", &["agent.priorityClassName=Node_Critical"], "priorityClassName"),
        ("pod annotations not a map", &["allocator.podAnnotations=x"], "podAnnotations"),
        ("pod label not a string", &["agent.podLabels.rack=7"], "podLabels"),
        ("unknown securityContext field", &["allocator.securityContext.runAsUsr=1"], "runAsUsr"),
        ("securityContext field of a bad type", &["agent.securityContext.readOnlyRootFilesystem=yes"], "readOnlyRootFilesystem"),
        ("pod securityContext of a bad type", &["allocator.podSecurityContext.runAsUser=-1"], "runAsUser"),
        ("sidecar capabilities not a list", &["birdSidecar.securityContext.capabilities.add=NET_ADMIN"], "capabilities"),
        ("a Deployment's strategy on the DaemonSet", &["agent.updateStrategy.type=Recreate"], "updateStrategy"),
        ("a DaemonSet's strategy on the Deployment", &["allocator.strategy.type=OnDelete"], "strategy"),
        ("bad rolling update", &["allocator.strategy.rollingUpdate.maxSurge=half"], "maxSurge"),
        ("bad log level", &["logLevel=verbose"], "logLevel"),
        ("log level not a string", &["logLevel=3"], "logLevel"),
        ("bad fullnameOverride", &["fullnameOverride=Ferro_LB"], "fullnameOverride"),
        ("bad nameOverride", &["nameOverride=ferro.lb"], "nameOverride"),
        ("rbac.create not a boolean", &["rbac.create=maybe"], "rbac"),
        ("bad ServiceAccount name", &["agent.serviceAccount.name=Agent_SA"], "serviceAccount"),
        ("NetworkPolicy peers not a list", &["networkPolicy.metricsFrom=everyone"], "metricsFrom"),
        ("unknown NetworkPolicy peer", &["networkPolicy.metricsFrom[0].pods=all"], "metricsFrom"),
        ("extra object without a kind", &["extraObjects[0].apiVersion=v1"], "extraObjects"),
    ];
    for (name, sets, field) in cases {
        let (ok, out) = template(sets);
        assert!(!ok, "{name}: the schema must refuse {sets:?}");
        assert!(
            out.contains(field),
            "{name}: the error names {field}: {out}"
        );
    }
    let mut other_ns = helm(None);
    other_ns.args(["template", RELEASE]).arg(chart()).args([
        "--namespace",
        "kube-system",
        "--kube-version",
        &kv,
    ]);
    let (ok, out) = output(&mut other_ns);
    assert!(
        !ok && out.contains("ferrolb-system"),
        "another namespace is refused: {out}"
    );
}

/// Every chart knob set at once (a values file, so dots in keys and nulls need no escaping).
fn knobs() -> Value {
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

/// The values this chart added after 0.1.0: absent from the values of a release made with 0.1.0,
/// which `helm upgrade --reuse-values` hands to the new templates.
const NEW_VALUES: &[&str] = &[
    "/nameOverride",
    "/fullnameOverride",
    "/logLevel",
    "/rbac",
    "/networkPolicy",
    "/extraObjects",
    "/birdSidecar/securityContext",
];
const NEW_POD_VALUES: &[&str] = &[
    "priorityClassName",
    "podAnnotations",
    "podLabels",
    "podSecurityContext",
    "securityContext",
    "strategy",
    "updateStrategy",
    "serviceAccount",
];

#[test]
fn chart_defaults_render_todays_objects_also_from_older_values() {
    if !helm_ready() {
        return;
    }
    let (ok, today) = template(&[]);
    assert!(ok, "{today}");
    let all = objects(&today);
    let allocator = find(&all, "Deployment", "ferrolb-allocator");
    let pod = &allocator["spec"]["template"]["spec"];
    assert!(allocator["spec"].get("strategy").is_none(), "{allocator}");
    assert!(pod.get("priorityClassName").is_none(), "{pod}");
    assert_eq!(pod["serviceAccountName"], "ferrolb-allocator");
    assert_eq!(
        pod["securityContext"],
        json!({ "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "seccompProfile": { "type": "RuntimeDefault" } })
    );
    let c = container(allocator, "allocator");
    assert_eq!(
        c["securityContext"],
        json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] } })
    );
    assert_eq!(env_of(c, "RUST_LOG"), "info");
    let agent = find(&all, "DaemonSet", "ferrolb-agent");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(
        agent["spec"]["updateStrategy"],
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } })
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["hostNetwork"], true);
    assert!(pod.get("securityContext").is_none(), "{pod}");
    for (name, caps) in [
        ("agent", json!(["NET_ADMIN", "NET_RAW"])),
        (
            "bird-sidecar",
            json!(["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]),
        ),
    ] {
        assert_eq!(
            container(agent, name)["securityContext"],
            json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "capabilities": { "drop": ["ALL"], "add": caps } })
        );
    }
    for kind in ["NetworkPolicy", "PriorityClass"] {
        assert!(
            all.iter().all(|o| o["kind"] != kind),
            "no {kind} by default"
        );
    }

    // The chart with the values of a 0.1.0 release (what --reuse-values hands over) renders
    // exactly what the defaults do: no knob depends on a key being present.
    let dir = std::env::temp_dir().join(format!("ferrolb-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&chart(), &dir);
    let text = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    let mut old: Value = serde_saphyr::from_str(&text).expect("values.yaml parses");
    for path in NEW_VALUES {
        let (parent, key) = path.rsplit_once('/').expect("a pointer");
        let map = old.pointer_mut(parent).and_then(Value::as_object_mut);
        map.and_then(|m| m.remove(key))
            .unwrap_or_else(|| panic!("values.yaml has {path}"));
    }
    for component in ["allocator", "agent"] {
        let map = old[component].as_object_mut().expect("a component");
        for key in NEW_POD_VALUES {
            map.remove(*key);
        }
    }
    std::fs::write(dir.join("values.yaml"), old.to_string()).expect("write values.yaml");
    let (ok, older) = template_of(&dir, None, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{older}");
    assert!(
        older == today,
        "older values render differently:\n--- older ---\n{older}\n--- today ---\n{today}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).expect("read a directory").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    if !helm_ready() {
        return;
    }
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    // Not beside a real install: a dry-run create races with helm's real one.
    let _one_at_a_time = CHART.lock().await;
    let (ok, rendered) = template(EVERYTHING);
    assert!(ok, "{rendered}");
    let (ok, knobbed) = template_of(&chart(), Some(&knobs()), EVERYTHING);
    assert!(ok, "{knobbed}");
    let plain = std::fs::read_to_string(repo().join("manifests/ferrolb.yaml")).expect("manifest");
    // The plain manifest as docs/install.md applies it (server-side).
    let cases = [
        ("the chart", rendered, "--server-side=false"),
        ("the chart with every knob", knobbed, "--server-side=false"),
        ("manifests/ferrolb.yaml", plain, "--server-side=true"),
    ];
    for (what, yaml, mode) in cases {
        let objects = yaml.matches("\nkind: ").count();
        let args = ["apply", mode, "--dry-run=server", "-f", "-"];
        let (ok, out) = cp.kubectl_with_input(&args, &yaml);
        assert!(ok, "{what}: the API server refused an object:\n{out}");
        let accepted = out.matches("(server dry run)").count();
        assert_eq!(accepted, objects, "{what}: every object accepted:\n{out}");
    }
}

/// The chart installed for one test (under [`CHART`]); uninstalled on drop.
struct Installed {
    kubeconfig: PathBuf,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Installed {
    async fn new(cp: &ControlPlane, sets: &[&str]) -> (Installed, String) {
        let guard = CHART.lock().await;
        let mut cmd = helm(Some(cp.kubeconfig()));
        cmd.args(["install", RELEASE]).arg(chart()).args([
            "--namespace",
            INSTALL_NAMESPACE,
            "--timeout",
            "2m",
        ]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let (ok, out) = output(&mut cmd);
        assert!(ok, "helm install: {out}");
        let installed = Installed {
            kubeconfig: cp.kubeconfig().to_path_buf(),
            _one_at_a_time: guard,
        };
        // The authorizer learns new bindings from its caches: wait until they are there.
        let nobody = || String::new();
        eventually("the chart's RBAC takes effect", &nobody, || {
            let sys = INSTALL_NAMESPACE;
            (can_i(cp, ALLOCATOR_SA, "watch", "services", "-A", &[])
                && can_i(cp, AGENT_SA, "get", "secrets/ferrolb-gossip", sys, &[])
                && can_i(cp, AGENT_SA, "create", "events", "default", &[]))
            .then_some(())
        })
        .await;
        (installed, out)
    }

    fn helm(&self, args: &[&str]) -> (bool, String) {
        output(
            helm(Some(&self.kubeconfig))
                .args(args)
                .args(["--namespace", INSTALL_NAMESPACE]),
        )
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.helm(&["uninstall", RELEASE, "--wait", "--timeout", "2m"]);
    }
}

/// A kubeconfig for `token` (a ServiceAccount's), reaching the API server on `host`.
fn token_kubeconfig(cp: &ControlPlane, host: &str, name: &str, token: &str) -> PathBuf {
    let path = cp.dir().join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        port = cp.port(),
        ca = cp.dir().join("ca.crt").display(),
    );
    std::fs::write(&path, text).expect("write a kubeconfig");
    path
}

/// A token of ServiceAccount `sa` in ferrolb-system; bound to `pod` when given.
fn token(cp: &ControlPlane, sa: &str, pod: Option<&str>) -> String {
    let mut cmd = cp.kubectl();
    cmd.args([
        "create",
        "token",
        sa,
        "-n",
        INSTALL_NAMESPACE,
        "--duration",
        "1h",
    ]);
    if let Some(pod) = pod {
        cmd.args(["--bound-object-kind", "Pod", "--bound-object-name", pod]);
    }
    let (ok, out) = output(&mut cmd);
    assert!(ok, "kubectl create token {sa}: {out}");
    out.trim().to_string()
}

/// A Pod object bound to `node` (no kubelet runs it); its tokens name the node.
fn bound_pod(cp: &ControlPlane, name: &str, node: &str) {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": INSTALL_NAMESPACE },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "ferrolb-agent",
            "automountServiceAccountToken": false,
            "containers": [ { "name": "agent", "image": "ghcr.io/ferrolb/agent:0.1.0" } ],
        }
    });
    let (ok, out) = cp.kubectl_with_input(&["apply", "-f", "-"], &pod.to_string());
    assert!(ok, "create the Pod {name}: {out}");
}

fn delete_pod(cp: &ControlPlane, name: &str) {
    // No kubelet confirms a graceful deletion: force it, or the Pod stays Terminating.
    let _ = output(cp.kubectl().args([
        "delete",
        "pod",
        name,
        "-n",
        INSTALL_NAMESPACE,
        "--grace-period=0",
        "--force",
        "--ignore-not-found",
    ]));
}

/// `kubectl auth can-i` as `user`: `(verb, resource, namespace or "-A", extra flags)`.
fn can_i(
    cp: &ControlPlane,
    user: &str,
    verb: &str,
    resource: &str,
    ns: &str,
    extra: &[&str],
) -> bool {
    let mut cmd = cp.kubectl();
    cmd.args(["auth", "can-i", verb, resource, "--as", user]);
    if ns == "-A" {
        cmd.arg("--all-namespaces");
    } else {
        cmd.args(["-n", ns]);
    }
    cmd.args(extra);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("kubectl auth can-i");
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource} as {user}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

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

/// Polls `f` every 200 ms until it returns `Some`, for at most [`PATIENCE`].
async fn eventually<T>(
    what: &str,
    logs: &dyn Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
