//! Authenticated gossip: a chitchat transport that signs every datagram with HMAC-SHA256 under
//! the `ferrolb-gossip` Secret's `key` and accepts `key` or `previousKey`, so keys rotate
//! without a gap. Datagrams without a valid MAC are dropped and counted; they never reach
//! chitchat, so a rogue sender injects no node, key or heartbeat.
//!
//! Limits: the MAC adds 32 bytes to chitchat's datagrams, which chitchat itself sizes up to the
//! UDP maximum; a datagram that no longer fits is dropped and counted. There is no replay
//! window: a replayed datagram carries only versions chitchat has already seen.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use sha2::Sha256;

use ferrolb_api::contracts::gossip::KEY_BYTES;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC at the end of each datagram.
pub const MAC_LEN: usize = 32;
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// Why the gossip keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the gossip Secret has no `key`: gossip stays off (create the Secret as docs/install.md shows)"
    )]
    Missing,
    #[error(
        "the gossip Secret's `{field}` is not {KEY_BYTES} bytes of hex ({len} characters given)"
    )]
    Malformed { field: &'static str, len: usize },
}

/// The current key and, during a rotation, the previous one.
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKeys {
    current: [u8; KEY_BYTES],
    previous: Option<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for GossipKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("GossipKeys")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl GossipKeys {
    /// From the Secret's values (hex text, surrounding whitespace ignored).
    pub fn from_secret(key: Option<&[u8]>, previous: Option<&[u8]>) -> Result<Self, KeyError> {
        let current = parse_key("key", key.ok_or(KeyError::Missing)?)?;
        let previous = match previous {
            Some(p) if !p.iter().all(u8::is_ascii_whitespace) => Some(parse_key("previousKey", p)?),
            _ => None,
        };
        Ok(Self { current, previous })
    }

    /// Signs a chitchat payload: the payload followed by its MAC under the current key.
    pub fn sign(&self, payload: &mut Vec<u8>) {
        let mut mac = HmacSha256::new_from_slice(&self.current).expect("HMAC takes any key length");
        mac.update(payload);
        payload.extend_from_slice(&mac.finalize().into_bytes());
    }

    /// The payload of a datagram whose MAC is valid under the current or the previous key.
    pub fn verify<'a>(&self, datagram: &'a [u8]) -> Option<&'a [u8]> {
        let split = datagram.len().checked_sub(MAC_LEN)?;
        let (payload, tag) = datagram.split_at(split);
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| {
                let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(payload);
                mac.verify_slice(tag).is_ok()
            })
            .then_some(payload)
    }
}

fn parse_key(field: &'static str, raw: &[u8]) -> Result<[u8; KEY_BYTES], KeyError> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    let malformed = || KeyError::Malformed {
        field,
        len: text.len(),
    };
    let bytes = hex::decode(text).map_err(|_| malformed())?;
    bytes.try_into().map_err(|_| malformed())
}

/// Counters of the authenticated transport (exported as metrics by the agent).
#[derive(Clone, Debug, Default)]
pub struct AuthCounters {
    /// Datagrams dropped: no valid MAC, not chitchat, or too large once signed.
    pub rejected: Counter,
    pub accepted: Counter,
}

/// A chitchat [`Transport`] over UDP with HMAC-SHA256 on every datagram. The keys are shared
/// so that a Secret update takes effect on the open socket.
#[derive(Clone)]
pub struct AuthenticatedUdp {
    keys: Arc<RwLock<GossipKeys>>,
    counters: AuthCounters,
}

impl AuthenticatedUdp {
    pub fn new(keys: Arc<RwLock<GossipKeys>>, counters: AuthCounters) -> Self {
        Self { keys, counters }
    }
}

#[async_trait]
impl Transport for AuthenticatedUdp {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind {listen_addr}/UDP for gossip: {e}"))?;
        Ok(Box::new(AuthenticatedSocket {
            socket,
            keys: self.keys.clone(),
            counters: self.counters.clone(),
            buf: vec![0; MAX_DATAGRAM],
        }))
    }
}

struct AuthenticatedSocket {
    socket: tokio::net::UdpSocket,
    keys: Arc<RwLock<GossipKeys>>,
    counters: AuthCounters,
    buf: Vec<u8>,
}

