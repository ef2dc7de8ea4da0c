//! The values file: BGP peers, BFD timers and the OSPF switch, as the operator writes them.
//!
//! Passwords are deliberately not part of it: values come from a ConfigMap, and a value the
//! sidecar does not know (`password` included) is refused rather than silently dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Everything the template gets besides node facts and ServiceGroups.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Values {
    /// The node's AS number (every peer's `localASN` defaults to it).
    #[serde(default, rename = "localASN")]
    pub local_asn: Option<u32>,
    /// Router id override; the node's first IPv4 address otherwise.
    #[serde(default, rename = "routerID")]
    pub router_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub bfd: Bfd,
    #[serde(default)]
    pub ospf: Ospf,
    /// Interface carrying virtual addresses; the LBNodeAgent's `virtualInterface` (in a
    /// cluster) or `kube-lb0` when absent.
    #[serde(default)]
    pub virtual_interface: Option<String>,
}

/// One BGP neighbour; eBGP or iBGP follows from the two AS numbers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peer {
    pub address: IpAddr,
    #[serde(rename = "asn")]
    pub asn: u32,
    #[serde(default, rename = "localASN")]
    pub local_asn: Option<u32>,
    /// BIRD protocol name; derived from the address when absent.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub bfd: bool,
    /// TTL for a peer that is not on a shared link; absent means directly connected.
    #[serde(default)]
    pub multihop: Option<u8>,
    /// Durations as in the CRDs (`9s`); BIRD's defaults when absent.
    #[serde(default)]
    pub hold_time: Option<String>,
    #[serde(default)]
    pub keepalive_time: Option<String>,
    #[serde(default)]
    pub connect_retry_time: Option<String>,
    #[serde(default)]
    pub connect_delay_time: Option<String>,
}

/// BFD timers for every peer with `bfd: true`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bfd {
    #[serde(default = "default_bfd_interval")]
    pub min_rx: String,
    #[serde(default = "default_bfd_interval")]
    pub min_tx: String,
    #[serde(default = "default_multiplier")]
    pub multiplier: u8,
}

impl Default for Bfd {
    fn default() -> Self {
        Bfd {
            min_rx: default_bfd_interval(),
            min_tx: default_bfd_interval(),
            multiplier: default_multiplier(),
        }
    }
}

/// The OSPF variant: OSPFv2 with the virtual interface as a stub plus the LAN interfaces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ospf {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub area: u32,
    /// The LAN interfaces OSPF speaks on (the node's local interface).
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default = "default_hello")]
    pub hello: String,
    #[serde(default = "default_dead")]
    pub dead: String,
    #[serde(default)]
    pub bfd: bool,
}

impl Default for Ospf {
    fn default() -> Self {
        Ospf {
            enabled: false,
            area: 0,
            interfaces: Vec::new(),
            hello: default_hello(),
            dead: default_dead(),
            bfd: false,
        }
    }
}

fn default_bfd_interval() -> String {
    "100ms".into()
}
fn default_multiplier() -> u8 {
    3
}
fn default_hello() -> String {
    "10s".into()
}
fn default_dead() -> String {
    "40s".into()
}

impl Values {
    /// Parses the YAML of a values file; an empty file is all defaults.
    pub fn from_yaml(text: &str) -> Result<Values> {
        if text.trim().is_empty() {
            return Ok(Values::default());
        }
        serde_saphyr::from_str(text).map_err(|e| Error::Values(e.to_string()))
    }
}

/// A duration field of the values file, with the field named in the error.
pub(crate) fn duration(field: &str, text: &str) -> Result<Duration> {
    ferrolb_api::duration::parse(text).map_err(|e| Error::Values(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_files() {
        let cases: &[(&str, &str, std::result::Result<fn(&Values) -> bool, &str>)] = &[
            (
                "empty file is defaults",
                "",
                Ok(|v| *v == Values::default()),
            ),
            (
                "ebgp peer with bfd",
                "localASN: 64520\npeers:\n  - address: 192.0.2.1\n    asn: 64512\n    bfd: true\n",
                Ok(|v| {
                    v.local_asn == Some(64520)
                        && v.peers.len() == 1
                        && v.peers[0].bfd
                        && v.peers[0].address == IpAddr::from([192, 0, 2, 1])
                }),
            ),
            (
                "ospf switch",
                "ospf:\n  enabled: true\n  interfaces: [eth0]\n",
                Ok(|v| v.ospf.enabled && v.ospf.interfaces == ["eth0"] && v.ospf.area == 0),
            ),
            (
                "passwords are refused",
                "peers:\n  - address: 192.0.2.1\n    asn: 1\n    password: s3cret\n",
                Err("password"),
            ),
            (
                "bad address",
                "peers:\n  - address: nope\n    asn: 1\n",
                Err(""),
            ),
        ];
        for (name, yaml, want) in cases {
            match (Values::from_yaml(yaml), want) {
                (Ok(v), Ok(check)) => assert!(check(&v), "{name}: {v:?}"),
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{name}: {e}"),
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }
}
