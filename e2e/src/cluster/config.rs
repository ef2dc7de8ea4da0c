//! The configuration files of a real node: containerd, CNI, kubelet and kube-proxy. Pure
//! renderers of [`NodePlan`], so what a node runs with can be read and tested without starting
//! anything.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The pods' networks of all nodes: node `i` has `198.19.(128+i).0/24` and `2001:db8:100:i::/64`.
pub const CLUSTER_CIDRS: &str = "198.19.128.0/17,2001:db8:100::/56";

/// kube-proxy's data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    #[default]
    Nftables,
    Iptables,
    Ipvs {
        strict_arp: bool,
    },
}

impl ProxyMode {
    fn name(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
            ProxyMode::Ipvs { .. } => "ipvs",
        }
    }
}

/// Everything that differs between nodes.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub index: usize,
    pub name: String,
    pub lan_v4: Ipv4Addr,
    pub lan_v6: Ipv6Addr,
    /// This node's scratch directory (containerd's root and state, kubelet's root, logs).
    pub dir: PathBuf,
    /// The control plane's directory (CA, kubeconfigs).
    pub pki: PathBuf,
    pub pause_image: String,
    pub proxy: ProxyMode,
}

impl NodePlan {
    pub fn pod_cidr_v4(&self) -> String {
        pod_cidr_v4(self.index)
    }
    pub fn pod_cidr_v6(&self) -> String {
        pod_cidr_v6(self.index)
    }
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    pub fn containerd_config(&self) -> PathBuf {
        self.dir.join("containerd.toml")
    }
    pub fn kubelet_config(&self) -> PathBuf {
        self.dir.join("kubelet.yaml")
    }
    pub fn kube_proxy_config(&self) -> PathBuf {
        self.dir.join("kube-proxy.yaml")
    }
    pub fn cni_dir(&self) -> PathBuf {
        self.dir.join("cni")
    }
    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.join("kubelet")
    }
    pub fn node_kubeconfig(&self) -> PathBuf {
        self.pki.join(format!("node-{}.kubeconfig", self.name))
    }
}

pub fn pod_cidr_v4(i: usize) -> String {
    format!("198.19.{}.0/24", 128 + i)
}

pub fn pod_cidr_v6(i: usize) -> String {
    format!("2001:db8:100:{i:x}::/64")
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// containerd 1.6 (config version 2): own root, state and socket; CRI as this kernel needs it
/// (no CAP_SYS_RESOURCE, hybrid cgroups, no AppArmor); CNI from Debian's plugins.
pub fn containerd_toml(n: &NodePlan) -> String {
    let d = |s: &str| p(&n.dir.join(s));
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        sock = p(&n.containerd_socket()),
        opt = d("containerd/opt"),
        pause = n.pause_image,
        cni = p(&n.cni_dir()),
    )
}

/// The CNI network: a bridge `cni0` in the node's namespace, host-local addresses from the
/// node's pod CIDRs (both families), no masquerading (pods are routed on the LAN).
pub fn cni_conflist(n: &NodePlan) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "ferrolb-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": p(&n.dir.join("cni-ipam")),
                    "ranges": [
                        [{ "subnet": n.pod_cidr_v4() }],
                        [{ "subnet": n.pod_cidr_v6() }]
                    ],
                    "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    })
    .to_string()
}

/// KubeletConfiguration for this kernel (cgroup v1 hybrid, no CAP_SYS_RESOURCE) and for many
/// kubelets on one host: every path is the node's own, eviction thresholds are low (the host's
/// disk and memory are shared and not the node's to manage).
pub fn kubelet_yaml(n: &NodePlan) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {lan}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{ enabled: false }}
  webhook: {{ enabled: true }}
  x509: {{ clientCAFile: {ca} }}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://{sock}
imageServiceEndpoint: unix://{sock}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
resolvConf: ""
podLogsDir: {logs}
volumePluginDir: {plugins}
maxPods: 40
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
nodeStatusUpdateFrequency: 10s
shutdownGracePeriod: 0s
"#,
        lan = n.lan_v4,
        ca = p(&n.pki.join("ca.crt")),
        sock = p(&n.containerd_socket()),
        logs = p(&n.dir.join("pod-logs")),
        plugins = p(&n.dir.join("volume-plugins")),
    )
}

/// kubelet's flags besides `--config`.
pub fn kubelet_args(n: &NodePlan) -> Vec<String> {
    vec![
        format!("--config={}", p(&n.kubelet_config())),
        format!("--kubeconfig={}", p(&n.node_kubeconfig())),
        format!("--root-dir={}", p(&n.kubelet_root())),
        format!("--hostname-override={}", n.name),
        format!("--node-ip={},{}", n.lan_v4, n.lan_v6),
        "--v=1".into(),
    ]
}

