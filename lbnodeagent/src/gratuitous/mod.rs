//! Gratuitous ARP / unsolicited NA after this node adds a local address, so the LAN's neighbour
//! caches move to it at once (a takeover after a crash would otherwise wait for them to expire).
//!
//! Frames go out on an `AF_PACKET` socket through nix's safe API: `getifaddrs` hands us the
//! interface's link-layer socket address (index and MAC), which the socket is bound to, so no
//! `sockaddr_ll` is ever built by hand and no unsafe code is needed. The socket is opened on the
//! calling thread, in its network namespace.
//!
//! `getifaddrs` dumps every address of the node under the rtnl lock, so it is called once per
//! interface, not per address: [`Senders`] keeps one socket per interface for as long as the
//! kernel reports the same index and MAC for it, and [`announce`] sends a whole round's new
//! addresses of one interface from one task.

pub mod packet;

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, bind, send, socket};
use tracing::{debug, warn};

use crate::snapshot::Gratuitous;
use crate::{Error, Result};

/// A packet socket bound to one interface, with that interface's MAC.
pub struct Sender {
    socket: OwnedFd,
    mac: [u8; 6],
    index: u32,
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
        let index = u32::try_from(link.ifindex()).map_err(|e| err(format!("ifindex: {e}")))?;
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
            index,
            interface: interface.to_string(),
        })
    }

    /// The interface's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's index when the socket was bound.
    pub fn index(&self) -> u32 {
        self.index
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

/// One [`Sender`] per interface, reused while the kernel reports the interface with the index
/// and MAC the socket was bound with (a recreated or re-addressed interface gets a new one).
#[derive(Default)]
pub struct Senders {
    open: Mutex<HashMap<String, Arc<Sender>>>,
}

impl Senders {
    /// The sender for `interface`, which the kernel now reports with `index` and `mac` (`None`
    /// when unknown: the cached one is trusted). Opens one, on the calling thread, when there
    /// is none or it no longer matches.
    pub fn get(&self, interface: &str, index: u32, mac: Option<&[u8]>) -> Result<Arc<Sender>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = open.get(interface)
            && sender.index == index
            && mac.is_none_or(|m| m == sender.mac)
        {
            return Ok(sender.clone());
        }
        open.remove(interface);
        let sender = Arc::new(Sender::open(interface)?);
        open.insert(interface.to_string(), sender.clone());
        Ok(sender)
    }

    /// Forgets the interfaces not in `present` (their sockets close once no task uses them).
    pub fn retain(&self, present: impl Fn(&str) -> bool) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| present(name));
    }
}

/// Sends `settings.count` announcements of each of `addresses` through `sender` (one
/// interface), the passes `interval` apart after `initial_delay`, each address as long as
/// `still_holds(address)` says the node still holds it (checked before each packet: an address
/// handed over meanwhile must not be pulled back; once released it is announced no more).
/// Returns how many packets went out.
pub async fn announce(
    settings: Gratuitous,
    sender: &Sender,
    mut addresses: Vec<IpAddr>,
    still_holds: impl Fn(IpAddr) -> bool,
    mut sent: impl FnMut(IpAddr),
) -> u32 {
    if !settings.enabled || settings.count == 0 || addresses.is_empty() {
        return 0;
    }
    let interface = sender.interface.as_str();
    tokio::time::sleep(settings.initial_delay).await;
    let mut count = 0;
    for i in 0..settings.count {
        if i > 0 {
            tokio::time::sleep(settings.interval).await;
        }
        addresses.retain(|&address| {
            let held = still_holds(address);
            if !held {
                debug!(interface, address = %address, "no longer held; announcements stop");
            }
            held
        });
        if addresses.is_empty() {
            break;
        }
        for &address in &addresses {
            match sender.announce(address) {
                Ok(()) => {
                    count += 1;
                    sent(address);
                }
                Err(e) => warn!(interface, address = %address, error = %e, "announcement failed"),
            }
        }
    }
    debug!(interface, addresses = addresses.len(), count, "announced");
    count
}