impl AuthenticatedSocket {
    fn keys(&self) -> GossipKeys {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Socket for AuthenticatedSocket {
    async fn send(&mut self, to: SocketAddr, message: ChitchatMessage) -> anyhow::Result<()> {
        let mut payload = Vec::with_capacity(message.serialized_len() + MAC_LEN);
        message.serialize(&mut payload);
        self.keys().sign(&mut payload);
        if payload.len() > MAX_DATAGRAM {
            self.counters.rejected.inc();
            tracing::warn!(to = %to, bytes = payload.len(), "gossip datagram too large once signed; dropped");
            return Ok(());
        }
        match self.socket.send_to(&payload, to).await {
            Ok(_) => Ok(()),
            // A peer that is gone (ICMP unreachable) is the failure detector's business.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(anyhow::anyhow!("gossip send to {to} failed: {e}")),
        }
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (n, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(anyhow::anyhow!("gossip receive failed: {e}")),
            };
            let keys = self.keys();
            let Some(mut payload) = keys.verify(&self.buf[..n]) else {
                self.counters.rejected.inc();
                tracing::debug!(from = %from, bytes = n, "gossip datagram without a valid MAC dropped");
                continue;
            };
            match ChitchatMessage::deserialize(&mut payload) {
                Ok(message) => {
                    self.counters.accepted.inc();
                    return Ok((from, message));
                }
                Err(e) => {
                    // Signed with our key yet not chitchat: a bug or a leaked key; say so.
                    self.counters.rejected.inc();
                    tracing::warn!(from = %from, error = %e, "signed gossip datagram is not a chitchat message; dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const K2: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn keys(current: &str, previous: Option<&str>) -> GossipKeys {
        GossipKeys::from_secret(Some(current.as_bytes()), previous.map(str::as_bytes))
            .expect("valid keys")
    }

    #[test]
    fn parses_secret_values() {
        let cases: Vec<(&str, Option<&[u8]>, Option<&[u8]>, Result<bool, KeyError>)> = vec![
            ("key only", Some(K1.as_bytes()), None, Ok(false)),
            (
                "key with newline",
                Some(b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"),
                None,
                Ok(false),
            ),
            (
                "rotation",
                Some(K1.as_bytes()),
                Some(K2.as_bytes()),
                Ok(true),
            ),
            ("empty previous", Some(K1.as_bytes()), Some(b""), Ok(false)),
            ("no key", None, Some(K2.as_bytes()), Err(KeyError::Missing)),
            (
                "short key",
                Some(b"0011"),
                None,
                Err(KeyError::Malformed {
                    field: "key",
                    len: 4,
                }),
            ),
            (
                "not hex",
                Some(&[b'z'; 64]),
                None,
                Err(KeyError::Malformed {
                    field: "key",
                    len: 64,
                }),
            ),
            (
                "bad previous",
                Some(K1.as_bytes()),
                Some(b"xyz"),
                Err(KeyError::Malformed {
                    field: "previousKey",
                    len: 3,
                }),
            ),
        ];
        for (name, key, previous, want) in cases {
            let got = GossipKeys::from_secret(key, previous).map(|k| k.previous.is_some());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn accepts_current_and_previous_keys_only() {
        let payload = b"chitchat bytes".to_vec();
        let signed_with = |k: &GossipKeys| {
            let mut p = payload.clone();
            k.sign(&mut p);
            p
        };
        let by_k1 = signed_with(&keys(K1, None));
        let by_k2 = signed_with(&keys(K2, None));
        let cases: Vec<(&str, GossipKeys, Vec<u8>, bool)> = vec![
            ("same key", keys(K1, None), by_k1.clone(), true),
            ("other key", keys(K1, None), by_k2.clone(), false),
            (
                "rotated: old key still accepted",
                keys(K2, Some(K1)),
                by_k1.clone(),
                true,
            ),
            (
                "rotated: new key accepted",
                keys(K2, Some(K1)),
                by_k2.clone(),
                true,
            ),
            ("unsigned", keys(K1, None), payload.clone(), false),
            (
                "garbage shorter than a MAC",
                keys(K1, None),
                vec![1, 2, 3],
                false,
            ),
            ("empty", keys(K1, None), vec![], false),
            (
                "one bit flipped",
                keys(K1, None),
                {
                    let mut p = by_k1.clone();
                    p[0] ^= 1;
                    p
                },
                false,
            ),
        ];
        for (name, k, datagram, ok) in cases {
            assert_eq!(k.verify(&datagram).is_some(), ok, "{name}");
            if ok {
                assert_eq!(k.verify(&datagram), Some(&payload[..]), "{name}");
            }
        }
    }

    #[test]
    fn debug_never_prints_keys() {
        let text = format!("{:?}", keys(K1, Some(K2)));
        assert!(!text.contains("0011") && !text.contains("ffee"), "{text}");
    }
}
