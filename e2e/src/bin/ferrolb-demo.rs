//! `make demo`: builds a real control plane and shows what ferrolb does today, with real output
//! only. Later parts (allocator, agents, routers) join as they land. `--down` removes leftovers.

use std::process::Command;

use ferrolb_e2e::controlplane::ControlPlane;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--down") {
        ferrolb_e2e::controlplane::cleanup_leftovers();
        println!("removed the leftovers of earlier demo and test runs");
        return Ok(());
    }
    if let Some(why) = ControlPlane::missing() {
        anyhow::bail!("{why}");
    }
    heading("Starting a real control plane (etcd, kube-apiserver, kube-controller-manager)");
    let started = std::time::Instant::now();
    let cp = ControlPlane::start().await?;
    println!(
        "API server on https://127.0.0.1:{port} and https://198.18.0.1:{port}, ready in {:.1} s",
        started.elapsed().as_secs_f64(),
        port = cp.port()
    );
    let root = env!("CARGO_MANIFEST_DIR").to_string() + "/..";
    let examples = format!("{root}/docs/examples");

    heading("ferrolb's CRDs, installed from the Rust types (crds/)");
    run(
        &cp,
        &[
            "get",
            "crd",
            "servicegroups.ferrolb.io",
            "lbnodeagents.ferrolb.io",
        ],
    );

    heading("Applying example pools: docs/examples/servicegroups.yaml");
    run(
        &cp,
        &["apply", "-f", &format!("{examples}/servicegroups.yaml")],
    );
    run(&cp, &["get", "servicegroups,lbnodeagents"]);

    heading("A ServiceGroup with a mistake is refused, naming the field");
    run(
        &cp,
        &["apply", "-f", &format!("{examples}/bad-servicegroup.yaml")],
    );

    heading("Done; tearing the control plane down");
    drop(cp);
    Ok(())
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

fn run(cp: &ControlPlane, args: &[&str]) {
    println!("$ kubectl {}", args.join(" "));
    let mut cmd: Command = cp.kubectl();
    match cmd.args(args).output() {
        Ok(out) => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            print!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Err(e) => println!("cannot run kubectl: {e}"),
    }
}
