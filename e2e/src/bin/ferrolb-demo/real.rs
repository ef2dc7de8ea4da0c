//! The real-cluster demo: images built from the Dockerfiles, 3 nodes with containerd, kubelet
//! and kube-proxy, ferrolb installed with helm, an app Deployment behind two LoadBalancer
//! Services, requests from a client behind the ToR, and a timed failover.

mod commands;
mod failover;
mod probe;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions};

use crate::{heading, show_cmd};

/// The app: busybox httpd answering with its pod's and node's names and the client it saw.
fn app_yaml(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 3
  selector:
    matchLabels: {{ app: hello }}
  template:
    metadata:
      labels: {{ app: hello }}
    spec:
      topologySpreadConstraints:
      - {{ maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
          labelSelector: {{ matchLabels: {{ app: hello }} }} }}
      automountServiceAccountToken: false
      securityContext: {{ runAsNonRoot: true, seccompProfile: {{ type: RuntimeDefault }} }}
      containers:
      - name: hello
        image: {image}
        ports: [ {{ containerPort: 8080 }} ]
        env:
        - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
        - {{ name: NODE_NAME, valueFrom: {{ fieldRef: {{ fieldPath: spec.nodeName }} }} }}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {{ drop: [ALL] }}
        readinessProbe:
          httpGet: {{ path: /cgi-bin/index.cgi, port: 8080 }}
          periodSeconds: 2
"#
    )
}

/// Two Services of the app: `web` from the default (local) group of
/// docs/examples/servicegroups.yaml, `api` from its `routed` (virtual) group.
const SERVICES_YAML: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  selector: { app: hello }
  ports: [ { name: http, port: 80, targetPort: 8080 } ]
---
apiVersion: v1
kind: Service
metadata:
  name: api
  annotations:
    ferrolb.io/service-group: routed
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  selector: { app: hello }
  ports: [ { name: http, port: 80, targetPort: 8080 } ]
"#;

/// The `routed` group's aggregation in docs/examples/servicegroups.yaml: what the ToR learns.
const ROUTED_V4_MASK: u8 = 28;
const ROUTED_V6_MASK: u8 = 64;

