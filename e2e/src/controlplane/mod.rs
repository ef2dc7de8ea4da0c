//! A real control plane for tests: etcd, kube-apiserver and kube-controller-manager built from
//! Go modules (`make tools`), started as child processes, torn down with the test process.
//!
//! We do not use the `envtest` crate: it drives controller-runtime's envtest through a Go
//! bridge compiled into every Rust build, and envtest runs no kube-controller-manager, which
//! we need so that namespaces delete and owner references collect.

mod certs;
mod procs;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::env;
pub use procs::cleanup_leftovers;

use crate::process::{Process, tied};

/// The management address: the API server is reached on it from the node namespaces.
pub const MANAGEMENT_ADDRESS: &str = "198.18.0.1";
/// Service CIDRs of the test cluster (dual-stack).
pub const SERVICE_CIDRS: &str = "198.19.0.0/16,fd00:198:19::/112";

/// kube-apiserver flags for benchmarks that create thousands of Services. Since 1.33 the API
/// server allocates ClusterIPs through IPAddress objects and, on every allocation, counts all of
/// them for a metric (`Allocator.Used`), so a create costs time in proportion to the Services
/// already there. Emulating 1.33 is the newest version that lets the bitmap allocator
/// (constant cost per create) be chosen again.
pub const BITMAP_CLUSTER_IP_ALLOCATOR: &[&str] = &[
    "--emulated-version=kube=1.33",
    "--feature-gates=MultiCIDRServiceAllocator=false",
];

/// Service CIDRs of a control plane with real nodes: the IPv4 one leaves 198.19.128.0/17 to the
/// nodes' pod CIDRs (see [`Options::real_nodes`]).
pub const REAL_NODES_SERVICE_CIDRS: &str = "198.19.0.0/17,fd00:198:19::/112";

/// What a control plane runs besides etcd, the API server and the controller-manager's
/// namespace, garbage-collector and token controllers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra kube-apiserver flags, e.g. [`BITMAP_CLUSTER_IP_ALLOCATOR`].
    pub apiserver_flags: Vec<String>,
    /// Names of real nodes (kubelets) that will join: each gets a client certificate and a
    /// kubeconfig (`<dir>/node-<name>.kubeconfig`, as `system:node:<name>`), and the control
    /// plane runs as a real cluster's does: Node authorization and NodeRestriction admission
    /// (so projected tokens are node-bound and a kubelet writes only its own objects),
    /// PodSecurity enforcing `baseline` by default, and the controllers Pods need (service
    /// accounts, Deployments, ReplicaSets, DaemonSets, EndpointSlices, node lifecycle, pod GC).
    /// kube-proxy and kube-scheduler get kubeconfigs of their own (`kube-proxy.kubeconfig`,
    /// `kube-scheduler.kubeconfig`).
    pub real_nodes: Vec<String>,
}

/// The PodSecurity admission defaults of a control plane with real nodes: what a hardened
/// cluster enforces, so an install that needs more has to label its namespace.
const POD_SECURITY_CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      warn: restricted
      warn-version: latest
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces: []
";

/// A running control plane. Dropping it stops the processes and removes its files.
pub struct ControlPlane {
    dir: PathBuf,
    port: u16,
    kubeconfig: PathBuf,
    /// Behind a lock so that a shared (`&'static`) control plane can stop and start its API
    /// server ([`ControlPlane::stop_apiserver`]).
    processes: Mutex<Vec<Process>>,
    /// How each process was started (label, program, flags), to start it again as it was.
    specs: Vec<(String, PathBuf, Vec<String>)>,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

impl ControlPlane {
    /// `Some(why)` when this machine cannot run a control plane (tools not built, not root).
    pub fn missing() -> Option<String> {
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
        ]
        .into_iter()
        .find_map(env::missing_tool)
    }

