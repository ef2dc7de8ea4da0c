//! The frames that move a LAN's neighbour caches to us: gratuitous ARP and unsolicited NA.

use std::net::{Ipv4Addr, Ipv6Addr};

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1 (all nodes) on Ethernet: 33:33 and the group's last 32 bits.
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The NA's Override flag: receivers replace the link-layer address they have.
const OVERRIDE: u8 = 0x20;
const TARGET_LINK_LAYER_ADDRESS: u8 = 2;

fn ethernet(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// A gratuitous ARP (RFC 5227's ARP announcement): a broadcast request whose sender and target
/// protocol addresses are both `address`. Linux updates an existing neighbour entry from it at
/// once (a gratuitous ARP bypasses `locktime`) and, like most hosts, creates none.
pub fn gratuitous_arp(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    ethernet(&mut out, BROADCAST, mac, ETHERTYPE_ARP);
    out.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&[6, 4]);
    out.extend_from_slice(&1u16.to_be_bytes()); // request
    out.extend_from_slice(&mac);
    out.extend_from_slice(&address.octets());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&address.octets());
    out
}

/// An unsolicited neighbour advertisement (RFC 4861 7.2.6) for `address` from `address` to
/// ff02::1, hop limit 255, Override set, Solicited clear, with our link-layer address.
pub fn unsolicited_na(mac: [u8; 6], address: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0]);
    icmp.extend_from_slice(&[OVERRIDE, 0, 0, 0]);
    icmp.extend_from_slice(&address.octets());
    icmp.extend_from_slice(&[TARGET_LINK_LAYER_ADDRESS, 1]);
    icmp.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(address, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut out = Vec::with_capacity(14 + 40 + icmp.len());
    ethernet(&mut out, ALL_NODES_MAC, mac, ETHERTYPE_IPV6);
    out.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class, no flow label
    let len = u16::try_from(icmp.len()).expect("an NA is 32 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[ICMPV6, 255]);
    out.extend_from_slice(&address.octets());
    out.extend_from_slice(&ALL_NODES.octets());
    out.extend_from_slice(&icmp);
    out
}

/// The Internet checksum of ICMPv6 over the IPv6 pseudo-header (RFC 8200 8.1).
pub(crate) fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).expect("a short message");
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&len.to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xfb, 0x01, 0x01, 0x00, 0x0a];

    #[test]
    fn gratuitous_arp_announces_the_address_from_our_mac() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        let want: Vec<u8> = [
            &BROADCAST[..],
            &MAC,
            &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1],
            &MAC,
            &[192, 0, 2, 100],
            &[0; 6],
            &[192, 0, 2, 100],
        ]
        .concat();
        assert_eq!(frame, want);
    }

    #[test]
    fn unsolicited_na_is_valid_for_receivers() {
        let address: Ipv6Addr = "2001:db8:1::100".parse().expect("ip");
        let frame = unsolicited_na(MAC, address);
        assert_eq!(frame.len(), 14 + 40 + 32);
        assert_eq!(&frame[..6], &ALL_NODES_MAC);
        assert_eq!(&frame[6..12], &MAC);
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        let ip = &frame[14..54];
        assert_eq!(
            (ip[0] >> 4, ip[4], ip[5], ip[6], ip[7]),
            (6, 0, 32, ICMPV6, 255)
        );
        assert_eq!(&ip[8..24], &address.octets());
        assert_eq!(&ip[24..40], &ALL_NODES.octets());
        let icmp = &frame[54..];
        assert_eq!((icmp[0], icmp[1]), (136, 0));
        // Override only: an unsolicited NA to a multicast group must not claim Solicited.
        assert_eq!(icmp[4], 0x20);
        assert_eq!(&icmp[8..24], &address.octets());
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &MAC);
        // A message with its checksum in place sums to zero.
        assert_eq!(icmpv6_checksum(address, ALL_NODES, icmp), 0);
    }
}