pub async fn run() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&repo).with_context(|| format!("cd {}", repo.display()))?;
    heading("1. Images from the Dockerfiles, a control plane and 3 real nodes");
    println!(
        "buildah builds Dockerfile.allocator and Dockerfile.agent (binaries from target/, Debian\n\
         base from debootstrap), the pause image and the app; each node is a network namespace on\n\
         a LAN with its own containerd, kubelet and kube-proxy; an FRR ToR peers with every node\n\
         over BGP and routes to a client network."
    );
    let started = Instant::now();
    let opts = ClusterOptions {
        tag: "demo".into(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&opts).await?;
    println!(
        "ready in {:.0} s; the commands below use the cluster's admin kubeconfig:\n  export KUBECONFIG={}",
        started.elapsed().as_secs_f64(),
        cluster.cp().kubeconfig().display()
    );
    let demo = Demo { c: cluster };
    let result = demo.steps().await;
    if let Err(e) = &result {
        println!("\nfailed: {e:#}\nthe pods at that moment:");
        show_cmd("kubectl get pods -A -o wide");
        print!("{}", demo.c.kubectl(&["get", "pods", "-A", "-o", "wide"]).1);
    }
    if let Some(secs) = std::env::var("FERROLB_DEMO_PAUSE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        println!("pausing {secs} s before teardown (FERROLB_DEMO_PAUSE)");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    heading("Done: tearing everything down");
    let stopping = Instant::now();
    drop(demo);
    println!("stopped in {:.0} s", stopping.elapsed().as_secs_f64());
    result
}

struct Demo {
    c: Cluster,
}

impl Demo {
    async fn steps(&self) -> anyhow::Result<()> {
        self.kubectl(&["get", "nodes", "-o", "wide"])?;

        heading("2. Install ferrolb with helm");
        println!(
            "# kubectl create namespace ferrolb-system    (this control plane made it at start, with the CRDs)"
        );
        self.kubectl(&[
            "label",
            "namespace",
            "ferrolb-system",
            "pod-security.kubernetes.io/enforce=privileged",
        ])?;
        self.helm_install()?;
        self.kubectl(&[
            "-n",
            "ferrolb-system",
            "rollout",
            "status",
            "daemonset/ferrolb-agent",
            "--timeout=300s",
        ])?;
        self.kubectl(&[
            "-n",
            "ferrolb-system",
            "rollout",
            "status",
            "deployment/ferrolb-allocator",
            "--timeout=300s",
        ])?;

        heading("3. Address pools, an app and two LoadBalancer Services");
        self.kubectl(&["apply", "-f", "docs/examples/servicegroups.yaml"])?;
        self.apply(&app_yaml(&self.c.images().app))?;
        self.kubectl(&["rollout", "status", "deployment/hello", "--timeout=300s"])?;
        self.apply(SERVICES_YAML)?;
        let web = self.addresses("web").await?;
        let api = self.addresses("api").await?;
        self.kubectl(&["get", "servicegroups"])?;
        self.kubectl(&["get", "services", "-o", "wide"])?;
        self.kubectl(&["get", "pods", "-A", "-o", "wide"])?;

        heading("4. Where each address lives, as ferrolb explains it");
        println!(
            "kubectl ferrolb where reads only the Kubernetes API (Services, ServiceGroups, Nodes, the\n\
             agents' per-node Leases) and runs the agents' own election to say who holds a local\n\
             address and why every other node does not; a virtual address is on every eligible node."
        );
        let web_v4 = *web
            .iter()
            .find(|a| a.is_ipv4())
            .context("web has no IPv4 address")?;
        self.wait(
            "a node to hold the local address",
            Duration::from_secs(60),
            || {
                (!self.holders(web_v4).is_empty())
                    .then_some(())
                    .ok_or_else(|| format!("{web_v4} on no node"))
            },
        )
        .await?;
        self.settled("web", None).await;
        for svc in ["web", "api"] {
            self.ferrolb(&["where", svc]);
        }
        self.ferrolb(&["nodes"]);

        heading("5. A local address is a secondary address on the holder's LAN interface");
        let mut shown = Vec::new();
        for &addr in &web {
            for i in self.holders(addr) {
                if !shown.contains(&i) {
                    shown.push(i);
                    let node = self.c.topo().node(i);
                    self.in_ns(
                        &[
                            "ip",
                            "-n",
                            node.ns_name(),
                            "addr",
                            "show",
                            "dev",
                            node.lan_ifname(),
                        ],
                        &format!("holder of {addr}"),
                    );
                }
            }
        }

        heading("6. Virtual addresses: kube-lb0 on every node, exported by BIRD, ECMP on the ToR");
        println!(
            "Each node carries the routed addresses on kube-lb0 with the group's aggregation mask;\n\
             BIRD (in the agent pod's bird-sidecar container, on the host network) exports the\n\
             prefix over BGP and the ToR (FRR) spreads the traffic over every node."
        );
        for n in self.c.topo().nodes() {
            self.in_ns(
                &["ip", "-n", n.ns_name(), "addr", "show", "dev", "kube-lb0"],
                "",
            );
        }
        self.birdc(0, &["show", "route"])?;
        self.tor_routes(&api).await;

        heading("7. Requests from the client behind the ToR, answered by the app's pods");
        println!(
            "Each reply names the pod and its node; kube-proxy (externalTrafficPolicy Cluster)\n\
             spreads requests over every pod, and the ToR spreads the virtual address over nodes."
        );
        let client = self
            .c
            .topo()
            .client_ns()
            .context("the topology has a client")?
            .to_string();
        for (svc, addr) in web
            .iter()
            .map(|a| ("web", *a))
            .chain(api.iter().map(|a| ("api", *a)))
        {
            let script = format!("for i in 1 2 3; do curl -s -m 3 {}; done", url(addr));
            self.in_ns(&["ip", "netns", "exec", &client, "sh", "-c", &script], svc);
        }

        heading("8. Failover: the holder's agent pod is deleted");
        self.failover(web_v4, &client).await
    }

    /// The ToR's routes to the virtual addresses, once they have a next hop per node.
    async fn tor_routes(&self, api: &[IpAddr]) {
        let nodes = self.c.node_names().len();
        for &addr in api {
            let prefix = aggregate(addr);
            let ok = self
                .wait(
                    &format!("the ToR's ECMP route to {prefix}"),
                    Duration::from_secs(90),
                    || match self.c.tor().route_nexthops(&prefix) {
                        Ok(h) if h.len() == nodes => Ok(()),
                        Ok(h) => Err(format!("next hops {h:?}")),
                        Err(e) => Err(e.to_string()),
                    },
                )
                .await;
            if let Err(e) = ok {
                println!("({e:#})");
            }
            let family = if addr.is_ipv4() { "ip" } else { "ipv6" };
            let command = format!("show {family} route {prefix}");
            show_cmd(&format!("vtysh -c '{command}'    # on the ToR (FRR)"));
            match self.c.tor().vtysh(&[&command]) {
                Ok(out) => print!("{out}"),
                Err(e) => println!("{e}"),
            }
        }
    }
}

fn url(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("http://{a}/cgi-bin/index.cgi"),
        IpAddr::V6(a) => format!("http://[{a}]/cgi-bin/index.cgi"),
    }
}

/// The prefix the ToR learns for a virtual address of the `routed` group.
fn aggregate(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX << (32 - u32::from(ROUTED_V4_MASK));
            let net = std::net::Ipv4Addr::from(u32::from(a) & mask);
            format!("{net}/{ROUTED_V4_MASK}")
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX << (128 - u32::from(ROUTED_V6_MASK));
            let net = std::net::Ipv6Addr::from(u128::from(a) & mask);
            format!("{net}/{ROUTED_V6_MASK}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::aggregate;

    #[test]
    fn aggregate_masks_an_address_to_the_routed_groups_prefix() {
        let cases = [
            ("v4 at the start", "203.0.113.0", "203.0.113.0/28"),
            ("v4 inside", "203.0.113.21", "203.0.113.16/28"),
            ("v6", "2001:db8:5::7", "2001:db8:5::/64"),
        ];
        for (name, addr, want) in cases {
            let addr = addr.parse().expect("a literal address");
            assert_eq!(aggregate(addr), want, "{name}");
        }
    }
}
