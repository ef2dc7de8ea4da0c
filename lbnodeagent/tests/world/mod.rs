//! A test world for the real `ferrolb-agent` binary: the shared API server, a LAN of two (or
//! more) nodes with a ToR and a client (e2e's topology), Nodes, an LBNodeAgent, a local and a
//! virtual ServiceGroup named after the test's namespace, the gossip Secret, and Services whose
//! status the test writes itself (the allocator is not part of these tests). The agents keep
//! their per-node Leases and read the gossip Secret in the test's namespace, so that tests
//! running side by side never see each other's nodes.

#![allow(dead_code)]

pub mod sampler;

use std::future::Future;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_api::annotations::ALLOCATED_FROM;
use ferrolb_api::contracts::{CLUSTER_EVENTS_NAMESPACE, gossip, node_lease_name, reason};
use ferrolb_api::servicegroup::{LocalSpec, Pool, VirtualSpec};
use ferrolb_api::{LBNodeAgent, LBNodeAgentSpec, ServiceGroup, ServiceGroupSpec};
use ferrolb_e2e::controlplane::{ControlPlane, TestNamespace};
use ferrolb_e2e::kubelet;
use ferrolb_e2e::topology::{Process, Topology};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

const TEST_LABEL: &str = "ferrolb.io/test";
/// Bounded polls: every step, for at most the timeout.
pub const STEP: Duration = Duration::from_millis(50);
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct World {
    pub cp: &'static ControlPlane,
    pub ns: TestNamespace,
    pub client: Client,
    pub topo: Topology,
    /// Node names, by topology index.
    pub nodes: Vec<String>,
    agents: Vec<Option<Process>>,
}

impl World {
    /// `None` when the test should be skipped (no control plane or not root, outside CI).
    /// `spec` tunes the LBNodeAgent that selects this world's nodes.
    pub async fn new(tag: &str, test: &str, spec: LBNodeAgentSpec) -> Option<World> {
        Self::with_nodes(tag, test, spec, 2).await
    }

    /// As [`World::new`], with `nodes` nodes.
    pub async fn with_nodes(
        tag: &str,
        test: &str,
        spec: LBNodeAgentSpec,
        nodes: usize,
    ) -> Option<World> {
        if !ferrolb_e2e::env::require_root() {
            return None;
        }
        let cp = ControlPlane::shared().await?;
        let ns = cp.namespace(test).await.expect("a test namespace");
        let client = ns.client();
        let topo = Topology::builder(tag)
            .nodes(nodes)
            .client(true)
            .management(true)
            .build()
            .expect("a topology");
        let mut nodes = Vec::new();
        for node in topo.nodes() {
            let name = format!("{}-n{}", ns.name(), node.index());
            let addresses = [IpAddr::V4(node.lan_v4()), IpAddr::V6(node.lan_v6())];
            kubelet::create_node(&client, &name, &addresses, &[(TEST_LABEL, ns.name())], true)
                .await
                .expect("a Node");
            nodes.push(name);
        }
        let world = World {
            cp,
            agents: nodes.iter().map(|_| None).collect(),
            nodes,
            client,
            topo,
            ns,
        };
        world.agent_settings(spec).await;
        world.groups().await;
        world.gossip_secret().await;
        Some(world)
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }
    pub fn local_group(&self) -> String {
        format!("{}-local", self.name())
    }
    /// A second local group, for tests that need more addresses than the first has.
    pub fn soak_group(&self) -> String {
        format!("{}-soak", self.name())
    }
    pub fn virtual_group(&self) -> String {
        format!("{}-virtual", self.name())
    }
    pub fn node_ns(&self, i: usize) -> &str {
        self.topo.node(i).ns_name()
    }
    pub fn tor(&self) -> &str {
        self.topo.tor_ns().expect("the world has a ToR")
    }

    /// The LBNodeAgent (named after the test) that selects this world's nodes only.
    pub async fn agent_settings(&self, mut spec: LBNodeAgentSpec) {
        spec.node_selector = Some(LabelSelector {
            match_labels: Some([(TEST_LABEL.to_string(), self.name().to_string())].into()),
            ..Default::default()
        });
        let agent = LBNodeAgent::new(self.name(), spec);
        apply(
            &Api::<LBNodeAgent>::all(self.client.clone()),
            self.name(),
            &agent,
        )
        .await;
    }

