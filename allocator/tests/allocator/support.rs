//! The harness: the real `ferrolb-allocator` binary as a process scoped to one test namespace,
//! builders for Services and ServiceGroups, and bounded polling.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_api::ServiceGroup;
use ferrolb_e2e::controlplane::{ControlPlane, TestNamespace};
use ferrolb_e2e::process::{Process, tied};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// How long any expected state may take to show.
pub const PATIENCE: Duration = Duration::from_secs(20);
const STEP: Duration = Duration::from_millis(100);
const MANAGER: &str = "ferrolb-test";
pub const SCOPE_LABEL: &str = "ferrolb.io/test";

/// Polls `f` until it returns `Some`, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(STEP).await;
    }
}

/// One test's world: its namespace on the shared control plane.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub ns: TestNamespace,
    pub client: Client,
}

pub async fn env(test: &str) -> Option<Env> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace(test).await.expect("a test namespace");
    let client = ns.client();
    Some(Env { cp, ns, client })
}

/// A running allocator; killed (SIGKILL) on drop, its log printed when the test fails.
pub struct Allocator {
    process: Process,
    log: PathBuf,
    pub metrics: u16,
}

impl Allocator {
    /// SIGKILL: no graceful release of anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn exited(&mut self) -> bool {
        self.process.exit_status().is_some()
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- allocator log {} ---\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Env {
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// A cluster-wide name unique to this test.
    pub fn group_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name())
    }

    /// Starts the allocator binary serving only this test's namespace and groups.
    pub fn allocator(&self, identity: &str, leader_elect: bool) -> Allocator {
        self.allocator_with(identity, leader_elect, &[])
    }

    /// [`Env::allocator`] with extra flags.
    pub fn allocator_with(&self, identity: &str, leader_elect: bool, extra: &[&str]) -> Allocator {
        self.allocator_via(identity, leader_elect, extra, self.cp.kubeconfig())
    }

    /// [`Env::allocator_with`] reaching the API server as `kubeconfig` says (e.g. through a proxy).
    pub fn allocator_via(
        &self,
        identity: &str,
        leader_elect: bool,
        extra: &[&str],
        kubeconfig: &std::path::Path,
    ) -> Allocator {
        let metrics = free_port();
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ferrolb-allocator-{}-{identity}.log", self.name()));
        let out = File::create(&log).expect("a log file");
        let mut cmd = tied(env!("CARGO_BIN_EXE_ferrolb-allocator"));
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args([
                "--leader-elect",
                if leader_elect { "true" } else { "false" },
            ])
            .args(["--lease-namespace", self.name()])
            .args(["--identity", identity])
            .args(["--watch-namespace", self.name()])
            .args([
                "--group-selector",
                &format!("{SCOPE_LABEL}={}", self.name()),
            ])
            .args(extra)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        let process = Process::spawn(&format!("allocator {identity}"), cmd, Some(log.clone()))
            .expect("the allocator starts");
        Allocator {
            process,
            log,
            metrics,
        }
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), self.name())
    }

    pub fn groups(&self) -> Api<ServiceGroup> {
        Api::all(self.client.clone())
    }

    /// Creates or updates a ServiceGroup (labelled for this test's allocator).
    pub async fn apply_group(&self, name: &str, spec: Value) {
        let body = json!({
            "apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup",
            "metadata": { "name": name, "labels": { SCOPE_LABEL: self.name() } },
            "spec": spec,
        });
        self.groups()
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply ServiceGroup");
    }

    /// Creates or updates a Service as a user would (its own field manager).
    pub async fn apply_svc(&self, s: &Svc) {
        let mut body = s.0.clone();
        body["metadata"]["namespace"] = self.name().into();
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.services()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply Service");
    }

    pub async fn delete_svc(&self, name: &str) {
        let _ = self.services().delete(name, &DeleteParams::default()).await;
    }

    /// The Service's `status.loadBalancer.ingress` IPs.
    pub async fn ips(&self, name: &str) -> Vec<String> {
        let svc = self.services().get_opt(name).await.ok().flatten();
        ingress(svc.as_ref())
    }

    /// Waits until the Service shows exactly `want`.
    pub async fn wait_ips(&self, name: &str, want: &[&str]) -> Service {
        let what = format!("{name} to show {want:?}");
        eventually(&what, || async {
            let svc = self.services().get_opt(name).await.ok().flatten()?;
            (ingress(Some(&svc)) == want).then_some(svc)
        })
        .await
    }

    /// Waits until the Service shows any address; returns them.
    pub async fn wait_any_ips(&self, name: &str, count: usize) -> Vec<String> {
        eventually(&format!("{name} to get {count} address(es)"), || async {
            let ips = self.ips(name).await;
            (ips.len() == count).then_some(ips)
        })
        .await
    }

    pub async fn annotations(&self, name: &str) -> BTreeMap<String, String> {
        self.services()
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.metadata.annotations)
            .unwrap_or_default()
    }

    /// (reason, note) of the Events about a Service.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), self.name());
        let list = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an Event with `reason` on the Service; returns its note.
    pub async fn wait_event(&self, name: &str, reason: &str) -> String {
        self.wait_event_with(name, reason, "").await
    }

    /// Waits for an Event with `reason` whose note contains `text`.
    pub async fn wait_event_with(&self, name: &str, reason: &str, text: &str) -> String {
        eventually(
            &format!("a {reason} Event on {name} saying {text:?}"),
            || async {
                self.events(name)
                    .await
                    .into_iter()
                    .find(|(r, n)| r == reason && n.contains(text))
                    .map(|(_, n)| n)
            },
        )
        .await
    }

    /// The status of a ServiceGroup's condition: (status, message).
    pub async fn condition(&self, group: &str, type_: &str) -> Option<(String, String)> {
        let g = self.groups().get_opt(group).await.ok().flatten()?;
        let c = g
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status, c.message))
    }

    pub async fn wait_condition(&self, group: &str, type_: &str, status: &str) -> String {
        eventually(&format!("{group} condition {type_}={status}"), || async {
            self.condition(group, type_)
                .await
                .filter(|(s, _)| s == status)
                .map(|(_, m)| m)
        })
        .await
    }

    /// GET /metrics of an allocator.
    pub async fn metrics(&self, a: &Allocator) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", a.metrics)).await else {
            return String::new();
        };
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }
}

