//! The kernel's interfaces, addresses and default routes, joined into [`KernelFacts`].

use crate::Result;
use crate::netlink::Netlink;
use crate::snapshot::{ArpConf, KernelFacts};

/// One dump of links, addresses and default routes. Addresses of an interface that vanished
/// between the dumps are dropped; the next round sees a consistent picture.
pub async fn kernel_facts(netlink: &Netlink) -> Result<KernelFacts> {
    let mut interfaces = netlink.interfaces().await?;
    for (index, address) in netlink.addresses().await? {
        if let Some(interface) = interfaces.iter_mut().find(|i| i.index == index) {
            interface.addresses.push(address);
        }
    }
    Ok(KernelFacts {
        interfaces,
        default_routes: netlink.default_routes().await?,
        arp_all: arp_all(),
    })
}

/// `net.ipv4.conf.all.arp_ignore` and `arp_announce` of this network namespace: netlink has
/// no request for `all`, and `/proc/sys` is readable (if read-only) in every container.
fn arp_all() -> Option<ArpConf> {
    let read = |name: &str| -> Option<i32> {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/all/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(ArpConf {
        ignore: read("arp_ignore")?,
        announce: read("arp_announce")?,
    })
}