    /// The control plane shared by every test of this test binary, started on first use. Its
    /// processes die with the test process (PR_SET_PDEATHSIG) and a later run removes its files.
    /// `None` (after printing why) when the test should be skipped; panics under CI.
    pub async fn shared() -> Option<&'static ControlPlane> {
        if !env::require("a test control plane", Self::missing()) {
            return None;
        }
        if let Some(cp) = SHARED.get() {
            return Some(cp);
        }
        // One start at a time: tests run in parallel and each would otherwise start its own.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cp) = SHARED.get() {
            return Some(cp);
        }
        // Start it on a thread of its own: tests run on many threads and runtimes, and the
        // first caller's runtime ends with its test.
        let cp = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the control plane start");
            rt.block_on(ControlPlane::start())
        })
        .join()
        .expect("the control plane start thread does not panic")
        .unwrap_or_else(|e| panic!("cannot start the test control plane: {e:#}"));
        Some(SHARED.get_or_init(|| cp))
    }

    /// Starts a control plane of its own (for a test that restarts or breaks it).
    pub async fn start() -> anyhow::Result<ControlPlane> {
        Self::start_with(&[]).await
    }

    /// [`ControlPlane::start`] with extra kube-apiserver flags, e.g.
    /// [`BITMAP_CLUSTER_IP_ALLOCATOR`] for benchmarks.
    pub async fn start_with(apiserver_flags: &[&str]) -> anyhow::Result<ControlPlane> {
        Self::start_with_options(&Options {
            apiserver_flags: apiserver_flags.iter().map(|f| f.to_string()).collect(),
            ..Options::default()
        })
        .await
    }

    /// A control plane as [`Options`] describe it.
    pub async fn start_with_options(options: &Options) -> anyhow::Result<ControlPlane> {
        procs::cleanup_leftovers();
        let dir = procs::run_dir()?;
        let real = !options.real_nodes.is_empty();
        let mut clients: Vec<(String, String, Option<String>)> = options
            .real_nodes
            .iter()
            .map(|n| {
                let nodes = Some("system:nodes".to_string());
                (format!("node-{n}"), format!("system:node:{n}"), nodes)
            })
            .collect();
        if real {
            clients.push(("kube-proxy".into(), "system:kube-proxy".into(), None));
            clients.push((
                "kube-scheduler".into(),
                "system:kube-scheduler".into(),
                None,
            ));
        }
        certs::write_pki(&dir, &clients)?;
        let etcd_client = procs::free_port()?;
        let etcd_peer = procs::free_port()?;
        let port = procs::free_port()?;
        let kcm_port = procs::free_port()?;
        let kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&dir, "127.0.0.1", port, "admin"),
        )?;
        std::fs::write(
            dir.join("management.kubeconfig"),
            kubeconfig_yaml(&dir, MANAGEMENT_ADDRESS, port, "admin"),
        )?;
        for (file, _, _) in &clients {
            std::fs::write(
                dir.join(format!("{file}.kubeconfig")),
                kubeconfig_yaml(&dir, MANAGEMENT_ADDRESS, port, file),
            )?;
        }
        std::fs::write(dir.join("admission.yaml"), POD_SECURITY_CONFIG)?;
        let mut cp = ControlPlane {
            dir: dir.clone(),
            port,
            kubeconfig,
            processes: Mutex::new(Vec::new()),
            specs: Vec::new(),
        };
        let etcd_data = procs::tmpfs_dir(&dir)?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        cp.launch(
            "etcd",
            env::tool("etcd"),
            vec![
                "--name=default".into(),
                format!("--data-dir={}", etcd_data.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
        )?;
        let d = |f: &str| dir.join(f).display().to_string();
        let apiserver_flags = [
            format!("--etcd-servers={etcd_url}"),
            // 0.0.0.0: loopback for the tests, 198.18.0.1 for the node namespaces.
            "--bind-address=0.0.0.0".into(),
            format!("--advertise-address={MANAGEMENT_ADDRESS}"),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", dir.display()),
            format!("--tls-cert-file={}", d("apiserver.crt")),
            format!("--tls-private-key-file={}", d("apiserver.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            format!(
                "--service-cluster-ip-range={}",
                if real {
                    REAL_NODES_SERVICE_CIDRS
                } else {
                    SERVICE_CIDRS
                }
            ),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--allow-privileged=true".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            "--v=0".into(),
        ]
        .into_iter()
        .chain(if real {
            vec![
                "--authorization-mode=Node,RBAC".to_string(),
                "--enable-admission-plugins=NodeRestriction".into(),
                format!("--admission-control-config-file={}", d("admission.yaml")),
                // `kubectl logs` and `exec`: the API server reaches kubelets by InternalIP.
                format!("--kubelet-client-certificate={}", d("admin.crt")),
                format!("--kubelet-client-key={}", d("admin.key")),
                "--kubelet-preferred-address-types=InternalIP".into(),
            ]
        } else {
            vec!["--authorization-mode=RBAC".to_string()]
        })
        .chain(options.apiserver_flags.iter().cloned())
        .collect::<Vec<_>>();
        cp.launch(
            "kube-apiserver",
            env::tool("kube-apiserver"),
            apiserver_flags,
        )?;
        let client = cp.client().await?;
        wait_ready(
            &client,
            cp.processes.get_mut().unwrap_or_else(|p| p.into_inner()),
        )
        .await?;
        cp.launch(
            "kube-controller-manager",
            env::tool("kube-controller-manager"),
            vec![
                format!("--kubeconfig={}", cp.kubeconfig.display()),
                format!(
                    "--controllers=namespace,garbagecollector,serviceaccount-token{}",
                    if real {
                        ",serviceaccount,root-ca-cert-publisher,deployment,replicaset,daemonset,disruption,endpointslice,\
                         nodelifecycle,podgc"
                    } else {
                        ""
                    }
                ),
                format!("--service-account-private-key-file={}", d("sa.key")),
                format!("--root-ca-file={}", d("ca.crt")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm_port}"),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
                "--v=0".into(),
            ],
        )?;
        install_crds(&client).await?;
        ensure_namespace(&client, ferrolb_api::contracts::INSTALL_NAMESPACE).await?;
        Ok(cp)
    }

    /// An admin client (system:masters) over loopback.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Admin kubeconfig over loopback.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Admin kubeconfig over the management address, for processes in node namespaces.
    pub fn management_kubeconfig(&self) -> PathBuf {
        self.dir.join("management.kubeconfig")
    }

    /// The API server's port (on loopback and the management address).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This control plane's working directory (PKI, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `kubectl` with this control plane's admin kubeconfig.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env::tool("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// `kubectl <args>` fed `input` on standard input: (succeeded, stdout followed by stderr).
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> (bool, String) {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .expect("kubectl reads its input");
        }
        let out = child.wait_with_output().expect("kubectl finishes");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// CPU seconds (utime + stime) each of its processes has used so far, by label: where a
    /// benchmark's time goes besides the process it measures.
    pub fn cpu_seconds(&self) -> Vec<(String, f64)> {
        self.processes_mut()
            .iter()
            .map(|p| (p.label().to_string(), p.cpu_seconds()))
            .collect()
    }

    /// Kills (SIGKILL) its processes labelled `name` (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`); they stay down.
    pub fn kill(&self, name: &str) {
        self.processes_mut()
            .iter_mut()
            .filter(|p| p.label() == name)
            .for_each(Process::kill);
    }

    /// An API-server outage as a cluster sees one: the process is killed (SIGKILL), its port
    /// refuses connections and every open watch breaks. etcd and the controller-manager go on
    /// running. [`ControlPlane::start_apiserver`] brings it back.
    pub fn stop_apiserver(&self) {
        self.kill("kube-apiserver");
    }

    /// Starts the API server again after [`ControlPlane::stop_apiserver`], with the same flags,
    /// port, certificates and etcd (so the same data), and returns once it is ready
    /// (`/readyz` ok; bounded: 60 s). Does nothing while it runs.
    pub async fn start_apiserver(&self) -> anyhow::Result<()> {
        let running = self
            .processes_mut()
            .iter_mut()
            .any(|p| p.label() == "kube-apiserver" && p.exit_status().is_none());
        if running {
            return Ok(());
        }
        let mut apiserver = self.respawn("kube-apiserver")?;
        let ready = wait_ready(&self.client().await?, std::slice::from_mut(&mut apiserver)).await;
        self.replace(apiserver);
        ready
    }

    /// Kills the controller-manager (if it still runs) and starts it again as it was, e.g.
    /// after a `kill("kube-controller-manager")` at the start of an outage: what a real cluster's
    /// controller-manager, which elects a leader, goes through in an API-server outage (it
    /// loses its Lease within the renew deadline, exits, and its supervisor starts it again).
    /// Ours runs without leader election, so it would otherwise live through the outage on its
    /// stale view: its node lifecycle controller, having seen no heartbeat for longer than
    /// the grace period, marks every node NotReady (and their pods unready) after the return.
    pub fn restart_controller_manager(&self) -> anyhow::Result<()> {
        self.kill("kube-controller-manager");
        let kcm = self.respawn("kube-controller-manager")?;
        self.replace(kcm);
        Ok(())
    }

    /// Starts a process and remembers how, for [`ControlPlane::respawn`].
    fn launch(&mut self, name: &str, program: PathBuf, args: Vec<String>) -> anyhow::Result<()> {
        let p = start(name, &program, &args, &self.dir)?;
        self.specs.push((name.to_string(), program, args));
        self.processes_mut().push(p);
        Ok(())
    }

    /// Starts process `name` again as [`ControlPlane::launch`] did, its log appended to.
    fn respawn(&self, name: &str) -> anyhow::Result<Process> {
        let (_, program, args) = self
            .specs
            .iter()
            .find(|(n, _, _)| n == name)
            .with_context(|| format!("no process {name} was started"))?;
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::File::options()
            .append(true)
            .create(true)
            .open(&log)?;
        let mut cmd = tied(program);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Process::spawn(name, cmd, Some(log)).with_context(|| format!("cannot start {name} again"))
    }

    /// Puts `p` in place of the (dead) process of its label, keeping the start order that
    /// [`Drop`] stops them in reverse of.
    fn replace(&self, p: Process) {
        let mut processes = self.processes_mut();
        match processes.iter().position(|q| q.label() == p.label()) {
            Some(i) => processes[i] = p,
            None => processes.push(p),
        }
    }

    fn processes_mut(&self) -> MutexGuard<'_, Vec<Process>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A Kubernetes namespace of its own for one test; deleted when the guard drops.
    pub async fn namespace(&self, test: &str) -> anyhow::Result<TestNamespace> {
        let client = self.client().await?;
        let name = unique_name(test);
        ensure_namespace(&client, &name).await?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
            client,
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Stop in reverse order: controller-manager, API server, etcd.
        let processes = self.processes.get_mut().unwrap_or_else(|p| p.into_inner());
        while let Some(mut p) = processes.pop() {
            p.kill();
        }
        procs::remove_run_dir(&self.dir);
    }
}

/// A test's own namespace.
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
    client: Client,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Fire and forget: the namespace controller finishes the deletion.
        let _ = std::process::Command::new(env::tool("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `<test>-<pid hex><counter>`, a valid DNS label unique across test processes.
pub fn unique_name(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{}-{:x}{n}", base.trim_matches('-'), std::process::id())
}

/// A kubeconfig for `https://host:port` with the client certificate `<user>.crt/.key`.
fn kubeconfig_yaml(dir: &Path, host: &str, port: u16, user: &str) -> String {
    let d = |f: &str| dir.join(f).display().to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-e2e\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: ferrolb-e2e\n  context:\n    cluster: ferrolb-e2e\n    user: admin\ncurrent-context: ferrolb-e2e\n",
        ca = d("ca.crt"),
        crt = d(&format!("{user}.crt")),
        key = d(&format!("{user}.key")),
    )
}

/// Starts `program args` tied to the test process, output to `<dir>/<name>.log`.
fn start(name: &str, program: &Path, args: &[String], dir: &Path) -> anyhow::Result<Process> {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let mut cmd = tied(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    Process::spawn(name, cmd, Some(log)).with_context(|| format!("cannot start {name}"))
}

/// Polls until the API server answers and the `default` namespace exists (bounded: 60 s).
/// Waits until `/readyz` answers "ok" (every post-start hook done, among them the bootstrap RBAC
/// roles that e.g. let any user ask what it may do) and the `default` namespace exists.
async fn wait_ready(client: &Client, processes: &mut [Process]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    loop {
        if let Some(dead) = processes.iter_mut().find_map(Process::exited) {
            bail!("{dead}");
        }
        let readyz = http::Request::get("/readyz").body(Vec::new())?;
        let ready = client
            .request_text(readyz)
            .await
            .is_ok_and(|t| t.trim() == "ok");
        match namespaces.get_opt("default").await {
            Ok(Some(_)) if ready => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => bail!(
                "the API server did not become ready within 60 s (readyz ok: {ready}): {other:?}"
            ),
        }
    }
}

/// Applies ferrolb's CRDs (the same ones `crds/` holds) and waits until they are established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("ferrolb-e2e").force();
    for (_, crd) in ferrolb_api::crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(&name, &pp, &Patch::Apply(&crd)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let established = api.get(&name).await?.status.is_some_and(|s| {
                s.conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} not established within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a namespace and waits until it is gone (bounded: 60 s).
pub async fn delete_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(name).await?.is_some() {
        if Instant::now() > deadline {
            bail!("namespace {name} still exists after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
