//! The chart's gossip Secret under GitOps (issue 16 item 14): rendered without a cluster
//! (`helm template`, as GitOps tools do) the chart used to generate a new random key on every
//! render, so every sync rotated the key in one step and split gossip. Offline it now emits no
//! Secret at all, so renders are identical; `helm install` still generates the key once and
//! upgrades keep it (the packaging lifecycle test).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrolb_e2e::env;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .join("manifests/helm/ferrolb")
}

/// `helm template` of the chart in ferrolb-system with `sets`, without a cluster.
fn template(sets: &[&str]) -> String {
    let home = std::env::temp_dir().join(format!("ferrolb-helm-gs-{}", std::process::id()));
    let mut cmd = Command::new(env::tool("helm"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(["template", "ferrolb"])
        .arg(chart())
        .args(["--namespace", "ferrolb-system"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        out.status.success(),
        "helm template {sets:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn offline_renders_carry_no_gossip_key_and_are_identical() {
    if !env::require("helm", env::missing_tool("helm")) {
        return;
    }
    for sets in [
        &[][..],
        &["gossip.createSecret=true"],
        &["gossip.createSecret=false"],
    ] {
        let first = template(sets);
        assert!(
            !first.contains("kind: Secret"),
            "{sets:?}: an offline render must not carry a (random) gossip key:\n{first}"
        );
        assert_eq!(first, template(sets), "{sets:?}: two renders differ");
    }
}
