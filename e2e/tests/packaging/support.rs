//! What the packaging tests share: helm and `helm template` of the chart, the rendered objects
//! as JSON, the chart installed for one test, ServiceAccount tokens and `kubectl auth can-i`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_api::contracts::INSTALL_NAMESPACE;
use ferrolb_e2e::controlplane::ControlPlane;
use ferrolb_e2e::env;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// One release of the chart at a time: the tests that install it share the cluster-wide names.
pub static CHART: Mutex<()> = Mutex::const_new(());
pub const RELEASE: &str = "ferrolb";
pub const AGENT_SA: &str = "system:serviceaccount:ferrolb-system:ferrolb-agent";
pub const ALLOCATOR_SA: &str = "system:serviceaccount:ferrolb-system:ferrolb-allocator";
/// Loose bound for anything the running components must show (a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

pub fn chart() -> PathBuf {
    repo().join("manifests/helm/ferrolb")
}

pub fn kube_version() -> String {
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
pub fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

pub use ferrolb_e2e::env::helm;

pub fn helm_ready() -> bool {
    env::require("helm", env::missing_tool("helm"))
}

/// `helm template` of the chart in ferrolb-system with `sets`.
pub fn template(sets: &[&str]) -> (bool, String) {
    template_of(&chart(), None, sets)
}

/// `helm template` of the chart at `dir` in ferrolb-system, with a values file (written as JSON,
/// which is YAML) and `sets`.
pub fn template_of(dir: &Path, values: Option<&Value>, sets: &[&str]) -> (bool, String) {
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
pub fn values_file(values: &Value) -> PathBuf {
    pub static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ferrolb-values-{}-{n}.json", std::process::id()));
    std::fs::write(&path, values.to_string()).expect("write a values file");
    path
}

/// The objects of a rendered stream, as JSON values.
pub fn objects(rendered: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(rendered)
        .unwrap_or_else(|e| panic!("helm rendered YAML that does not parse: {e}\n{rendered}"))
        .into_iter()
        .filter(|o| !o.is_null())
        .collect()
}

/// `kind/name` of every object, for messages.
pub fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]).replace('"', ""))
        .collect()
}

pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered, only {:?}", names(objects)))
}

/// A container of a workload's pod template.
pub fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {workload}"))
}

/// The value of the environment variable `name` of a container.
pub fn env_of<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == name))
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("no {name} in the env of {container}"))
}

/// Values that turn every optional part on (the ServiceMonitor needs the Prometheus Operator's
/// CRD, which this API server does not have; it is rendered and linted only).
pub const EVERYTHING: &[&str] = &[
    "defaultServiceGroup.create=true",
    "defaultServiceGroup.spec.local.v4pools[0].subnet=192.0.2.0/24",
    "defaultServiceGroup.spec.local.v4pools[0].pool=192.0.2.200-192.0.2.209",
    "birdSidecar.values.localASN=64512",
    "birdSidecar.values.peers[0].address=192.0.2.1",
    "birdSidecar.values.peers[0].asn=64500",
    "agent.gossipMaxInterval=2s",
];

/// The chart installed for one test (under [`CHART`]); uninstalled on drop.
pub struct Installed {
    kubeconfig: PathBuf,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Installed {
    pub async fn new(cp: &ControlPlane, sets: &[&str]) -> (Installed, String) {
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

    pub fn helm(&self, args: &[&str]) -> (bool, String) {
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
pub fn token_kubeconfig(cp: &ControlPlane, host: &str, name: &str, token: &str) -> PathBuf {
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
pub fn token(cp: &ControlPlane, sa: &str, pod: Option<&str>) -> String {
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
pub fn bound_pod(cp: &ControlPlane, name: &str, node: &str) {
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

pub fn delete_pod(cp: &ControlPlane, name: &str) {
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
pub fn can_i(
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

/// Polls `f` every 200 ms until it returns `Some`, for at most [`PATIENCE`].
pub async fn eventually<T>(
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
