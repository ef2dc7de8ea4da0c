//! The one type that talks to the kernel: rtnetlink dumps, address and link writes.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it. Nothing
//! here writes under `/proc/sys`: an unprivileged container sees it read-only, so link
//! settings such as `promote_secondaries` go over netlink like everything else.

mod events;
mod messages;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrolb_api::contracts::IFA_PROTO_FERROLB;
use ferrolb_api::pool::Family;
use futures::TryStreamExt;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use nix::errno::Errno;
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use events::KernelChanges;
pub use messages::{AddressSpec, VirtualKind};

use crate::decide::IFA_F_NOPREFIXROUTE;
use crate::snapshot::{DefaultRoute, Interface, InterfaceAddress, Lifetime};
use crate::{Error, Result};

/// How an address write treats an address that is already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Fail with EEXIST: never takes over someone else's address.
    Create,
    /// Update it in place (lifetimes, IFA_PROTO, and for IPv6 the flags): idempotent.
    Replace,
}

/// What ensuring the virtual interface found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    Created(VirtualKind),
    /// It was there already; its kind as the kernel reports it.
    Existed(Option<String>),
}

/// A handle on the kernel's routing netlink, bound to the network namespace it was opened in.
pub struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens the socket in the calling thread's network namespace; needs a tokio runtime.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Connect)?;
        Ok(Self {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// Every interface, without addresses, in index order.
    pub async fn interfaces(&self) -> Result<Vec<Interface>> {
        let msgs: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::netlink("dump links", e))?;
        let mut out: Vec<Interface> = msgs.iter().filter_map(messages::interface).collect();
        out.sort_by_key(|i| i.index);
        Ok(out)
    }

    /// Every address of both families, with its interface index.
    pub async fn addresses(&self) -> Result<Vec<(u32, InterfaceAddress)>> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::netlink("dump addresses", e))?;
        Ok(msgs
            .iter()
            .filter_map(messages::interface_address)
            .collect())
    }

    /// The default routes of the main table, both families.
    pub async fn default_routes(&self) -> Result<Vec<DefaultRoute>> {
        let mut out = Vec::new();
        for (family, msg) in [
            (Family::V4, RouteMessageBuilder::<Ipv4Addr>::new().build()),
            (Family::V6, RouteMessageBuilder::<Ipv6Addr>::new().build()),
        ] {
            let routes: Vec<_> = self
                .handle
                .route()
                .get(msg)
                .execute()
                .try_collect()
                .await
                .map_err(|e| Error::netlink("dump routes", e))?;
            out.extend(
                routes
                    .iter()
                    .filter_map(|r| messages::default_route(r, family)),
            );
        }
        Ok(out)
    }

    /// The index of the interface called `name`, if there is one.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await;
        match found {
            Ok(msg) => Ok(msg.map(|m| m.header.index)),
            Err(e) => match Error::netlink(format!("get link {name}"), e) {
                err if err.errno() == Some(Errno::ENODEV) => Ok(None),
                err => Err(err),
            },
        }
    }

    /// Adds or replaces an address with its flags, IFA_PROTO and lifetimes.
    pub async fn write_address(&self, spec: &AddressSpec, write: Write) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(spec.index, spec.address, spec.prefix_len);
        request
            .message_mut()
            .attributes
            .extend(messages::address_attributes(spec));
        if write == Write::Replace {
            request = request.replace();
        }
        request.execute().await.map_err(|e| {
            Error::netlink(
                format!(
                    "add {}/{} on index {}",
                    spec.address, spec.prefix_len, spec.index
                ),
                e,
            )
        })
    }

    /// Deletes an address; fails with EADDRNOTAVAIL when it is not there.
    pub async fn delete_address(&self, index: u32, address: IpAddr, prefix_len: u8) -> Result<()> {
        let msg: AddressMessage = messages::address_message(index, address, prefix_len);
        self.handle.address().del(msg).execute().await.map_err(|e| {
            Error::netlink(format!("delete {address}/{prefix_len} on index {index}"), e)
        })
    }

    /// Makes sure the virtual interface exists, NOARP and up, with `promote_secondaries` (so
    /// removing one address of an aggregate never flushes the others). It is created as a
    /// `dummy`, or as an `ifb` where the kernel has no dummy driver.
    pub async fn ensure_virtual_interface(&self, name: &str) -> Result<Ensured> {
        let ensured = match self.create_link(name, VirtualKind::Dummy).await {
            Ok(()) => Ensured::Created(VirtualKind::Dummy),
            Err(e) if e.errno() == Some(Errno::EEXIST) => {
                Ensured::Existed(self.kind_of(name).await?)
            }
            Err(dummy) if falls_back_to_ifb(&dummy) => {
                match self.create_link(name, VirtualKind::Ifb).await {
                    Ok(()) => Ensured::Created(VirtualKind::Ifb),
                    Err(e) if e.errno() == Some(Errno::EEXIST) => {
                        Ensured::Existed(self.kind_of(name).await?)
                    }
                    Err(ifb) => {
                        return Err(Error::VirtualInterface {
                            name: name.into(),
                            dummy: dummy.to_string(),
                            ifb: ifb.to_string(),
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        };
        match &ensured {
            Ensured::Created(kind) => info!(
                interface = name,
                kind = kind.as_str(),
                "created the virtual interface"
            ),
            Ensured::Existed(kind) => info!(
                interface = name,
                kind = kind.as_deref().unwrap_or("unknown"),
                "virtual interface already there"
            ),
        }
        let index = self
            .link_index(name)
            .await?
            .ok_or_else(|| Error::NoSuchInterface(name.into()))?;
        // An existing link may have been left down or with ARP on.
        self.handle
            .link()
            .set(
                rtnetlink::LinkUnspec::new_with_index(index)
                    .arp(false)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("set {name} noarp up"), e))?;
        self.set_promote_secondaries(name, index).await?;
        Ok(ensured)
    }

    /// Turns on IPv4 `promote_secondaries` on link `index` over netlink and reads it back.
    async fn set_promote_secondaries(&self, name: &str, index: u32) -> Result<()> {
        self.set_link(
            name,
            "promote_secondaries",
            messages::promote_secondaries_request(index),
        )
        .await?;
        match self.promote_secondaries(index).await? {
            Some(true) => Ok(()),
            now => Err(Error::LinkSetting {
                interface: name.into(),
                setting: "promote_secondaries",
                why: format!("reads {now:?} after setting it to 1"),
            }),
        }
    }

    /// Sets `arp_ignore` 1 and `arp_announce` 2 on link `index` over netlink (see
    /// [`messages::strict_arp_request`]) and reads them back.
    pub async fn set_strict_arp(&self, name: &str, index: u32) -> Result<()> {
        const SETTING: &str = "arp_ignore/arp_announce";
        self.set_link(name, SETTING, messages::strict_arp_request(index))
            .await?;
        let now = self.link(index).await?;
        match now.as_ref().and_then(messages::arp_conf) {
            Some(c) if c.ignore == 1 && c.announce == 2 => Ok(()),
            now => Err(Error::LinkSetting {
                interface: name.into(),
                setting: SETTING,
                why: format!("reads {now:?} after setting them to 1 and 2"),
            }),
        }
    }

    /// The link's IPv4 `promote_secondaries` as the kernel reports it (RTM_GETLINK,
    /// IFLA_INET_CONF); `None` when the link has no IPv4 configuration.
    pub async fn promote_secondaries(&self, index: u32) -> Result<Option<bool>> {
        Ok(self
            .link(index)
            .await?
            .as_ref()
            .and_then(messages::promote_secondaries))
    }

    /// One RTM_SETLINK request on link `name`, which sets `setting`.
    async fn set_link(&self, name: &str, setting: &str, request: LinkMessage) -> Result<()> {
        self.handle
            .link()
            .set(request)
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("set {setting} on {name}"), e))
    }

    /// Link `index` as the kernel reports it (RTM_GETLINK); `None` when it is gone.
    async fn link(&self, index: u32) -> Result<Option<LinkMessage>> {
        self.handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(|e| Error::netlink(format!("get link {index}"), e))
    }

    async fn create_link(&self, name: &str, kind: VirtualKind) -> Result<()> {
        self.handle
            .link()
            .add(messages::virtual_link(name, kind))
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("create {} link {name}", kind.as_str()), e))
    }

    async fn kind_of(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .interfaces()
            .await?
            .into_iter()
            .find(|i| i.name == name)
            .and_then(|i| i.kind))
    }

    /// Deletes a link by name; `Ok(false)` when there is none.
    pub async fn delete_link(&self, name: &str) -> Result<bool> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => match Error::netlink(format!("delete link {name}"), e) {
                err if err.errno() == Some(Errno::ENODEV) => Ok(false),
                err => Err(err),
            },
        }
    }

    /// Checks that the kernel keeps IFA_PROTO: adds `probe` (a host address, no prefix route,
    /// a short lifetime in case we die here) on `interface` with our IFA_PROTO, reads it back
    /// and removes it. Kernels before 5.18 ignore the attribute.
    pub async fn check_address_protocol(&self, interface: &str, probe: IpAddr) -> Result<()> {
        let index = self
            .link_index(interface)
            .await?
            .ok_or_else(|| Error::NoSuchInterface(interface.into()))?;
        let spec = AddressSpec {
            index,
            address: probe,
            prefix_len: Family::of(probe).bits(),
            flags: IFA_F_NOPREFIXROUTE,
            proto: IFA_PROTO_FERROLB,
            valid: Lifetime::Seconds(PROBE_LIFETIME.as_secs() as u32),
            preferred: Lifetime::Seconds(0),
        };
        self.write_address(&spec, Write::Replace).await?;
        let read = self.addresses().await;
        let removed = self.delete_address(index, probe, spec.prefix_len).await;
        if let Err(e) = &removed {
            warn!(interface, address = %probe, error = %e, "could not remove the IFA_PROTO probe; it expires by itself");
        }
        let proto = read?
            .into_iter()
            .find(|(i, a)| *i == index && a.address == probe)
            .map(|(_, a)| a.proto);
        match proto {
            Some(IFA_PROTO_FERROLB) => Ok(()),
            Some(other) => Err(Error::AddressProtocolUnsupported {
                detail: format!(
                    "{probe} on {interface} came back with IFA_PROTO {other:#x}, not {IFA_PROTO_FERROLB:#x}"
                ),
            }),
            None => Err(Error::AddressProtocolUnsupported {
                detail: format!("{probe} on {interface} was not found after adding it"),
            }),
        }
    }
}

