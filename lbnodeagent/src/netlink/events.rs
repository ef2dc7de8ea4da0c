//! Kernel change notifications: a netlink socket of their own, subscribed to the link, address
//! and route multicast groups, so a deleted address, a moved default route or a carrier change
//! wakes the agent at once instead of at the next renewal tick.
//!
//! The notifications do not share the socket the agent's requests go through: every address
//! the agent adds comes back as a burst of notifications (the address and its local route),
//! and when they fill a socket's receive buffer the kernel drops what arrives next — on a
//! shared socket that could be the acknowledgement of a request, which would then never
//! complete. Measured with 5,000 Services, a shared socket's buffer overflowed on the first
//! round.

use std::os::fd::AsFd;

use futures::StreamExt;
use futures::stream::BoxStream;
use nix::sys::socket::{setsockopt, sockopt};
use rtnetlink::MulticastGroup;
use rtnetlink::sys::AsyncSocket;
use tokio::task::JoinHandle;
use tracing::debug;

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

/// Receive buffer of the notification socket: room for the notifications of some thousands of
/// address changes (a few hundred bytes each, the address and its route). An overflow is not
/// an error (the overrun wakes the agent like any change, and a round dumps everything), only
/// notifications that were not needed.
const EVENT_BUFFER: usize = 4 << 20;

/// Notifications of kernel changes; what changed is not kept (the agent dumps anyway).
pub struct KernelChanges {
    messages: BoxStream<'static, ()>,
    connection: JoinHandle<()>,
}

impl Drop for KernelChanges {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl KernelChanges {
    /// Waits for the next change (or an overrun, which stands for lost ones); `None` once the
    /// connection is gone.
    pub async fn next(&mut self) -> Option<()> {
        self.messages.next().await
    }
}

impl Netlink {
    /// As [`Netlink::connect`], and a second socket subscribed to link, address and route
    /// changes.
    pub fn connect_watching() -> Result<(Self, KernelChanges)> {
        let netlink = Self::connect()?;
        let (mut connection, _, messages) =
            rtnetlink::new_multicast_connection(&GROUPS).map_err(Error::Connect)?;
        let socket = connection.socket_mut().socket_mut();
        // SO_RCVBUFFORCE (CAP_NET_ADMIN, which the agent has) passes rmem_max; else SO_RCVBUF
        // up to rmem_max.
        if let Err(e) = setsockopt(&socket.as_fd(), sockopt::RcvBufForce, &EVENT_BUFFER) {
            debug!(error = %e, "SO_RCVBUFFORCE refused; SO_RCVBUF up to rmem_max");
            let _ = setsockopt(&socket.as_fd(), sockopt::RcvBuf, &EVENT_BUFFER);
        }
        Ok((
            netlink,
            KernelChanges {
                messages: messages.map(drop).boxed(),
                connection: tokio::spawn(connection),
            },
        ))
    }
}