/// KubeProxyConfiguration. kube-proxy runs in a network namespace, where the host-wide
/// conntrack sysctls cannot be written: it is told to leave them.
pub fn kube_proxy_yaml(n: &NodePlan) -> String {
    let mut out = format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kc}
hostnameOverride: {name}
mode: {mode}
clusterCIDR: {cidrs}
detectLocalMode: ClusterCIDR
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kc = p(&n.pki.join("kube-proxy.kubeconfig")),
        name = n.name,
        mode = n.proxy.name(),
        cidrs = CLUSTER_CIDRS,
    );
    if let ProxyMode::Ipvs { strict_arp } = n.proxy {
        let _ = writeln!(out, "ipvs:\n  strictARP: {strict_arp}");
    }
    out
}

/// The node namespace's own plumbing, as `ip -batch` lines: routes to the other nodes' pod
/// CIDRs over the LAN.
pub fn pod_routes(n: &NodePlan, peers: &[(usize, Ipv4Addr, Ipv6Addr)]) -> Vec<String> {
    peers
        .iter()
        .filter(|(i, _, _)| *i != n.index)
        .flat_map(|(i, v4, v6)| {
            [
                format!("route replace {} via {v4}", pod_cidr_v4(*i)),
                format!("route replace {} via {v6}", pod_cidr_v6(*i)),
            ]
        })
        .collect()
}

/// nftables for the node namespace: pods reach the API server (on the host's management
/// address, which routes only the management network back) from the node's management address.
pub const MGMT_MASQUERADE_NFT: &str = "table ip ferrolb-e2e-mgmt {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"mgmt0\" ip saddr 198.19.128.0/17 masquerade
  }
}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(i: usize) -> NodePlan {
        NodePlan {
            index: i,
            name: format!("flb01rc-n{i}"),
            lan_v4: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
            lan_v6: format!("2001:db8:1::{}", 10 + i)
                .parse()
                .expect("an address"),
            dir: PathBuf::from(format!("/tmp/x/n{i}")),
            pki: PathBuf::from("/tmp/cp"),
            pause_image: "localhost/ferrolb/pause:test".into(),
            proxy: ProxyMode::Ipvs { strict_arp: true },
        }
    }

    #[test]
    fn pod_cidrs_are_inside_the_cluster_cidrs_and_disjoint() {
        for i in [0, 1, 15, 100] {
            let v4: std::net::Ipv4Addr = pod_cidr_v4(i)
                .trim_end_matches("/24")
                .parse()
                .expect("an address");
            assert!(
                v4.octets()[..2] == [198, 19] && v4.octets()[2] >= 128,
                "{v4}"
            );
            let v6: Ipv6Addr = pod_cidr_v6(i)
                .trim_end_matches("/64")
                .parse()
                .expect("an address");
            assert_eq!(v6.segments()[..3], [0x2001, 0xdb8, 0x100], "{v6}");
            assert!(v6.segments()[3] < 0x100, "{v6} inside the /56");
        }
        assert_ne!(pod_cidr_v6(1), pod_cidr_v6(16));
    }

    #[test]
    fn renders_each_nodes_own_paths_and_settings() {
        let n = plan(1);
        let cd = containerd_toml(&n);
        assert!(cd.contains("root = \"/tmp/x/n1/containerd/root\""), "{cd}");
        assert!(cd.contains("restrict_oom_score_adj = true"), "{cd}");
        let cni: serde_json::Value = serde_json::from_str(&cni_conflist(&n)).expect("JSON");
        assert_eq!(
            cni["plugins"][0]["ipam"]["ranges"][1][0]["subnet"],
            "2001:db8:100:1::/64"
        );
        assert!(kubelet_yaml(&n).contains("failCgroupV1: false"));
        assert!(kubelet_args(&n).contains(&"--node-ip=192.0.2.11,2001:db8:1::11".to_string()));
        let kp = kube_proxy_yaml(&n);
        assert!(
            kp.contains("mode: ipvs") && kp.contains("strictARP: true"),
            "{kp}"
        );
        let peers = [
            (
                0,
                Ipv4Addr::new(192, 0, 2, 10),
                "2001:db8:1::10".parse().expect("an address"),
            ),
            (
                1,
                Ipv4Addr::new(192, 0, 2, 11),
                "2001:db8:1::11".parse().expect("an address"),
            ),
        ];
        assert_eq!(
            pod_routes(&n, &peers),
            vec![
                "route replace 198.19.128.0/24 via 192.0.2.10",
                "route replace 2001:db8:100:0::/64 via 2001:db8:1::10"
            ]
        );
    }
}
