//! rtnetlink messages to and from the snapshot's plain types, without a socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_api::pool::Family;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, CacheInfo,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteType};
use rtnetlink::{AddressMessageBuilder, LinkDummy, LinkIfb, LinkUnspec};

use crate::snapshot::{ArpConf, DefaultRoute, Interface, InterfaceAddress, Lifetime, OperState};

/// An address to write: where, what, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSpec {
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// IFA_PROTO.
    pub proto: u8,
    pub valid: Lifetime,
    pub preferred: Lifetime,
}

/// The link kinds `kube-lb0` can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtualKind {
    Dummy,
    /// For kernels without the dummy driver: NOARP and up, it carries no traffic but holds
    /// addresses and their prefix routes like a dummy.
    Ifb,
}

impl VirtualKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VirtualKind::Dummy => "dummy",
            VirtualKind::Ifb => "ifb",
        }
    }
}

/// The request that creates the virtual interface: the kind, NOARP, up.
pub fn virtual_link(name: &str, kind: VirtualKind) -> LinkMessage {
    match kind {
        VirtualKind::Dummy => LinkDummy::new(name).arp(false).up().build(),
        VirtualKind::Ifb => LinkIfb::new(name).arp(false).up().build(),
    }
}

/// The RTM_SETLINK request that turns on IPv4 `promote_secondaries` on link `index`:
/// IFLA_AF_SPEC → AF_INET → IFLA_INET_CONF → IPV4_DEVCONF_PROMOTE_SECONDARIES = 1. The same
/// setting as `/proc/sys/net/ipv4/conf/<link>/promote_secondaries`, but the kernel takes it
/// from anyone with CAP_NET_ADMIN in the namespace, also where `/proc/sys` is mounted
/// read-only (every unprivileged container). Only the non-zero fields of the request are
/// sent, so no other setting of the link changes.
pub fn promote_secondaries_request(index: u32) -> LinkMessage {
    let mut conf = InetDevConf::default();
    conf.promote_secondaries = 1;
    devconf_request(index, conf)
}

/// The RTM_SETLINK request that makes link `index` answer ARP only for its own addresses and
/// name only its own addresses in its ARP requests: `arp_ignore` 1 and `arp_announce` 2, what
/// kube-proxy's `strictARP` sets on `all` (the kernel applies the larger of `all` and the link).
/// As for [`promote_secondaries_request`], only these two fields are sent.
pub fn strict_arp_request(index: u32) -> LinkMessage {
    let mut conf = InetDevConf::default();
    conf.arp_ignore = 1;
    conf.arp_announce = 2;
    devconf_request(index, conf)
}

/// RTM_SETLINK on link `index` with IFLA_AF_SPEC → AF_INET → IFLA_INET_CONF carrying the
/// non-zero fields of `conf`.
fn devconf_request(index: u32, conf: InetDevConf) -> LinkMessage {
    let mut msg = LinkUnspec::new_with_index(index).build();
    msg.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::DevConfRequest(conf),
        ])]));
    msg
}