    /// Creates [`World::soak_group`] with these pools (ranges inside the LAN's subnets).
    pub async fn create_soak_group(&self, v4: &str, v6: &str) {
        let pool = |subnet: &str, pool: &str| Pool {
            subnet: subnet.into(),
            pool: pool.into(),
            aggregation: None,
        };
        let spec = ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: vec![pool("192.0.2.0/24", v4)],
                v6pools: vec![pool("2001:db8:1::/64", v6)],
                ..Default::default()
            }),
            auto_assign: Some(false),
            ..Default::default()
        };
        let name = self.soak_group();
        let api = Api::<ServiceGroup>::all(self.client.clone());
        apply(&api, &name, &ServiceGroup::new(&name, spec)).await;
    }

    async fn groups(&self) {
        let pool = |subnet: &str, pool: &str, aggregation: Option<&str>| Pool {
            subnet: subnet.into(),
            pool: pool.into(),
            aggregation: aggregation.map(Into::into),
        };
        let api = Api::<ServiceGroup>::all(self.client.clone());
        let local = ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: vec![pool("192.0.2.0/24", "192.0.2.100-192.0.2.150", None)],
                v6pools: vec![pool(
                    "2001:db8:1::/64",
                    "2001:db8:1::100-2001:db8:1::150",
                    None,
                )],
                ..Default::default()
            }),
            auto_assign: Some(true),
            ..Default::default()
        };
        let virtual_ = ServiceGroupSpec {
            virtual_: Some(VirtualSpec {
                v4pools: vec![pool("203.0.113.0/24", "203.0.113.0/26", Some("/28"))],
                v6pools: vec![pool("2001:db8:ff::/48", "2001:db8:ff::/120", Some("/64"))],
                bgp: None,
            }),
            auto_assign: Some(true),
            ..Default::default()
        };
        for (name, spec) in [
            (self.local_group(), local),
            (self.virtual_group(), virtual_),
        ] {
            apply(&api, &name, &ServiceGroup::new(&name, spec)).await;
        }
    }

    /// The Secret `ferrolb-gossip` with a random key, in the test's namespace.
    async fn gossip_secret(&self) {
        let mut key = [0u8; gossip::KEY_BYTES];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
            &mut key,
        )
        .expect("random bytes");
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut secret = Secret::default();
        secret.metadata.name = Some(gossip::SECRET.to_string());
        secret.string_data = Some([(gossip::SECRET_KEY.to_string(), key)].into());
        Api::<Secret>::namespaced(self.client.clone(), self.name())
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the gossip Secret");
    }

    /// Starts (or restarts) the agent of node `i`.
    pub fn start_agent(&mut self, i: usize) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrolb-agent"));
        cmd.arg("--node-name")
            .arg(&self.nodes[i])
            .arg("--kubeconfig")
            .arg(self.cp.management_kubeconfig())
            .args(["--watch-namespace", self.ns.name()])
            .args(["--namespace", self.ns.name()])
            .env(
                "RUST_LOG",
                std::env::var("FERROLB_TEST_AGENT_LOG")
                    .unwrap_or_else(|_| "info,ferrolb_lbnodeagent=debug".into()),
            );
        let process = self
            .topo
            .spawn_in(self.topo.node(i).ns_name(), &cmd)
            .expect("the agent starts");
        self.agents[i] = Some(process);
    }

    pub fn agent(&mut self, i: usize) -> &mut Process {
        self.agents[i].as_mut().expect("the agent was started")
    }

    /// The agents' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.agents
            .iter()
            .flatten()
            .map(|p| format!("--- {} ---\n{}", p.label(), tail(&p.log(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A LoadBalancer Service with `ips` written into its status as the allocator would.
    pub async fn service(&self, name: &str, group: &str, ips: &[&str], etp_local: bool) {
        let svc: Service = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": { ALLOCATED_FROM: group } },
            "spec": {
                "type": "LoadBalancer",
                "ports": [ { "port": 80 } ],
                "externalTrafficPolicy": if etp_local { "Local" } else { "Cluster" },
            }
        }))
        .expect("a Service");
        self.services()
            .create(&PostParams::default(), &svc)
            .await
            .expect("create the Service");
        self.set_ips(name, ips).await;
    }

    pub async fn set_ips(&self, name: &str, ips: &[&str]) {
        let ingress: Vec<_> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
        let patch = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
        self.services()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("write the Service's status");
    }

    pub async fn delete_service(&self, name: &str) {
        self.services()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the Service");
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// The ToR's neighbour entry for `ip`, e.g. `192.0.2.100 dev eth0 lladdr 02:fb:.. STALE`.
    pub fn neighbour(&self, ip: &str) -> String {
        self.sh(self.tor(), &["ip", "neigh", "show", ip])
    }

    /// Node `i`'s agent's `/metrics`.
    pub fn metrics(&self, i: usize) -> String {
        self.sh(
            self.node_ns(i),
            &["curl", "-sf", "http://127.0.0.1:9471/metrics"],
        )
    }

    /// Labels node `i` (a `None` value removes the label).
    pub async fn label_node(&self, i: usize, key: &str, value: Option<&str>) {
        let api = Api::<k8s_openapi::api::core::v1::Node>::all(self.client.clone());
        let patch = json!({ "metadata": { "labels": { key: value } } });
        api.patch(
            &self.nodes[i],
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("label the Node");
    }

    pub async fn lease(&self, i: usize) -> Option<Lease> {
        Api::<Lease>::namespaced(self.client.clone(), self.name())
            .get_opt(&node_lease_name(&self.nodes[i]))
            .await
            .expect("read the Lease")
    }

    /// `ip -o addr show dev <dev>` in node `i`, or "" when the device is gone.
    pub fn addrs(&self, i: usize, dev: &str) -> String {
        self.sh(self.node_ns(i), &["ip", "-o", "addr", "show", "dev", dev])
    }

    /// Runs `argv` in `ns`; its stdout, or "" when it failed.
    pub fn sh(&self, ns: &str, argv: &[&str]) -> String {
        self.topo.run(ns, argv).unwrap_or_default()
    }

    /// Node `i` carries `cidr` on `dev`.
    pub fn has(&self, i: usize, dev: &str, cidr: &str) -> bool {
        has_cidr(&self.addrs(i, dev), cidr)
    }

    /// Polls `probe` every [`STEP`] for at most [`TIMEOUT`]; panics with the agents' logs.
    pub async fn eventually(&self, what: &str, probe: impl FnMut() -> bool) {
        self.eventually_within(what, TIMEOUT, probe).await
    }

    pub async fn eventually_within(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> bool,
    ) {
        let start = Instant::now();
        while !probe() {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting until {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(STEP).await;
        }
    }

    /// As [`World::eventually`], for a probe that asks the API server.
    pub async fn eventually_async<F, Fut>(&self, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        while !probe().await {
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out after {TIMEOUT:?} waiting until {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(STEP).await;
        }
    }
}

impl World {
    /// The notes of the `AddressConflict` Events on node `i`'s Node that mention `address`.
    pub async fn conflict_events(&self, i: usize, address: &str) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), CLUSTER_EVENTS_NAMESPACE);
        let list = api.list(&Default::default()).await.expect("list Events");
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason::ADDRESS_CONFLICT))
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(self.nodes[i].as_str())
            })
            .filter_map(|e| e.note)
            .filter(|n| n.split_whitespace().next() == Some(address))
            .collect()
    }

    /// Gossip (UDP 7947) between the nodes of `a` and those of `b` is dropped, with nftables
    /// inside the node namespaces; the LAN itself keeps working.
    pub fn block_gossip(&self, a: &[usize], b: &[usize]) {
        for (mine, theirs) in [(a, b), (b, a)] {
            let sources: Vec<String> = theirs
                .iter()
                .flat_map(|&j| {
                    let n = self.topo.node(j);
                    [n.lan_v4().to_string(), n.lan_v6().to_string()]
                })
                .collect();
            let (v4, v6): (Vec<&String>, Vec<&String>) =
                sources.iter().partition(|s| !s.contains(':'));
            let join =
                |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            let rules = format!(
                "table inet {GOSSIP_TABLE} {{\n chain input {{\n  type filter hook input priority 0;\n  \
                 ip saddr {{ {} }} udp dport {port} drop\n  ip6 saddr {{ {} }} udp dport {port} drop\n }}\n}}\n",
                join(v4),
                join(v6),
                port = gossip::PORT,
            );
            for &i in mine {
                let path = self.topo.dir().join(format!("gossip-block-n{i}.nft"));
                std::fs::write(&path, &rules).expect("write the nft rules");
                let file = path.to_string_lossy().to_string();
                self.topo
                    .run(self.node_ns(i), &["nft", "-f", &file])
                    .unwrap_or_else(|e| panic!("nft in node {i}: {e}"));
            }
        }
    }

    /// Gossip flows again between every node.
    pub fn unblock_gossip(&self) {
        for i in 0..self.nodes.len() {
            let _ = self.topo.run(
                self.node_ns(i),
                &["nft", "delete", "table", "inet", GOSSIP_TABLE],
            );
        }
    }
}

