//! kubectl-ferrolb against the real API server: what `migrate` writes is accepted, what
//! `check` refuses the server refuses too.

use std::process::Command;

use ferrolb_e2e::controlplane::ControlPlane;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-ferrolb");

fn migrate(from: &str, file: &str) -> String {
    let out = Command::new(BIN)
        .args(["migrate", "--from", from, file])
        .output()
        .expect("kubectl-ferrolb runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("YAML is UTF-8")
}

fn server_dry_run(cp: &ControlPlane, yaml: &str) -> (bool, String) {
    cp.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], yaml)
}

#[tokio::test]
async fn migrated_metallb_and_purelb_objects_are_accepted_by_the_api_server() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    for (from, file, objects) in [
        ("metallb", "testdata/metallb.yaml", 2),
        ("purelb", "testdata/purelb.yaml", 7),
    ] {
        let yaml = migrate(from, file);
        let (ok, text) = server_dry_run(cp, &yaml);
        assert!(ok, "{from}: {text}\n{yaml}");
        assert_eq!(
            text.matches("(server dry run)").count(),
            objects,
            "{from}: {text}"
        );
    }
}

#[tokio::test]
async fn check_and_the_api_server_agree_on_the_example_files() {
    let Some(cp) = ControlPlane::shared().await else {
        return;
    };
    for (file, valid) in [
        ("../docs/examples/servicegroups.yaml", true),
        ("../docs/examples/bad-servicegroup.yaml", false),
    ] {
        let check = Command::new(BIN)
            .args(["check", file])
            .output()
            .expect("check runs");
        assert_eq!(
            check.status.success(),
            valid,
            "{file}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let (ok, text) = server_dry_run(cp, &std::fs::read_to_string(file).expect("example file"));
        assert_eq!(ok, valid, "{file}: {text}");
    }
}
