//! A real cluster on one machine: every node namespace of a [`Topology`] runs its own containerd
//! (own root, state and socket), kubelet and kube-proxy; the control plane runs as a real
//! cluster's does (Node authorization, NodeRestriction, PodSecurity, the controllers Pods
//! need) plus kube-scheduler. Images are built from the repository's Dockerfiles
//! (`e2e/images/build.sh`) and imported into every node's containerd; nothing is pulled.
//!
//! The node daemons join only the node's *network* namespace (`nsenter --net`), never a mount
//! namespace of their own: kubelet and containerd must see the same mounts (volumes, the pod
//! network namespaces containerd keeps under its state directory).

mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

pub use config::{CLUSTER_CIDRS, NodePlan, ProxyMode, pod_cidr_v4, pod_cidr_v6};

use crate::controlplane::{ControlPlane, Options};
use crate::env;
use crate::process::{Process, tied};
use crate::topology::{self, BfdTimers, Frr, Topology, TorConfig};

/// The images the cluster runs, as `e2e/images/build.sh` names them.
#[derive(Debug, Clone)]
pub struct Images {
    pub pause: String,
    pub app: String,
    pub allocator: String,
    pub agent: String,
    /// Where the image archives are.
    pub dir: PathBuf,
}

impl Images {
    /// Builds (or finds up to date) the images from ferrolb's binaries in `bin_dir`.
    pub fn build(bin_dir: &Path) -> anyhow::Result<Images> {
        let out = bin_dir.join("images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh");
        let started = Instant::now();
        let o = Command::new("bash")
            .arg(&script)
            .arg(bin_dir)
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .context("running e2e/images/build.sh")?;
        if !o.status.success() {
            bail!(
                "building the images failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        eprintln!(
            "cluster: images ready in {:.1} s\n{}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&o.stdout).trim_end()
        );
        let text = std::fs::read_to_string(out.join("images.env"))?;
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.to_string())
                .with_context(|| format!("images.env has no {k}"))
        };
        Ok(Images {
            pause: get("PAUSE_IMAGE")?,
            app: get("APP_IMAGE")?,
            allocator: get("ALLOCATOR_IMAGE")?,
            agent: get("AGENT_IMAGE")?,
            dir: out,
        })
    }

    fn archives(&self) -> Vec<PathBuf> {
        ["pause", "app", "allocator", "agent"]
            .iter()
            .map(|n| self.dir.join(format!("{n}.tar")))
            .collect()
    }

    /// `(repository, tag)` of an image reference.
    pub fn split(reference: &str) -> (&str, &str) {
        reference.rsplit_once(':').unwrap_or((reference, "latest"))
    }
}

/// How to build a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Short tag for the topology's names (up to 4 of [a-z0-9]).
    pub tag: String,
    pub nodes: usize,
    pub proxy: ProxyMode,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            tag: "rc".into(),
            nodes: 3,
            proxy: ProxyMode::default(),
        }
    }
}

/// One node's daemons.
struct RealNode {
    plan: NodePlan,
    containerd: Option<Process>,
    kubelet: Option<Process>,
    proxy: Option<Process>,
}

/// A running cluster; dropping it stops every daemon and container and removes its files.
pub struct Cluster {
    nodes: std::sync::Mutex<Vec<RealNode>>,
    scheduler: Option<Process>,
    images: Images,
    cp: ControlPlane,
    /// FRR on the ToR, peering with every node over BGP (IPv4 and IPv6) with BFD.
    tor: Option<Frr>,
    topo: Topology,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// What a machine needs for real nodes; `Some(why)` when something is missing.
pub fn missing() -> Option<String> {
    if let Some(m) = ControlPlane::missing() {
        return Some(m);
    }
    if let Some(m) = ["kubelet", "kube-proxy", "kube-scheduler", "helm"]
        .into_iter()
        .find_map(env::missing_tool)
    {
        return Some(m);
    }
    let commands = [
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "ctr",
        "buildah",
        "nsenter",
        "nft",
        "conntrack",
    ];
    let path = std::env::var("PATH").unwrap_or_default();
    let found = |c: &str| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(c).exists())
    };
    if let Some(c) = commands.iter().find(|c| !found(c)) {
        return Some(format!(
            "`{c}` is not installed; run `make deps` (e2e/scripts/install-packages.sh)"
        ));
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        return Some("the CNI plugins are not installed; run `make deps`".into());
    }
    None
}

