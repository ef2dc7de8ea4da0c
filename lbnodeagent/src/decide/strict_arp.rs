//! kube-proxy in IPVS mode puts every LoadBalancer address on `kube-ipvs0` of every node, and
//! Linux answers ARP on any interface for an address on any other (`arp_ignore` 0): every node
//! would answer for a local address, and clients would reach whichever answered last (MetalLB's
//! most reported pitfall; kube-proxy's `strictARP` is the remedy). Where `kube-ipvs0` exists,
//! the local interface must answer only for its own addresses (`arp_ignore` ≥ 1) and name only
//! its own addresses in its requests (`arp_announce` 2). IPv6 needs nothing: Neighbor Discovery
//! answers only for the receiving interface's addresses.

use crate::snapshot::{ArpConf, KernelFacts};

/// The interface kube-proxy's IPVS mode creates and puts every Service address on.
pub const KUBE_IPVS_INTERFACE: &str = "kube-ipvs0";

/// The local IPv4 interface answers ARP for addresses it does not have: set `arp_ignore` 1 and
/// `arp_announce` 2 on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrictArp {
    pub interface: String,
    pub index: u32,
    /// The values in force before (the larger of the link's and `all`'s).
    pub before: ArpConf,
}

/// What `local_v4` (the local IPv4 interface) needs, if anything: nothing without `kube-ipvs0`
/// (the agent leaves the node's settings alone), nothing when the settings in force (the larger
/// of the link's and `all`'s, as the kernel applies them) are strict already.
pub fn strict_arp(kernel: &KernelFacts, local_v4: Option<&str>) -> Option<StrictArp> {
    if !kernel
        .interfaces
        .iter()
        .any(|i| i.name == KUBE_IPVS_INTERFACE)
    {
        return None;
    }
    let local = kernel
        .interfaces
        .iter()
        .find(|i| Some(i.name.as_str()) == local_v4)?;
    let link = local.arp?;
    let all = kernel.arp_all.unwrap_or_default();
    let before = ArpConf {
        ignore: link.ignore.max(all.ignore),
        announce: link.announce.max(all.announce),
    };
    // arp_ignore 1..=3 all answer only for the receiving interface's addresses (2 and 3 are
    // stricter still); 8 answers nothing. arp_announce 2 is the strictest there is.
    (before.ignore == 0 || before.announce < 2).then(|| StrictArp {
        interface: local.name.clone(),
        index: local.index,
        before,
    })
}

/// The `StrictARPApplied` Event's note.
pub fn applied_note(fix: &StrictArp) -> String {
    format!(
        "kube-proxy's IPVS mode puts every Service address on {KUBE_IPVS_INTERFACE}, and with \
         arp_ignore {} / arp_announce {} this node would answer ARP for local addresses that \
         another node holds. The agent set arp_ignore 1 and arp_announce 2 on {} (the kernel's \
         per-interface form of kube-proxy's strictARP; setting `strictARP: true` in kube-proxy's \
         configuration does the same for every interface).",
        fix.before.ignore, fix.before.announce, fix.interface
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Interface;

    fn link(name: &str, index: u32, arp: Option<ArpConf>) -> Interface {
        Interface {
            name: name.into(),
            index,
            arp,
            ..Interface::default()
        }
    }

    fn arp(ignore: i32, announce: i32) -> Option<ArpConf> {
        Some(ArpConf { ignore, announce })
    }

    #[test]
    fn only_with_kube_ipvs0_and_only_what_is_not_strict_already() {
        let ipvs = link(KUBE_IPVS_INTERFACE, 9, arp(0, 0));
        let cases = [
            (
                "no kube-ipvs0: the node's settings are left alone",
                false,
                arp(0, 0),
                arp(0, 0),
                true,
            ),
            (
                "IPVS, defaults everywhere",
                true,
                arp(0, 0),
                arp(0, 0),
                false,
            ),
            (
                "IPVS, only arp_announce missing",
                true,
                arp(1, 0),
                arp(0, 0),
                false,
            ),
            ("IPVS, the link is strict", true, arp(1, 2), arp(0, 0), true),
            (
                "IPVS, kube-proxy's strictARP set `all`",
                true,
                arp(0, 0),
                arp(1, 2),
                true,
            ),
            (
                "IPVS, stricter arp_ignore 2",
                true,
                arp(2, 2),
                arp(0, 0),
                true,
            ),
            ("IPVS, `all` unreadable", true, arp(0, 0), None, false),
        ];
        for (name, with_ipvs, eth0, all, strict) in cases {
            let mut interfaces = vec![link("eth0", 2, eth0)];
            if with_ipvs {
                interfaces.push(ipvs.clone());
            }
            let kernel = KernelFacts {
                interfaces,
                arp_all: all,
                ..KernelFacts::default()
            };
            let fix = strict_arp(&kernel, Some("eth0"));
            assert_eq!(fix.is_none(), strict, "{name}: {fix:?}");
            if let Some(fix) = fix {
                assert_eq!((fix.interface.as_str(), fix.index), ("eth0", 2), "{name}");
                assert!(applied_note(&fix).contains("arp_ignore 1 and arp_announce 2 on eth0"));
            }
        }
        let kernel = KernelFacts {
            interfaces: vec![link("eth0", 2, arp(0, 0)), ipvs],
            ..KernelFacts::default()
        };
        assert_eq!(strict_arp(&kernel, None), None, "no local IPv4 interface");
        assert_eq!(strict_arp(&kernel, Some("eth1")), None, "not on this node");
    }
}
