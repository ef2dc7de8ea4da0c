//! What users apply: the plain manifest is the chart rendered without a Secret, and the API
//! server accepts every object the chart (with and without every knob) or the manifest holds.

use std::process::Command;

use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::env;

use crate::knobs::knobs;
use crate::support::*;

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
