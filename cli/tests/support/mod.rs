//! Helpers of the tests that run kubectl-ferrolb against the real API server: run the binary,
//! write what the allocator and the agents would (ServiceGroups with status, per-node Leases),
//! and remove the cluster-scoped objects afterwards.

// Each test binary uses its own part of these.
#![allow(dead_code)]

use std::process::Command;

use ferrolb_api::ServiceGroup;
use ferrolb_api::contracts::{INSTALL_NAMESPACE, node_lease_name};
use ferrolb_e2e::controlplane::ControlPlane;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-ferrolb");

pub fn run(cp: &ControlPlane, args: &[&str]) -> String {
    let out = output(cp.kubeconfig(), args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A per-node Lease as an agent writes it, renewed `age` ago.
pub async fn write_lease(
    client: &Client,
    node: &str,
    age: SignedDuration,
    annotations: &[(&str, &str)],
) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let mut l = Lease::default();
    l.metadata.name = Some(node_lease_name(node));
    l.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    l.spec = Some(LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(Timestamp::now() - age)),
        ..Default::default()
    });
    api.create(&PostParams::default(), &l).await?;
    Ok(())
}

/// Removes the test's cluster-scoped objects and Leases, also when the test fails.
pub struct Cleanup {
    pub kubeconfig: std::path::PathBuf,
    pub nodes: Vec<String>,
    pub groups: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let nodes = std::mem::take(&mut self.nodes);
        let groups = std::mem::take(&mut self.groups);
        // A thread, runtime and client of their own: the test's runtime is blocked in this drop,
        // and a client made on it would wait for it forever.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            rt.block_on(async {
                let Ok(client) = client_from(&kubeconfig).await else {
                    return;
                };
                let dp = DeleteParams::default();
                let leases: Api<Lease> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
                let node_api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
                for n in &nodes {
                    let _ = leases.delete(&node_lease_name(n), &dp).await;
                    let _ = node_api.delete(n, &dp).await;
                }
                let group_api: Api<ServiceGroup> = Api::all(client.clone());
                for g in &groups {
                    let _ = group_api.delete(g, &dp).await;
                }
            });
        })
        .join();
    }
}

pub async fn client_from(path: &std::path::Path) -> anyhow::Result<Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

pub async fn service_group(client: &Client, name: &str, spec: Value, status: Value) {
    let api: Api<ServiceGroup> = Api::all(client.clone());
    let obj = json!({
        "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
        "metadata": { "name": name }, "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("ServiceGroup created");
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .expect("ServiceGroup status written");
}

/// Runs kubectl-ferrolb against `cp`: exit code, standard output, standard error.
pub fn run_status(cp: &ControlPlane, args: &[&str]) -> (Option<i32>, String, String) {
    run_with(cp.kubeconfig(), args)
}

/// Runs kubectl-ferrolb with `kubeconfig`: exit code, standard output, standard error.
pub fn run_with(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = output(kubeconfig, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Sets `node`'s per-node Lease renewTime to now, as its agent's next renewal would.
pub async fn renew_lease(client: &Client, node: &str) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    api.patch(
        &node_lease_name(node),
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": { "renewTime": MicroTime(Timestamp::now()) } })),
    )
    .await?;
    Ok(())
}

fn output(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl-ferrolb runs")
}