/// A link dump's IPv4 device configuration; `None` for a link without IPv4.
fn inet_devconf(msg: &LinkMessage) -> Option<&InetDevConf> {
    msg.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|spec| match spec {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match i {
                AfSpecInet::DevConf(conf) => Some(conf),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Whether a link dump says `promote_secondaries` is on; `None` when the message carries no
/// IPv4 device configuration (a link without IPv4).
pub fn promote_secondaries(msg: &LinkMessage) -> Option<bool> {
    inet_devconf(msg).map(|conf| conf.promote_secondaries != 0)
}

/// A link dump's `arp_ignore` and `arp_announce`; `None` for a link without IPv4.
pub fn arp_conf(msg: &LinkMessage) -> Option<ArpConf> {
    inet_devconf(msg).map(|conf| ArpConf {
        ignore: conf.arp_ignore,
        announce: conf.arp_announce,
    })
}

/// An address message with just the address (enough to delete it).
pub fn address_message(index: u32, address: IpAddr, prefix_len: u8) -> AddressMessage {
    match address {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, prefix_len)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, prefix_len)
            .build(),
    }
}

/// The attributes that make an address ours and set its flags and lifetimes: IFA_FLAGS (the
/// 32-bit attribute, since IFA_F_NOPREFIXROUTE does not fit the header's 8 bits), IFA_PROTO and
/// IFA_CACHEINFO.
pub fn address_attributes(spec: &AddressSpec) -> Vec<AddressAttribute> {
    let mut cache = CacheInfo::default();
    cache.ifa_valid = spec.valid.to_kernel();
    cache.ifa_preferred = spec.preferred.to_kernel();
    vec![
        AddressAttribute::Flags(AddressFlags::from_bits_retain(spec.flags)),
        AddressAttribute::Protocol(AddressProtocol::from(spec.proto)),
        AddressAttribute::CacheInfo(cache),
    ]
}

pub fn interface(msg: &LinkMessage) -> Option<Interface> {
    let mut out = Interface {
        index: msg.header.index,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        arp: arp_conf(msg),
        ..Interface::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => out.name = name.clone(),
            LinkAttribute::Carrier(c) => out.carrier = *c != 0,
            LinkAttribute::OperState(state) => out.oper = oper(*state),
            LinkAttribute::Address(mac) => out.mac = Some(mac.clone()),
            LinkAttribute::LinkInfo(infos) => {
                out.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    (!out.name.is_empty()).then_some(out)
}

fn oper(state: State) -> OperState {
    match state {
        State::Up => OperState::Up,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::NotPresent => OperState::NotPresent,
        _ => OperState::Unknown,
    }
}

/// (interface index, address). IPv4 reports the local address in IFA_LOCAL (IFA_ADDRESS is the
/// peer on point-to-point links); IPv6 in IFA_ADDRESS unless it has a peer.
pub fn interface_address(msg: &AddressMessage) -> Option<(u32, InterfaceAddress)> {
    let mut local = None;
    let mut address = None;
    let mut proto = 0;
    let mut flags = u32::from(msg.header.flags.bits());
    let mut valid = Lifetime::Forever;
    let mut preferred = Lifetime::Forever;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Protocol(p) => proto = u8::from(*p),
            AddressAttribute::Flags(f) => flags = f.bits(),
            AddressAttribute::CacheInfo(c) => {
                valid = Lifetime::from_kernel(c.ifa_valid);
                preferred = Lifetime::from_kernel(c.ifa_preferred);
            }
            _ => {}
        }
    }
    let address = local.or(address)?;
    Some((
        msg.header.index,
        InterfaceAddress {
            address,
            prefix_len: msg.header.prefix_len,
            proto,
            flags,
            valid,
            preferred,
        },
    ))
}

/// A default route (`/0`, unicast, main table), or `None` for any other route.
pub fn default_route(msg: &RouteMessage, family: Family) -> Option<DefaultRoute> {
    if msg.header.destination_prefix_length != 0 || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut oif = None;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = oif.or(Some(*i)),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) => {
                oif = oif.or(hops.first().map(|h| h.interface_index))
            }
            _ => {}
        }
    }
    (table == u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(())?;
    Some(DefaultRoute {
        family,
        interface_index: oif?,
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::contracts::IFA_PROTO_FERROLB;
    use netlink_packet_route::link::InfoKind;

    #[test]
    fn builds_the_virtual_interface_as_dummy_or_ifb_noarp_and_up() {
        for (kind, want) in [
            (VirtualKind::Dummy, InfoKind::Dummy),
            (VirtualKind::Ifb, InfoKind::Ifb),
        ] {
            let msg = virtual_link("kube-lb0", kind);
            assert!(
                msg.header.flags.contains(LinkFlags::Noarp | LinkFlags::Up),
                "{kind:?}"
            );
            assert!(
                msg.header
                    .change_mask
                    .contains(LinkFlags::Noarp | LinkFlags::Up),
                "{kind:?}"
            );
            assert!(
                msg.attributes
                    .contains(&LinkAttribute::IfName("kube-lb0".into()))
            );
            assert!(
                msg.attributes
                    .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(want)]))
            );
        }
    }

    /// The request's bytes, nested as the kernel's `inet_set_link_af` reads them.
    #[test]
    fn promote_secondaries_request_nests_the_devconf_flag_under_af_inet() {
        use netlink_packet_core::Emitable;
        let msg = promote_secondaries_request(9);
        assert_eq!(msg.header.index, 9);
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        let nla = |len: u16, kind: u16| [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        const IFLA_AF_SPEC: u16 = 26;
        const AF_INET: u16 = 2;
        const IFLA_INET_CONF: u16 = 1;
        const NLA_F_NESTED: u16 = 1 << 15;
        const IPV4_DEVCONF_PROMOTE_SECONDARIES: u16 = 20;
        let want = [
            nla(20, IFLA_AF_SPEC),
            nla(16, AF_INET),
            nla(12, IFLA_INET_CONF | NLA_F_NESTED),
            nla(8, IPV4_DEVCONF_PROMOTE_SECONDARIES),
            1u32.to_ne_bytes().to_vec(),
        ]
        .concat();
        // The link header is 16 bytes; the AF_SPEC attribute is the only attribute after it.
        assert_eq!(&bytes[16..], &want[..], "{bytes:?}");
    }

    /// A link dump carrying `conf` as its IPv4 device configuration.
    fn link_dump(conf: InetDevConf) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConf(conf),
            ])]));
        msg
    }

    #[test]
    fn strict_arp_request_sends_arp_ignore_and_arp_announce_only() {
        use netlink_packet_core::Emitable;
        let msg = strict_arp_request(4);
        assert_eq!(msg.header.index, 4);
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        let nla = |len: u16, kind: u16| [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        const IPV4_DEVCONF_ARP_ANNOUNCE: u16 = 18;
        const IPV4_DEVCONF_ARP_IGNORE: u16 = 19;
        // AF_SPEC(4) → AF_INET(4) → INET_CONF(4) → two 8-byte settings, after the 16-byte header.
        assert_eq!(bytes.len(), 16 + 12 + 16, "{bytes:?}");
        let settings = &bytes[28..];
        let ignore = [nla(8, IPV4_DEVCONF_ARP_IGNORE), 1u32.to_ne_bytes().to_vec()].concat();
        let announce = [
            nla(8, IPV4_DEVCONF_ARP_ANNOUNCE),
            2u32.to_ne_bytes().to_vec(),
        ]
        .concat();
        assert!(
            settings == [ignore.clone(), announce.clone()].concat()
                || settings == [announce, ignore].concat(),
            "{settings:?}"
        );
        let mut conf = InetDevConf::default();
        conf.arp_ignore = 1;
        conf.arp_announce = 2;
        assert_eq!(
            arp_conf(&link_dump(conf)),
            Some(ArpConf {
                ignore: 1,
                announce: 2
            })
        );
        assert_eq!(arp_conf(&LinkMessage::default()), None);
    }

    #[test]
    fn reads_promote_secondaries_from_a_link_dump() {
        let dump = |on: i32| {
            let mut conf = InetDevConf::default();
            conf.promote_secondaries = on;
            link_dump(conf)
        };
        let cases = [
            ("on", dump(1), Some(true)),
            ("off", dump(0), Some(false)),
            ("no IPv4 on the link", LinkMessage::default(), None),
        ];
        for (name, msg, want) in cases {
            assert_eq!(promote_secondaries(&msg), want, "{name}");
        }
    }

    #[test]
    fn address_attributes_round_trip_through_the_parser() {
        let spec = AddressSpec {
            index: 7,
            address: "2001:db8::10".parse().expect("ip"),
            prefix_len: 64,
            flags: crate::decide::IFA_F_NODAD | crate::decide::IFA_F_NOPREFIXROUTE,
            proto: IFA_PROTO_FERROLB,
            valid: Lifetime::Seconds(5),
            preferred: Lifetime::Seconds(0),
        };
        let mut msg = address_message(spec.index, spec.address, spec.prefix_len);
        msg.attributes.extend(address_attributes(&spec));
        let (index, parsed) = interface_address(&msg).expect("an address");
        assert_eq!(index, 7);
        assert_eq!(parsed.address, spec.address);
        assert_eq!(parsed.prefix_len, 64);
        assert_eq!(parsed.proto, 0x66);
        assert_eq!(parsed.flags, spec.flags);
        assert_eq!(
            (parsed.valid, parsed.preferred),
            (Lifetime::Seconds(5), Lifetime::Seconds(0))
        );
        assert_eq!(Lifetime::from_kernel(u32::MAX), Lifetime::Forever);
        assert_eq!(Lifetime::Forever.to_kernel(), u32::MAX);
    }
}