const GOSSIP_TABLE: &str = "ferrolb_test_gossip";

impl Drop for World {
    fn drop(&mut self) {
        // Stop the agents before their namespaces go; then the cluster-scoped objects.
        self.agents.iter_mut().flatten().for_each(Process::kill);
        let mut objects = vec![
            format!("servicegroup/{}", self.local_group()),
            format!("servicegroup/{}", self.virtual_group()),
            format!("servicegroup/{}", self.soak_group()),
            format!("lbnodeagent/{}", self.name()),
        ];
        objects.extend(self.nodes.iter().map(|n| format!("node/{n}")));
        let _ = self
            .cp
            .kubectl()
            .arg("delete")
            .args(&objects)
            .args(["--wait=false", "--ignore-not-found"])
            .output();
    }
}

/// LBNodeAgent settings for a test: lifetime and drain as given, announcements 200 ms apart.
pub fn settings(lifetime: &str, drain: &str) -> LBNodeAgentSpec {
    let mut spec = LBNodeAgentSpec {
        local_address_lifetime: lifetime.into(),
        drain: drain.into(),
        ..Default::default()
    };
    spec.gratuitous.interval = "200ms".into();
    spec
}

/// `ip -o addr` output has `cidr` (exactly, as an address column).
pub fn has_cidr(output: &str, cidr: &str) -> bool {
    output
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == cidr))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K)
where
    K: Resource<DynamicType = ()>
        + serde::Serialize
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut body = serde_json::to_value(object).expect("serializes");
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    api.patch(
        name,
        &PatchParams::apply("ferrolb-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}