/// The address the start-up IFA_PROTO check puts on the virtual interface for a moment:
/// 192.0.0.8, the IPv4 dummy address of RFC 7600, which no network routes.
pub const PROTO_PROBE_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 0, 8));
const PROBE_LIFETIME: Duration = Duration::from_secs(5);

/// A kernel without the dummy driver refuses the link kind with EOPNOTSUPP ("Unknown device
/// type"); that, and nothing else, sends us to ifb.
pub fn falls_back_to_ifb(error: &Error) -> bool {
    error.errno() == Some(Errno::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: Errno) -> Error {
        let mut msg = netlink_packet_core::ErrorMessage::default();
        msg.code = std::num::NonZeroI32::new(-(errno as i32));
        Error::netlink(
            "create dummy link kube-lb0",
            rtnetlink::Error::NetlinkError(msg),
        )
    }

    #[test]
    fn only_a_missing_dummy_driver_falls_back_to_ifb() {
        let cases = [
            ("no dummy driver", Errno::EOPNOTSUPP, true),
            ("not permitted", Errno::EPERM, false),
            ("already there", Errno::EEXIST, false),
            ("bad name", Errno::EINVAL, false),
        ];
        for (name, errno, fallback) in cases {
            let err = refused(errno);
            assert_eq!(err.errno(), Some(errno), "{name}");
            assert_eq!(falls_back_to_ifb(&err), fallback, "{name}");
        }
    }
}