impl Cluster {
    /// The cluster shared by every test of this test binary (3 nodes, kube-proxy in nftables
    /// mode), started on first use. `None` (after printing why) when the test should be skipped;
    /// panics under CI when it cannot start.
    pub fn shared() -> Option<&'static Cluster> {
        Self::shared_with(ClusterOptions::default())
    }

    /// [`Cluster::shared`] with other options (the first caller's options win).
    pub fn shared_with(opts: ClusterOptions) -> Option<&'static Cluster> {
        if !env::require_root() || !env::require("real nodes", missing()) {
            return None;
        }
        if let Some(c) = SHARED.get() {
            return Some(c);
        }
        // Held across the start; holds the first start's error, so the other tests of this
        // binary fail at once with the same cause instead of each trying again for minutes.
        static STARTING: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let mut failed = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = SHARED.get() {
            return Some(c);
        }
        if let Some(e) = failed.as_ref() {
            panic!("cannot start the real cluster (as an earlier test of this binary found): {e}");
        }
        let started = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cluster start");
            rt.block_on(Cluster::start(&opts))
        })
        .join()
        .expect("the cluster start thread does not panic");
        match started {
            Ok(c) => Some(SHARED.get_or_init(|| c)),
            Err(e) => {
                let e = format!("{e:#}");
                *failed = Some(e.clone());
                panic!("cannot start the real cluster: {e}")
            }
        }
    }

    /// Builds the images, the network, the control plane and the nodes; returns once every node
    /// is Ready.
    pub async fn start(opts: &ClusterOptions) -> anyhow::Result<Cluster> {
        let started = Instant::now();
        let images = Images::build(
            env::binary("ferrolb-agent")
                .parent()
                .context("the binaries' directory")?,
        )?;
        let topo = Topology::builder(&opts.tag)
            .nodes(opts.nodes)
            .tor(true)
            .client(true)
            .management(true)
            .build()?;
        start_reaper(topo.prefix());
        let names: Vec<String> = topo
            .nodes()
            .iter()
            .map(|n| n.ns_name().to_string())
            .collect();
        let cp = ControlPlane::start_with_options(&Options {
            real_nodes: names.clone(),
            ..Options::default()
        })
        .await?;
        let mut cluster = Cluster {
            nodes: std::sync::Mutex::new(Vec::new()),
            scheduler: None,
            images,
            cp,
            tor: None,
            topo,
        };
        let peers: Vec<_> = cluster
            .topo
            .nodes()
            .iter()
            .map(|n| (n.index(), n.lan_v4(), n.lan_v6()))
            .collect();
        let plans: Vec<NodePlan> = cluster
            .topo
            .nodes()
            .iter()
            .map(|n| NodePlan {
                index: n.index(),
                name: n.ns_name().to_string(),
                lan_v4: n.lan_v4(),
                lan_v6: n.lan_v6(),
                dir: cluster.topo.dir().join(format!("k8s-n{}", n.index())),
                pki: cluster.cp.dir().to_path_buf(),
                pause_image: cluster.images.pause.clone(),
                proxy: opts.proxy,
            })
            .collect();
        // Nodes come up in parallel: most of the time goes to unpacking images.
        let archives = cluster.images.archives();
        let results: Vec<anyhow::Result<RealNode>> = std::thread::scope(|s| {
            let handles: Vec<_> = plans
                .into_iter()
                .map(|plan| {
                    let (peers, archives) = (&peers, &archives);
                    s.spawn(move || start_node(plan, peers, archives))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a node start thread does not panic"))
                .collect()
        });
        for r in results {
            cluster.nodes_mut().push(r?);
        }
        cluster.scheduler = Some(start_logged(
            "kube-scheduler",
            tied(env::tool("kube-scheduler")).args([
                format!(
                    "--kubeconfig={}",
                    cluster.cp.dir().join("kube-scheduler.kubeconfig").display()
                ),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                "--v=0".into(),
            ]),
            &cluster.cp.dir().join("kube-scheduler.log"),
        )?);
        let mut tor = TorConfig::for_nodes(&cluster.topo);
        tor.bfd = Some(BfdTimers::COMMON);
        cluster.tor = Some(cluster.topo.run_frr(&tor)?);
        cluster.wait_nodes_ready(Duration::from_secs(180)).await?;
        eprintln!(
            "cluster: {} nodes Ready in {:.1} s (kube-proxy {:?})",
            cluster.node_names().len(),
            started.elapsed().as_secs_f64(),
            opts.proxy
        );
        Ok(cluster)
    }

    pub fn cp(&self) -> &ControlPlane {
        &self.cp
    }
    pub fn topo(&self) -> &Topology {
        &self.topo
    }
    /// The ToR's FRR: peers are the nodes' LAN addresses, AS [`topology::NODE_ASN`].
    pub fn tor(&self) -> &Frr {
        self.tor
            .as_ref()
            .expect("the cluster starts FRR on its ToR")
    }
    pub fn images(&self) -> &Images {
        &self.images
    }
    /// Node names, which are also their network namespaces' names.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes_mut()
            .iter()
            .map(|n| n.plan.name.clone())
            .collect()
    }
    pub async fn client(&self) -> anyhow::Result<Client> {
        self.cp.client().await
    }

    /// `kubectl <args>`: (succeeded, stdout then stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        self.cp.kubectl_with_input(args, "")
    }

    /// `helm <args>` with the admin kubeconfig: (succeeded, stdout then stderr).
    pub fn helm(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(env::tool("helm"))
            .arg("--kubeconfig")
            .arg(self.cp.kubeconfig())
            .args(args)
            .env("HELM_CACHE_HOME", self.cp.dir().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.cp.dir().join("helm/config"))
            .env("HELM_DATA_HOME", self.cp.dir().join("helm/data"))
            .stdin(Stdio::null())
            .output()
            .expect("helm runs");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    }

    /// The `--set` arguments that point the chart at the locally built images.
    pub fn chart_image_values(&self) -> Vec<String> {
        let (ar, at) = Images::split(&self.images.allocator);
        let (gr, gt) = Images::split(&self.images.agent);
        vec![
            format!("image.allocator.repository={ar}"),
            format!("image.allocator.tag={at}"),
            "image.allocator.pullPolicy=Never".into(),
            format!("image.agent.repository={gr}"),
            format!("image.agent.tag={gt}"),
            "image.agent.pullPolicy=Never".into(),
        ]
    }

    async fn wait_nodes_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.cp.client().await?);
        let deadline = Instant::now() + limit;
        loop {
            for n in self.nodes_mut().iter_mut() {
                for p in [&mut n.containerd, &mut n.kubelet, &mut n.proxy]
                    .into_iter()
                    .flatten()
                {
                    if let Some(dead) = p.exited() {
                        bail!("{dead}");
                    }
                }
            }
            let nodes = api.list(&ListParams::default()).await?;
            let ready: Vec<String> = nodes
                .items
                .iter()
                .filter(|n| node_ready(n))
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            if ready.len() == self.node_names().len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes_mut()
                    .iter()
                    .filter(|n| !ready.contains(&n.plan.name))
                    .filter_map(|n| n.kubelet.as_ref())
                    .map(|k| format!("{}:\n{}", k.label(), tail(&k.log(), 30)))
                    .collect();
                bail!(
                    "nodes not Ready after {limit:?} (Ready: {ready:?}); kubelet logs:\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The container logs of pods whose name starts with `pod_prefix` in `namespace`, read from
    /// the nodes' pod log directories (`kubectl logs` cannot reach a kubelet: the API server
    /// runs in the host namespace, the kubelets on the LAN). Every container and restart, each
    /// under a header naming the file, its last `lines` lines.
    pub fn pod_logs(&self, namespace: &str, pod_prefix: &str, lines: usize) -> String {
        let mut out = String::new();
        for n in self.nodes_mut().iter() {
            let dir = n.plan.dir.join("pod-logs");
            let Ok(pods) = std::fs::read_dir(&dir) else {
                continue;
            };
            for pod in pods.flatten() {
                let name = pod.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&format!("{namespace}_{pod_prefix}")) {
                    continue;
                }
                for container in std::fs::read_dir(pod.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    for file in std::fs::read_dir(container.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                        out.push_str(&format!(
                            "==> {} on {} <==\n{}\n",
                            file.path().display(),
                            n.plan.name,
                            tail(&text, lines)
                        ));
                    }
                }
            }
        }
        out
    }

    fn nodes_mut(&self) -> std::sync::MutexGuard<'_, Vec<RealNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops node `i`'s kubelet and containerd (SIGKILL), as on a node whose runtime died: its
    /// containers (the agent among them) and kube-proxy keep running.
    pub fn stop_node_daemons(&self, i: usize) {
        if let Some(n) = self.nodes_mut().get_mut(i) {
            for p in [&mut n.kubelet, &mut n.containerd].into_iter().flatten() {
                p.kill();
            }
            n.kubelet = None;
            n.containerd = None;
        }
    }

    /// Starts node `i`'s containerd and kubelet again after [`Cluster::stop_node_daemons`].
    pub fn start_node_daemons(&self, i: usize) -> anyhow::Result<()> {
        let mut nodes = self.nodes_mut();
        let n = nodes.get_mut(i).context("no such node")?;
        if n.containerd.is_none() {
            n.containerd = Some(start_containerd(&n.plan)?);
            wait_containerd(&n.plan, n.containerd.as_mut())?;
        }
        if n.kubelet.is_none() {
            n.kubelet = Some(start_kubelet(&n.plan)?);
        }
        Ok(())
    }
}

