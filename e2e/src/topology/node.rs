//! A node namespace and its addresses, all derived from the topology slot and node index.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{NODE_LAN_IF, NODE_MGMT_IF};

/// One node namespace and its addresses.
#[derive(Debug, Clone)]
pub struct Node {
    pub(super) index: usize,
    pub(super) ns: String,
    pub(super) lan_v4: Ipv4Addr,
    pub(super) lan_v6: Ipv6Addr,
    pub(super) mac: String,
    mac_bytes: [u8; 6],
    pub(super) mgmt: Option<(Ipv4Addr, String)>,
}

impl Node {
    pub(super) fn new(prefix: &str, slot: u8, i: usize, management: bool) -> Node {
        let host = u8::try_from(10 + i).expect("at most MAX_NODES nodes");
        Node {
            index: i,
            ns: format!("{prefix}-n{i}"),
            lan_v4: Ipv4Addr::new(192, 0, 2, host),
            lan_v6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(host)),
            mac: mac(slot, 1, host),
            mac_bytes: mac_bytes(slot, 1, host),
            mgmt: management.then(|| (Ipv4Addr::new(198, 18, slot, host), format!("{prefix}m{i}"))),
        }
    }

    pub fn index(&self) -> usize {
        self.index
    }
    pub fn ns_name(&self) -> &str {
        &self.ns
    }
    pub fn lan_v4(&self) -> Ipv4Addr {
        self.lan_v4
    }
    pub fn lan_v6(&self) -> Ipv6Addr {
        self.lan_v6
    }
    pub fn lan_ifname(&self) -> &str {
        NODE_LAN_IF
    }
    /// The LAN interface's MAC, lower-case `aa:bb:..`.
    pub fn mac(&self) -> &str {
        &self.mac
    }
    /// The LAN interface's IPv6 link-local address (EUI-64 from the MAC, the kernel's default),
    /// which is what the ToR shows as the next hop of routes learnt over IPv6 BGP.
    pub fn lan_link_local(&self) -> Ipv6Addr {
        let m = self.mac_bytes;
        let pair = |a: u8, b: u8| (u16::from(a) << 8) | u16::from(b);
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            pair(m[0] ^ 0x02, m[1]),
            pair(m[2], 0xff),
            pair(0xfe, m[3]),
            pair(m[4], m[5]),
        )
    }
    /// The node's management address, when the topology has management.
    pub fn mgmt_v4(&self) -> Option<Ipv4Addr> {
        self.mgmt.as_ref().map(|(a, _)| *a)
    }
    pub fn mgmt_ifname(&self) -> &str {
        NODE_MGMT_IF
    }
    /// The host-namespace end of the management veth.
    pub fn mgmt_host_link(&self) -> Option<&str> {
        self.mgmt.as_ref().map(|(_, l)| l.as_str())
    }
}

/// Locally administered MACs derived from the slot, so a reused slot keeps the MACs the host's
/// neighbour cache may still hold for it.
pub(super) fn mac(slot: u8, role: u8, host: u8) -> String {
    mac_bytes(slot, role, host)
        .map(|b| format!("{b:02x}"))
        .join(":")
}

fn mac_bytes(slot: u8, role: u8, host: u8) -> [u8; 6] {
    [0x02, 0xfb, slot, role, 0x00, host]
}
