//! The chart's gossip Secret under GitOps (issue 16 item 14): rendered without a cluster
//! (`helm template`, as GitOps tools do) the chart used to generate a new random key on every
//! render, so every sync rotated the key in one step and split gossip. Offline it now emits no
//! Secret at all, so renders are identical; `helm install` still generates the key once and
//! upgrades keep it (the packaging lifecycle test).

use std::process::Stdio;

use ferrolb_e2e::env;

/// `helm template` of the chart in ferrolb-system with `sets`, without a cluster.
fn template(sets: &[&str]) -> String {
    let mut cmd = env::helm(None);
    cmd.args(["template", "ferrolb"])
        .arg(env::chart_dir())
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
