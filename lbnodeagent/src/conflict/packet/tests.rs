use super::*;
use crate::gratuitous::packet::unsolicited_na;

const OURS: [u8; 6] = [0x02, 0xfb, 0x01, 0x01, 0x00, 0x0a];
const THEIRS: [u8; 6] = [0x02, 0xfb, 0x01, 0x01, 0x00, 0x0b];

/// An ARP reply as Linux sends it to a probe: to the prober's MAC, target IP 0.0.0.0.
fn reply(from: [u8; 6], to: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::new();
    ethernet(&mut out, to, from, ETHERTYPE_ARP);
    out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    out.extend_from_slice(&from);
    out.extend_from_slice(&address.octets());
    out.extend_from_slice(&to);
    out.extend_from_slice(&[0; 4]);
    out
}

#[test]
fn an_arp_probe_says_nothing_about_its_sender() {
    let frame = arp_probe(OURS, Ipv4Addr::new(192, 0, 2, 100));
    let want: Vec<u8> = [
        &BROADCAST[..],
        &OURS,
        &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1],
        &OURS,
        &[0, 0, 0, 0],
        &[0; 6],
        &[192, 0, 2, 100],
    ]
    .concat();
    assert_eq!(frame, want);
}

#[test]
fn a_dad_solicitation_goes_from_the_unspecified_address_to_the_solicited_node_group() {
    let address: Ipv6Addr = "2001:db8:1::1:120".parse().expect("ip");
    let frame = dad_solicitation(OURS, address);
    assert_eq!(frame.len(), 14 + 40 + 24);
    assert_eq!(&frame[..6], &[0x33, 0x33, 0xff, 0x01, 0x01, 0x20]);
    let ip = &frame[14..54];
    assert_eq!(&ip[8..24], &Ipv6Addr::UNSPECIFIED.octets());
    let group: Ipv6Addr = "ff02::1:ff01:120".parse().expect("ip");
    assert_eq!(&ip[24..40], &group.octets());
    assert_eq!((ip[6], ip[7]), (ICMPV6, 255));
    let icmp = &frame[54..];
    assert_eq!(icmp[0], NEIGHBOR_SOLICITATION);
    assert_eq!(&icmp[8..24], &address.octets());
    assert_eq!(icmpv6_checksum(Ipv6Addr::UNSPECIFIED, group, icmp), 0);
}

#[test]
fn answers_are_replies_and_advertisements_from_other_macs() {
    let v4 = Ipv4Addr::new(192, 0, 2, 100);
    let v6: Ipv6Addr = "2001:db8:1::100".parse().expect("ip");
    let cases: Vec<(&str, Vec<u8>, Option<Answer>)> = vec![
        (
            "unicast ARP reply to us",
            reply(THEIRS, OURS, v4),
            Some(Answer {
                address: v4.into(),
                mac: THEIRS,
            }),
        ),
        ("ARP reply to someone else", reply(THEIRS, [9; 6], v4), None),
        ("our own reply", reply(OURS, OURS, v4), None),
        ("a probe (a request)", arp_probe(THEIRS, v4), None),
        (
            "NA to ff02::1",
            unsolicited_na(THEIRS, v6),
            Some(Answer {
                address: v6.into(),
                mac: THEIRS,
            }),
        ),
        ("our own NA", unsolicited_na(OURS, v6), None),
        ("an NS", dad_solicitation(THEIRS, v6), None),
        ("a runt", vec![0; 10], None),
    ];
    for (name, frame, want) in cases {
        assert_eq!(answer(&frame, OURS), want, "{name}");
    }
}