pub fn ingress(svc: Option<&Service>) -> Vec<String> {
    svc.and_then(|s| s.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|e| e.ip.clone()).collect())
        .unwrap_or_default()
}

/// A local group's spec from v4 and v6 pools (`subnet`, `pool`).
pub fn local(v4: &[(&str, &str)], v6: &[(&str, &str)]) -> Value {
    let pools = |p: &[(&str, &str)]| -> Vec<Value> {
        p.iter()
            .map(|(s, r)| json!({ "subnet": s, "pool": r }))
            .collect()
    };
    json!({ "local": { "v4pools": pools(v4), "v6pools": pools(v6) } })
}

/// A Service as a user writes it.
#[derive(Clone)]
pub struct Svc(pub Value);

pub fn svc(name: &str) -> Svc {
    Svc(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "annotations": {} },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80, "protocol": "TCP" } ],
                  "selector": { "app": name } }
    }))
}

impl Svc {
    pub fn ann(mut self, k: &str, v: &str) -> Self {
        self.0["metadata"]["annotations"][k] = v.into();
        self
    }
    pub fn group(self, g: &str) -> Self {
        self.ann(ferrolb_api::annotations::SERVICE_GROUP, g)
    }
    pub fn spec(mut self, k: &str, v: Value) -> Self {
        self.0["spec"][k] = v;
        self
    }
    pub fn policy(self, p: &str) -> Self {
        self.spec("ipFamilyPolicy", p.into())
    }
    pub fn v6(self) -> Self {
        self.spec("ipFamilies", json!(["IPv6"]))
            .policy("SingleStack")
    }
    pub fn ports(self, ports: &[(&str, i32)]) -> Self {
        let p: Vec<Value> = ports
            .iter()
            .map(|(proto, port)| json!({ "name": format!("{}-{port}", proto.to_lowercase()), "protocol": proto, "port": port }))
            .collect();
        self.spec("ports", p.into())
    }
}
