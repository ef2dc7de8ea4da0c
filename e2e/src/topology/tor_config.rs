//! The ToR's FRR configuration: eBGP to the nodes with ECMP, BFD and RFC 8326 graceful
//! shutdown, rendered as integrated frr.conf text.

use std::net::{IpAddr, Ipv4Addr};

use super::{NODE_ASN, TOR_ASN, TOR_LAN_IF, TOR_LAN_V4, Topology};

/// A BGP neighbour of the ToR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    pub address: IpAddr,
    pub asn: u32,
}

/// BFD timers; the ToR's sessions use profile `ferrolb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdTimers {
    pub rx_ms: u32,
    pub tx_ms: u32,
    pub multiplier: u8,
}

impl BfdTimers {
    /// 100 ms x 3: a dead node is noticed in 300 ms.
    pub const FAST: BfdTimers = BfdTimers {
        rx_ms: 100,
        tx_ms: 100,
        multiplier: 3,
    };
    /// 300 ms x 3 (MetalLB's default BFD profile): a dead node is noticed in 900 ms. For a whole
    /// cluster on a loaded 2-core machine, where 100 ms packets are late often enough to take
    /// every session down at once.
    pub const COMMON: BfdTimers = BfdTimers {
        rx_ms: 300,
        tx_ms: 300,
        multiplier: 3,
    };
}

/// What the ToR runs: eBGP to the nodes with ECMP, optional BFD and RFC 8326 handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub peers: Vec<BgpPeer>,
    /// ECMP width (`maximum-paths`) in each address family.
    pub maximum_paths: u16,
    /// BFD on every session, when set.
    pub bfd: Option<BfdTimers>,
    /// Routes carrying community 65535:0 (graceful-shutdown, RFC 8326) get local-preference 0.
    pub graceful_shutdown: bool,
    /// BGP keepalive and hold time in seconds.
    pub bgp_timers: (u16, u16),
    /// Also run ospfd with the LAN interface in area 0 (BFD on it when `bfd` is set).
    pub ospf: bool,
}

impl TorConfig {
    /// ASN `asn`, no peers, 16-way ECMP, BFD 100 ms x 3, graceful-shutdown honoured, BGP timers
    /// 3/9 s, no OSPF.
    pub fn new(asn: u32) -> TorConfig {
        TorConfig {
            asn,
            router_id: TOR_LAN_V4,
            peers: Vec::new(),
            maximum_paths: 16,
            bfd: Some(BfdTimers::FAST),
            graceful_shutdown: true,
            bgp_timers: (3, 9),
            ospf: false,
        }
    }

    /// [`TOR_ASN`] peering with every node of `topo` over IPv4 and IPv6, all in [`NODE_ASN`].
    pub fn for_nodes(topo: &Topology) -> TorConfig {
        let mut config = TorConfig::new(TOR_ASN);
        for node in topo.nodes() {
            config.peers.push(BgpPeer {
                address: node.lan_v4().into(),
                asn: NODE_ASN,
            });
            config.peers.push(BgpPeer {
                address: node.lan_v6().into(),
                asn: NODE_ASN,
            });
        }
        config
    }

    pub fn render(&self) -> String {
        render_frr_conf(self)
    }
}