/// Starts `ferrolb-e2e-reaper` detached (its own process group, not tied to this process): it
/// removes the world once this process has ended, however it ended.
fn start_reaper(prefix: &str) {
    use std::os::unix::process::CommandExt;
    let reaper = env::binary("ferrolb-e2e-reaper");
    let started = Command::new(&reaper)
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = started {
        eprintln!(
            "cluster: cannot start {} ({e}); a later run removes what this one leaves",
            reaper.display()
        );
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn start_logged(label: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<Process> {
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let cmd = std::mem::replace(cmd, Command::new("true"));
    Process::spawn(label, cmd, Some(log.to_path_buf()))
        .with_context(|| format!("cannot start {label}"))
}

/// `nsenter --net=/run/netns/<ns> -- <program>`, tied to the test process.
fn in_node(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = tied("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    cmd
}

fn run_checked(cmd: &mut Command) -> anyhow::Result<String> {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !o.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// One node: its network plumbing, config files, containerd with the images, kubelet and
/// kube-proxy.
fn start_node(
    plan: NodePlan,
    peers: &[(usize, std::net::Ipv4Addr, std::net::Ipv6Addr)],
    archives: &[PathBuf],
) -> anyhow::Result<RealNode> {
    let ns = plan.name.clone();
    let dir = plan.dir.clone();
    for d in [
        "cni",
        "cni-ipam",
        "pod-logs",
        "volume-plugins",
        "kubelet",
        "containerd",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    // Pods are routed: the node forwards, knows the other nodes' pod CIDRs, and masquerades
    // pods' traffic to the API server on the management network.
    run_checked(
        Command::new("ip")
            .args(["netns", "exec", &ns, "sysctl", "-q", "-w"])
            .args(["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]),
    )?;
    let routes = config::pod_routes(&plan, peers).join("\n") + "\n";
    run_piped(Command::new("ip").args(["-n", &ns, "-batch", "-"]), &routes)?;
    run_piped(
        Command::new("ip").args(["netns", "exec", &ns, "nft", "-f", "-"]),
        config::MGMT_MASQUERADE_NFT,
    )?;
    std::fs::write(plan.containerd_config(), config::containerd_toml(&plan))?;
    std::fs::write(
        plan.cni_dir().join("10-ferrolb-e2e.conflist"),
        config::cni_conflist(&plan),
    )?;
    std::fs::write(plan.kubelet_config(), config::kubelet_yaml(&plan))?;
    std::fs::write(plan.kube_proxy_config(), config::kube_proxy_yaml(&plan))?;

    let mut node = RealNode {
        plan,
        containerd: None,
        kubelet: None,
        proxy: None,
    };
    let plan = &node.plan;
    node.containerd = Some(start_containerd(plan)?);
    let sock = plan.containerd_socket();
    let ctr = |args: &[&str]| {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&sock)
            .args(["--namespace", "k8s.io"])
            .args(args);
        c
    };
    wait_containerd(plan, node.containerd.as_mut())?;
    for a in archives {
        run_checked(ctr(&["images", "import"]).arg(a))
            .with_context(|| format!("importing {} into {ns}", a.display()))?;
    }
    node.kubelet = Some(start_kubelet(plan)?);
    node.proxy = Some(start_logged(
        &format!("{ns}-kube-proxy"),
        in_node(&ns, env::tool("kube-proxy"))
            .arg(format!("--config={}", plan.kube_proxy_config().display())),
        &dir.join("kube-proxy.log"),
    )?);
    Ok(node)
}

fn start_containerd(plan: &NodePlan) -> anyhow::Result<Process> {
    start_logged(
        &format!("{}-containerd", plan.name),
        in_node(&plan.name, "containerd")
            .arg("--config")
            .arg(plan.containerd_config()),
        &plan.dir.join("containerd.log"),
    )
}

/// Waits (bounded) until containerd answers and its CRI plugin has booted: a kubelet started
/// earlier exits with "server is not initialized yet".
fn wait_containerd(plan: &NodePlan, mut process: Option<&mut Process>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = plan.dir.join("containerd.log");
    loop {
        // The log is appended to across restarts: one line of each per start so far.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
        let (booted, starts) = (
            count("containerd successfully booted"),
            count("starting containerd"),
        );
        let answers = Command::new("ctr")
            .arg("--address")
            .arg(plan.containerd_socket())
            .arg("version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if answers && booted >= starts && booted > 0 {
            return Ok(());
        }
        if let Some(dead) = process.as_deref_mut().and_then(Process::exited) {
            bail!("{dead}");
        }
        if Instant::now() > deadline {
            bail!("containerd of {} not ready within 60 s", plan.name);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_kubelet(plan: &NodePlan) -> anyhow::Result<Process> {
    start_logged(
        &format!("{}-kubelet", plan.name),
        in_node(&plan.name, env::tool("kubelet")).args(config::kubelet_args(plan)),
        &plan.dir.join("kubelet.log"),
    )
}

fn run_piped(cmd: &mut Command, input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let o = child.wait_with_output()?;
    if !o.status.success() {
        bail!(
            "{cmd:?} <<EOF\n{input}EOF failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut s) = self.scheduler.take() {
            s.kill();
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for n in nodes.iter_mut() {
            for p in [&mut n.proxy, &mut n.kubelet].into_iter().flatten() {
                p.kill();
            }
        }
        // Containers (and their shims) run from under the node dirs; then containerd, then
        // the mounts it and the kubelet left.
        for n in nodes.iter_mut() {
            topology::kill_processes_under(&n.plan.dir);
            if let Some(mut c) = n.containerd.take() {
                c.kill();
            }
            topology::kill_processes_under(&n.plan.dir);
            topology::unmount_under(&n.plan.dir);
        }
    }
}
