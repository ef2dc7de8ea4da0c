//! The chart itself: its CRDs and BIRD template are copies of their sources, it lints, its schema
//! refuses bad values, and values of an older release render today's objects.

use std::path::Path;

use ferrolb_api::contracts::INSTALL_NAMESPACE;
use serde_json::{Value, json};

use crate::support::*;

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
