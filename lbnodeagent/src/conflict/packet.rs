//! The frames of conflict detection: an ARP probe (RFC 5227) and a neighbour solicitation from
//! the unspecified address (RFC 4862 DAD) for an address, and the answers to them read back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::gratuitous::packet::{ALL_NODES, icmpv6_checksum};

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

fn ethernet(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// An ARP probe: a broadcast request for `address` with sender protocol address 0.0.0.0, so
/// that no neighbour cache learns anything from it. A host that has the address answers with a
/// unicast reply to our MAC.
pub fn arp_probe(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    ethernet(&mut out, BROADCAST, mac, ETHERTYPE_ARP);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&[6, 4]);
    out.extend_from_slice(&ARP_REQUEST.to_be_bytes());
    out.extend_from_slice(&mac);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&address.octets());
    out
}

/// The solicited-node multicast group of `address` (ff02::1:ffXX:XXXX).
fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A neighbour solicitation for `address` from `::` to its solicited-node group, without a
/// source link-layer option (RFC 4861 forbids one from `::`). A host that has the address
/// answers with an NA to ff02::1.
pub fn dad_solicitation(mac: [u8; 6], address: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(address);
    let mut icmp = Vec::with_capacity(24);
    icmp.extend_from_slice(&[NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&address.octets());
    let checksum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, group, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let g = group.octets();
    let mut out = Vec::with_capacity(14 + 40 + icmp.len());
    ethernet(
        &mut out,
        [0x33, 0x33, g[12], g[13], g[14], g[15]],
        mac,
        ETHERTYPE_IPV6,
    );
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    let len = u16::try_from(icmp.len()).expect("an NS is 24 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[ICMPV6, 255]);
    out.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    out.extend_from_slice(&g);
    out.extend_from_slice(&icmp);
    out
}

/// The probe for `address`: ARP for IPv4, DAD solicitation for IPv6.
pub fn probe(mac: [u8; 6], address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => arp_probe(mac, a),
        IpAddr::V6(a) => dad_solicitation(mac, a),
    }
}

/// Someone else said it has `address`: its MAC is `mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub address: IpAddr,
    pub mac: [u8; 6],
}

/// Reads a frame seen on the interface whose MAC is `ours`: an ARP reply unicast to us, or an
/// NA to ff02::1, from another MAC. Everything else (our own frames included) is `None`.
pub fn answer(frame: &[u8], ours: [u8; 6]) -> Option<Answer> {
    let dst: [u8; 6] = frame.get(0..6)?.try_into().ok()?;
    let src: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    if src == ours {
        return None;
    }
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let body = &frame[14..];
    let found = match ethertype {
        ETHERTYPE_ARP => arp_reply(body, ours).filter(|_| dst == ours)?,
        ETHERTYPE_IPV6 => {
            let (address, advertised) = all_nodes_na(body)?;
            (address, advertised.unwrap_or(src))
        }
        _ => return None,
    };
    Some(Answer {
        address: found.0,
        mac: found.1,
    })
}

fn arp_reply(arp: &[u8], ours: [u8; 6]) -> Option<(IpAddr, [u8; 6])> {
    if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    if u16::from_be_bytes([arp[6], arp[7]]) != ARP_REPLY || arp[18..24] != ours {
        return None;
    }
    let sha: [u8; 6] = arp[8..14].try_into().ok()?;
    let spa: [u8; 4] = arp[14..18].try_into().ok()?;
    Some((IpAddr::V4(Ipv4Addr::from(spa)), sha))
}

/// An NA to ff02::1 (no extension headers, hop limit 255): its target, and the advertised MAC
/// (the target link-layer option; the Ethernet source when it has none).
fn all_nodes_na(ip: &[u8]) -> Option<(IpAddr, Option<[u8; 6]>)> {
    if ip.len() < 40 + 24 || ip[0] >> 4 != 6 || ip[6] != ICMPV6 || ip[7] != 255 {
        return None;
    }
    if ip[24..40] != ALL_NODES.octets() {
        return None;
    }
    let icmp = &ip[40..];
    if icmp[0] != NEIGHBOR_ADVERTISEMENT || icmp[1] != 0 {
        return None;
    }
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    let mut options = &icmp[24..];
    let mut mac = None;
    while options.len() >= 8 {
        let len = usize::from(options[1]) * 8;
        if len == 0 || len > options.len() {
            break;
        }
        if options[0] == 2 {
            mac = options[2..8].try_into().ok();
        }
        options = &options[len..];
    }
    Some((IpAddr::V6(Ipv6Addr::from(target)), mac))
}

#[cfg(test)]
mod tests;
