//! The kernel's interfaces, addresses and default routes, joined into [`KernelFacts`].

use crate::Result;
use crate::netlink::Netlink;
use crate::snapshot::KernelFacts;

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
    })
}
