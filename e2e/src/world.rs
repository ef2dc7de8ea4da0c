//! The whole ferrolb world on one machine, as `make demo` shows it and end-to-end tests use it:
//! a real control plane, node namespaces on a LAN with an FRR ToR and a client, and ferrolb's
//! own binaries running as processes (the allocator on the host, an agent and a bird-sidecar
//! with BIRD in every node namespace), plus a TCP responder per node standing in for kube-proxy.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::controlplane::ControlPlane;
use crate::env;
use crate::kubelet::create_node;
use crate::process::{Process, tied};
use crate::topology::{self, Frr, NODE_ASN, TOR_ASN, TOR_LAN_V4, TOR_LAN_V6, Topology, TorConfig};

/// Names the demo gives its nodes.
pub const NODE_NAMES: [&str; 5] = ["node-a", "node-b", "node-c", "node-d", "node-e"];
/// Port of the per-node responder.
pub const RESPONDER_PORT: u16 = 80;

/// Every part of the world; dropping it stops everything and removes the namespaces.
pub struct World {
    // Field order is drop order: processes first, then the routers and namespaces, then the
    // control plane.
    pub allocator: Option<Process>,
    pub agents: Vec<Option<Process>>,
    pub sidecars: Vec<Option<Process>>,
    pub responders: Vec<Process>,
    pub frr: Frr,
    pub topo: Topology,
    pub cp: ControlPlane,
    pub names: Vec<String>,
    dir: PathBuf,
}

impl World {
    /// Starts everything: `nodes` node namespaces (at most 5), ToR, client, control plane,
    /// allocator, agents, sidecars and responders.
    pub async fn start(tag: &str, nodes: usize) -> anyhow::Result<World> {
        for bin in ["ferrolb-allocator", "ferrolb-agent", "bird-sidecar"] {
            let path = env::binary(bin);
            anyhow::ensure!(
                path.exists(),
                "{} is not built (cargo build --bins)",
                path.display()
            );
        }
        topology::ensure_management_bridge()?;
        let cp = ControlPlane::start().await?;
        let topo = Topology::builder(tag)
            .nodes(nodes)
            .tor(true)
            .client(true)
            .management(true)
            .build()?;
        let frr = topo.run_frr(&TorConfig::for_nodes(&topo))?;
        let dir = topo.dir().join("world");
        std::fs::create_dir_all(&dir)?;
        let names: Vec<String> = NODE_NAMES[..nodes].iter().map(|s| s.to_string()).collect();
        let client = cp.client().await?;
        for (name, node) in names.iter().zip(topo.nodes()) {
            let addrs: [IpAddr; 2] = [node.lan_v4().into(), node.lan_v6().into()];
            create_node(&client, name, &addrs, &[], true).await?;
        }
        create_gossip_secret(&client).await?;
        let mut world = World {
            allocator: None,
            agents: Vec::new(),
            sidecars: Vec::new(),
            responders: Vec::new(),
            frr,
            topo,
            cp,
            names,
            dir,
        };
        world.allocator = Some(world.start_allocator()?);
        for i in 0..nodes {
            let agent = world.start_agent(i)?;
            world.agents.push(Some(agent));
            let sidecar = world.start_sidecar(i)?;
            world.sidecars.push(Some(sidecar));
            let responder = world.start_responder(i)?;
            world.responders.push(responder);
        }
        Ok(world)
    }

