//! Kernel change notifications: the same rtnetlink connection, subscribed to the link, address
//! and route multicast groups, so a deleted address, a moved default route or a carrier change
//! wakes the agent at once instead of at the next renewal tick.

use futures::StreamExt;
use futures::stream::BoxStream;
use rtnetlink::MulticastGroup;

use super::Netlink;
use crate::{Error, Result};

/// The groups the agent listens to (`ip monitor link address route`).
const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
];

/// Notifications of kernel changes; what changed is not kept (the agent dumps anyway).
pub struct KernelChanges {
    messages: BoxStream<'static, ()>,
}

impl KernelChanges {
    /// Waits for the next change; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<()> {
        self.messages.next().await
    }
}

impl Netlink {
    /// As [`Netlink::connect`], and subscribed to link, address and route changes.
    pub fn connect_watching() -> Result<(Self, KernelChanges)> {
        let (connection, handle, messages) =
            rtnetlink::new_multicast_connection(&GROUPS).map_err(Error::Connect)?;
        Ok((
            Self {
                handle,
                connection: tokio::spawn(connection),
            },
            KernelChanges {
                messages: messages.map(drop).boxed(),
            },
        ))
    }
}
