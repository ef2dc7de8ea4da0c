//! Gratuitous ARP / unsolicited NA after this node adds a local address, so the LAN's neighbour
//! caches move to it at once (a takeover after a crash would otherwise wait for them to expire).
//!
//! Frames go out on an `AF_PACKET` socket through nix's safe API: `getifaddrs` hands us the
//! interface's link-layer socket address (index and MAC), which the socket is bound to, so no
//! `sockaddr_ll` is ever built by hand and no unsafe code is needed. The socket is opened on the
//! calling thread, in its network namespace.

pub mod packet;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, bind, send, socket};
use tracing::{debug, warn};

use crate::snapshot::Gratuitous;
use crate::{Error, Result};

/// A packet socket bound to one interface, with that interface's MAC.
pub struct Sender {
    socket: OwnedFd,
    mac: [u8; 6],
    interface: String,
}

impl Sender {
    /// Binds to `interface` (as the calling thread's namespace sees it).
    pub fn open(interface: &str) -> Result<Self> {
        let err = |why: String| Error::Gratuitous {
            interface: interface.to_string(),
            why,
        };
        let link: LinkAddr = getifaddrs()
            .map_err(|e| err(format!("getifaddrs: {e}")))?
            .filter(|a| a.interface_name == interface)
            .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
            .ok_or_else(|| err("no such interface, or it has no link-layer address".into()))?;
        let mac = link.addr().ok_or_else(|| err("no MAC address".into()))?;
        // Protocol 0: the socket sends and never receives.
        let socket = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| err(format!("packet socket: {e}")))?;
        bind(socket.as_raw_fd(), &link).map_err(|e| err(format!("bind: {e}")))?;
        Ok(Self {
            socket,
            mac,
            interface: interface.to_string(),
        })
    }

    /// The interface's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// One gratuitous ARP (IPv4) or unsolicited NA (IPv6) for `address`.
    pub fn announce(&self, address: IpAddr) -> Result<()> {
        let frame = match address {
            IpAddr::V4(a) => packet::gratuitous_arp(self.mac, a),
            IpAddr::V6(a) => packet::unsolicited_na(self.mac, a),
        };
        send(self.socket.as_raw_fd(), &frame, MsgFlags::empty())
            .map(drop)
            .map_err(|e| Error::Gratuitous {
                interface: self.interface.clone(),
                why: format!("send for {address}: {e}"),
            })
    }
}

/// Sends `settings.count` announcements of `address` on `interface`, `interval` apart after
/// `initial_delay`, as long as `still_holds()` says the node still holds it (checked before
/// each packet: an address handed over meanwhile must not be pulled back). Returns how many
/// went out. Runs on the calling thread, so the socket opens in its namespace.
pub async fn announce(
    settings: Gratuitous,
    interface: &str,
    address: IpAddr,
    still_holds: impl Fn() -> bool,
    mut sent: impl FnMut(IpAddr),
) -> u32 {
    if !settings.enabled || settings.count == 0 {
        return 0;
    }
    tokio::time::sleep(settings.initial_delay).await;
    let sender = match Sender::open(interface) {
        Ok(sender) => sender,
        Err(e) => {
            warn!(interface, address = %address, error = %e, "cannot send gratuitous ARP/NA");
            return 0;
        }
    };
    let mut count = 0;
    for i in 0..settings.count {
        if i > 0 {
            tokio::time::sleep(settings.interval).await;
        }
        if !still_holds() {
            debug!(interface, address = %address, "no longer held; announcements stop");
            break;
        }
        match sender.announce(address) {
            Ok(()) => {
                count += 1;
                sent(address);
            }
            Err(e) => warn!(interface, address = %address, error = %e, "announcement failed"),
        }
    }
    debug!(interface, address = %address, count, "announced");
    count
}