    fn start_allocator(&self) -> anyhow::Result<Process> {
        let log = self.dir.join("allocator.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = tied(env::binary("ferrolb-allocator"));
        cmd.arg("--kubeconfig")
            .arg(self.cp.kubeconfig())
            .args(["--leader-elect=false", "--metrics-addr", "127.0.0.1:0"])
            .stdout(out.try_clone()?)
            .stderr(out);
        Ok(Process::spawn("allocator", cmd, Some(log))?)
    }

    /// Starts (or restarts) the agent of node `i` in its namespace.
    pub fn start_agent(&self, i: usize) -> anyhow::Result<Process> {
        let ns = self.topo.node(i).ns_name().to_string();
        let mut cmd = Command::new(env::binary("ferrolb-agent"));
        cmd.arg("--node-name")
            .arg(&self.names[i])
            .arg("--kubeconfig")
            .arg(self.cp.management_kubeconfig());
        Ok(self.topo.spawn_in(&ns, &cmd)?)
    }

    /// Starts the bird-sidecar (which runs BIRD) of node `i`: eBGP with BFD to the ToR.
    pub fn start_sidecar(&self, i: usize) -> anyhow::Result<Process> {
        let ns = self.topo.node(i).ns_name().to_string();
        let dir = self.dir.join(format!("bird-{i}"));
        std::fs::create_dir_all(&dir)?;
        let values = format!(
            "localASN: {NODE_ASN}\npeers:\n  - {{ address: {TOR_LAN_V4}, asn: {TOR_ASN}, bfd: true }}\n  - {{ address: \"{TOR_LAN_V6}\", asn: {TOR_ASN}, bfd: true }}\n"
        );
        std::fs::write(dir.join("values.yaml"), values)?;
        Ok(self.topo.spawn_in(&ns, &self.sidecar_command(i, &dir))?)
    }

    /// The bird-sidecar of node `i`, with its values, config and control socket in `dir`.
    pub fn sidecar_command(&self, i: usize, dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(env::binary("bird-sidecar"));
        cmd.arg("--node-name")
            .arg(&self.names[i])
            .arg("--kubeconfig")
            .arg(self.cp.management_kubeconfig())
            .arg("--values")
            .arg(dir.join("values.yaml"))
            .arg("--config-path")
            .arg(dir.join("bird.conf"))
            .arg("--socket")
            .arg(dir.join("bird.ctl"))
            .args(["--poll-interval", "500ms"]);
        cmd
    }

    /// A TCP responder in node `i` answering `hello from <node>` on every address (as
    /// kube-proxy would forward a LoadBalancer address to a pod). The responder is
    /// `ferrolb-demo --respond`, also when the world runs inside a test or a bench.
    fn start_responder(&self, i: usize) -> anyhow::Result<Process> {
        let ns = self.topo.node(i).ns_name().to_string();
        let mut cmd = Command::new(env::binary("ferrolb-demo"));
        cmd.args(["--respond", &self.names[i], &RESPONDER_PORT.to_string()]);
        Ok(self.topo.spawn_in(&ns, &cmd)?)
    }

    /// The BIRD control socket of node `i`.
    pub fn bird_socket(&self, i: usize) -> PathBuf {
        self.dir.join(format!("bird-{i}")).join("bird.ctl")
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.cp.kubectl().args(args).output();
        match out {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("cannot run kubectl: {e}"),
        }
    }

    /// `kubectl ferrolb ARGS` (the `kubectl-ferrolb` plugin, built beside the other binaries)
    /// with the admin kubeconfig: its standard output followed by its standard error.
    pub fn ferrolb(&self, args: &[&str]) -> String {
        let out = Command::new(env::binary("kubectl-ferrolb"))
            .arg("--kubeconfig")
            .arg(self.cp.kubeconfig())
            .args(args)
            .output();
        match out {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("cannot run kubectl-ferrolb: {e}"),
        }
    }

    /// A command's output in node `i`'s namespace (or any namespace by name).
    pub fn in_ns(&self, ns: &str, argv: &[&str]) -> String {
        match self.topo.exec(ns, argv) {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("{e}"),
        }
    }

    /// The nodes whose LAN interface carries `addr` right now, from the kernel.
    pub fn holders(&self, addr: IpAddr) -> Vec<usize> {
        (0..self.topo.nodes().len())
            .filter(|&i| {
                let ns = self.topo.node(i).ns_name();
                let dev = self.topo.node(i).lan_ifname();
                self.in_ns(ns, &["ip", "-o", "addr", "show", "dev", dev])
                    .split_whitespace()
                    .any(|w| w.split('/').next() == Some(addr.to_string().as_str()))
            })
            .collect()
    }

    /// Waits (bounded) until `f` returns `Some`.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&World) -> Option<T>,
    ) -> anyhow::Result<T> {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                anyhow::bail!("{what}: not within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `ferrolb-gossip` Secret with a fresh random key.
async fn create_gossip_secret(client: &kube::Client) -> anyhow::Result<()> {
    use ferrolb_api::contracts::{INSTALL_NAMESPACE, gossip};
    let mut buf = [0u8; gossip::KEY_BYTES];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut buf,
    )
    .context("reading /dev/urandom for the gossip key")?;
    let key: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let mut secret = Secret::default();
    secret.metadata.name = Some(gossip::SECRET.to_string());
    secret.string_data = Some([(gossip::SECRET_KEY.to_string(), key)].into());
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