/// The integrated frr.conf text for `config`.
pub fn render_frr_conf(config: &TorConfig) -> String {
    let mut s = String::new();
    let mut line = |text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line("frr defaults traditional");
    line("hostname tor");
    line("log stdout informational");
    // Apply route-map changes at once: the default 5 s delay also holds new peers in
    // "config-pending" that long.
    line("bgp route-map delay-timer 0");
    line("!");
    if let Some(bfd) = config.bfd {
        line("bfd");
        line(" profile ferrolb");
        line(&format!("  receive-interval {}", bfd.rx_ms));
        line(&format!("  transmit-interval {}", bfd.tx_ms));
        line(&format!("  detect-multiplier {}", bfd.multiplier));
        line(" exit");
        line("exit");
        line("!");
    }
    if config.graceful_shutdown {
        line("bgp community-list standard GSHUT seq 5 permit graceful-shutdown");
        line("route-map FROM-NODES permit 10");
        line(" match community GSHUT");
        line(" set local-preference 0");
        line("exit");
    }
    line("route-map FROM-NODES permit 20");
    line("exit");
    // The nodes route by a static default; the ToR tells them nothing.
    line("route-map TO-NODES deny 10");
    line("exit");
    line("!");
    line(&format!("router bgp {}", config.asn));
    line(&format!(" bgp router-id {}", config.router_id));
    line(" no bgp default ipv4-unicast");
    line(" bgp bestpath as-path multipath-relax");
    line(&format!(
        " timers bgp {} {}",
        config.bgp_timers.0, config.bgp_timers.1
    ));
    for peer in &config.peers {
        line(&format!(
            " neighbor {} remote-as {}",
            peer.address, peer.asn
        ));
        line(&format!(" neighbor {} timers connect 1", peer.address));
        if config.bfd.is_some() {
            line(&format!(" neighbor {} bfd profile ferrolb", peer.address));
        }
    }
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        line(&format!(" address-family {family} unicast"));
        line(&format!("  maximum-paths {}", config.maximum_paths));
        for peer in config.peers.iter().filter(|p| p.address.is_ipv6() == v6) {
            line(&format!("  neighbor {} activate", peer.address));
            line(&format!(
                "  neighbor {} route-map FROM-NODES in",
                peer.address
            ));
            line(&format!(
                "  neighbor {} route-map TO-NODES out",
                peer.address
            ));
        }
        line(" exit-address-family");
    }
    line("exit");
    line("!");
    if config.ospf {
        line(&format!("interface {}", TOR_LAN_IF));
        line(" ip ospf area 0.0.0.0");
        line(" ip ospf hello-interval 1");
        line(" ip ospf dead-interval 3");
        if config.bfd.is_some() {
            line(" ip ospf bfd");
            line(" ip ospf bfd profile ferrolb");
        }
        line("exit");
        line("router ospf");
        line(&format!(" ospf router-id {}", config.router_id));
        line(&format!(" maximum-paths {}", config.maximum_paths));
        line("exit");
        line("!");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_peers_per_family_with_bfd_ecmp_and_graceful_shutdown() {
        let mut config = TorConfig::new(64512);
        config.peers = vec![
            BgpPeer {
                address: "192.0.2.10".parse().expect("literal"),
                asn: 64520,
            },
            BgpPeer {
                address: "2001:db8:1::a".parse().expect("literal"),
                asn: 64520,
            },
        ];
        config.maximum_paths = 8;
        let text = render_frr_conf(&config);
        let cases = [
            ("asn", "router bgp 64512\n"),
            (
                "bfd profile timers",
                "  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n",
            ),
            (
                "v4 peer with bfd",
                " neighbor 192.0.2.10 remote-as 64520\n neighbor 192.0.2.10 timers connect 1\n neighbor 192.0.2.10 bfd profile ferrolb\n",
            ),
            (
                "v4 peer in the v4 family",
                " address-family ipv4 unicast\n  maximum-paths 8\n  neighbor 192.0.2.10 activate\n",
            ),
            (
                "v6 peer in the v6 family",
                " address-family ipv6 unicast\n  maximum-paths 8\n  neighbor 2001:db8:1::a activate\n",
            ),
            (
                "RFC 8326",
                " match community GSHUT\n set local-preference 0\n",
            ),
        ];
        for (name, want) in cases {
            assert!(text.contains(want), "{name}: {want:?} not in\n{text}");
        }
        assert!(
            !text.contains("router ospf"),
            "no OSPF unless asked:\n{text}"
        );
    }

    #[test]
    fn renders_no_bfd_and_no_gshut_when_off() {
        let mut config = TorConfig::new(64512);
        config.bfd = None;
        config.graceful_shutdown = false;
        config.peers = vec![BgpPeer {
            address: "192.0.2.10".parse().expect("literal"),
            asn: 64520,
        }];
        let text = render_frr_conf(&config);
        assert!(!text.contains("bfd"), "{text}");
        assert!(!text.contains("GSHUT"), "{text}");
        assert!(text.contains("route-map FROM-NODES permit 20"), "{text}");
    }
}
