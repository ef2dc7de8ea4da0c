//! Authenticated gossip: a chitchat transport that signs every datagram with HMAC-SHA256 under
//! the `ferrolb-gossip` Secret's `key` and accepts `key` or `previousKey`, so keys rotate
//! without a gap (two-phase: docs/install.md). Datagrams without a valid MAC are dropped and
//! counted; they never reach chitchat, so a rogue sender injects no node, key or heartbeat.
//!
//! The MAC binds more than the payload ([`GossipKeys::seal`]): the sending node's name, a sequence number
//! that is its clock in microseconds, and both socket addresses, the sender's and the
//! receiver's. So a datagram is dropped when it comes from another address than the one it was
//! signed for (a replay with a forged source, e.g. to turn a Syn's SynAck of up to 64 KiB onto
//! a victim), when it is delivered to a node it was not sent to, when its time is more than
//! [`MAX_AGE`] away from the receiver's clock, or when the receiver has seen it already
//! ([`ReplayGuard`], bounded).
//!
//! Limits: the envelope adds at most 300 bytes to chitchat's datagrams, which chitchat itself
//! sizes up to the UDP maximum; a datagram that no longer fits is dropped and counted. chitchat
//! relays other nodes' states, so what a node says about a third one is only as good as the
//! key holders: the election takes as candidates only nodes whose per-node Lease is alive and
//! names the gossip address they use (`gossip::view`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use sha2::Sha256;

use ferrolb_api::contracts::gossip::KEY_BYTES;

type HmacSha256 = Hmac<Sha256>;

pub use super::replay::{MAX_AGE, ReplayGuard, Verdict};

/// Bytes of the MAC at the end of each datagram.
pub const MAC_LEN: usize = 32;
/// The first byte of every datagram: the envelope's layout.
pub const ENVELOPE_VERSION: u8 = 2;
/// The longest node name an envelope carries (a DNS subdomain is at most 253).
const MAX_NODE_LEN: usize = 253;
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

    /// Seals a chitchat payload under the current key: `version | node length | node | seq
    /// (8 bytes, big endian) | payload | MAC`, the MAC over everything before it and, not sent,
    /// the sender's and the receiver's socket addresses.
    pub fn seal(&self, sender: &Sender, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
        seal(
            &self.current,
            &sender.node,
            sender.addr,
            sender.next_seq(),
            to,
            payload,
        )
    }

    /// A datagram as `node` at `from` would have sealed it with sequence `seq` (tests make
    /// stale and replayed ones with it).
    pub fn seal_as(
        &self,
        node: &str,
        from: SocketAddr,
        seq: u64,
        to: SocketAddr,
        payload: &[u8],
    ) -> Vec<u8> {
        seal(&self.current, node, from, seq, to, payload)
    }

    /// Opens a datagram received on `to` from `from`: its envelope, when its MAC is valid under
    /// the current or the previous key.
    pub fn open<'a>(
        &self,
        datagram: &'a [u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Option<Opened<'a>> {
        let split = datagram.len().checked_sub(MAC_LEN)?;
        let (body, tag) = datagram.split_at(split);
        let opened = parse(body)?;
        let valid = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| {
                // `verify_slice` compares in constant time.
                mac(key, body, from, to).verify_slice(tag).is_ok()
            });
        valid.then_some(opened)
    }
}

/// Who signs: this node's name, its gossip address, and its sequence (its clock in
/// microseconds, strictly increasing).
#[derive(Debug)]
pub struct Sender {
    pub node: String,
    pub addr: SocketAddr,
    last: Mutex<u64>,
}

impl Sender {
    pub fn new(node: &str, addr: SocketAddr) -> Self {
        Self {
            node: node.to_string(),
            addr,
            last: Mutex::new(0),
        }
    }

    /// The next sequence number: now in microseconds since the epoch, or one past the last.
    pub fn next_seq(&self) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = now_micros().max(*last + 1);
        *last
    }
}

/// Microseconds since the epoch on this node's clock.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A datagram whose MAC was valid: who sent it, when, and the chitchat payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub node: &'a str,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// See [`GossipKeys::seal`]. A node name longer than [`MAX_NODE_LEN`] is cut (and so no longer
/// the name the receiver is told).
fn seal(
    key: &[u8; KEY_BYTES],
    node: &str,
    from: SocketAddr,
    seq: u64,
    to: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let node = &node.as_bytes()[..node.len().min(MAX_NODE_LEN)];
    let mut out = Vec::with_capacity(2 + node.len() + 8 + payload.len() + MAC_LEN);
    out.push(ENVELOPE_VERSION);
    out.push(u8::try_from(node.len()).expect("at most 253"));
    out.extend_from_slice(node);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    let tag = mac(key, &out, from, to).finalize().into_bytes();
    out.extend_from_slice(&tag);
    out
}

fn parse(body: &[u8]) -> Option<Opened<'_>> {
    let (&version, rest) = body.split_first()?;
    if version != ENVELOPE_VERSION {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (node, rest) = rest.split_at_checked(usize::from(len))?;
    let (seq, payload) = rest.split_at_checked(8)?;
    Some(Opened {
        node: std::str::from_utf8(node).ok()?,
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        payload,
    })
}

/// The MAC over `body` and both addresses (each as text with its length: unambiguous).
fn mac(key: &[u8], body: &[u8], from: SocketAddr, to: SocketAddr) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for addr in [from, to] {
        let text = addr.to_string();
        mac.update(&[u8::try_from(text.len()).unwrap_or(u8::MAX)]);
        mac.update(text.as_bytes());
    }
    mac.update(body);
    mac
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
    /// Datagrams dropped: no valid MAC (or one for another sender or receiver address), too
    /// old or new, replayed, not chitchat, or too large once signed.
    pub rejected: Counter,
    pub accepted: Counter,
}

/// A chitchat [`Transport`] over UDP with HMAC-SHA256 on every datagram. The keys are shared
/// so that a Secret update takes effect on the open socket.
#[derive(Clone)]
pub struct AuthenticatedUdp {
    node: String,
    keys: Arc<RwLock<GossipKeys>>,
    counters: AuthCounters,
}

impl AuthenticatedUdp {
    /// `node`: this node's name, bound into every datagram it sends.
    pub fn new(node: &str, keys: Arc<RwLock<GossipKeys>>, counters: AuthCounters) -> Self {
        Self {
            node: node.to_string(),
            keys,
            counters,
        }
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
            sender: Sender::new(&self.node, listen_addr),
            keys: self.keys.clone(),
            counters: self.counters.clone(),
            replay: ReplayGuard::default(),
            buf: vec![0; MAX_DATAGRAM],
        }))
    }
}

struct AuthenticatedSocket {
    socket: tokio::net::UdpSocket,
    sender: Sender,
    keys: Arc<RwLock<GossipKeys>>,
    counters: AuthCounters,
    replay: ReplayGuard,
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
        let mut payload = Vec::with_capacity(message.serialized_len());
        message.serialize(&mut payload);
        let payload = self.keys().seal(&self.sender, to, &payload);
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
            let Some(opened) = keys.open(&self.buf[..n], from, self.sender.addr) else {
                self.counters.rejected.inc();
                tracing::debug!(from = %from, bytes = n, "gossip datagram without a valid MAC dropped");
                continue;
            };
            let verdict = self.replay.check(opened.node, opened.seq, now_micros());
            if verdict != Verdict::Fresh {
                self.counters.rejected.inc();
                tracing::debug!(from = %from, node = opened.node, ?verdict, "gossip datagram dropped");
                continue;
            }
            let mut payload = opened.payload;
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

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn accepts_current_and_previous_keys_only() {
        let payload = b"chitchat bytes".to_vec();
        let (a, b) = (addr("192.0.2.11:7947"), addr("192.0.2.12:7947"));
        let sender = Sender::new("node-a", a);
        let signed_with = |k: &GossipKeys| k.seal(&sender, b, &payload);
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
            (
                "rotation, first phase: the next key accepted before anyone signs with it",
                keys(K1, Some(K2)),
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
        ];
        for (name, k, datagram, ok) in cases {
            let opened = k.open(&datagram, a, b);
            assert_eq!(opened.is_some(), ok, "{name}");
            if let Some(o) = opened {
                assert_eq!((o.node, o.payload), ("node-a", &payload[..]), "{name}");
            }
        }
    }

    /// Issue 16 item 14: the MAC covered the payload only. Now the sender's name, its time and
    /// both addresses are bound: changing any of them, or delivering the datagram from or to
    /// another address, breaks the MAC.
    #[test]
    fn the_mac_binds_sender_time_and_both_addresses() {
        let k = keys(K1, None);
        let (a, b, c) = (
            addr("192.0.2.11:7947"),
            addr("192.0.2.12:7947"),
            addr("192.0.2.13:7947"),
        );
        let sealed = k.seal(&Sender::new("node-a", a), b, b"syn");
        let opened = k.open(&sealed, a, b).expect("valid as sent");
        assert_eq!(opened.node, "node-a");
        assert!(
            opened.seq.abs_diff(now_micros()) < 10_000_000,
            "the seq is the sender's clock"
        );
        let flip = |at: usize| {
            let mut d = sealed.clone();
            d[at] ^= 1;
            d
        };
        let name_at = 2;
        let seq_at = 2 + "node-a".len();
        let payload_at = seq_at + 8;
        let cases: Vec<(&str, Vec<u8>, SocketAddr, SocketAddr)> = vec![
            ("another node's name", flip(name_at), a, b),
            ("another time", flip(seq_at + 7), a, b),
            ("another payload", flip(payload_at), a, b),
            ("another envelope version", flip(0), a, b),
            ("from a forged source (reflection)", sealed.clone(), c, b),
            ("to another node (cross-node replay)", sealed.clone(), a, c),
        ];
        for (name, datagram, from, to) in cases {
            assert_eq!(k.open(&datagram, from, to), None, "{name}");
        }
    }

    #[test]
    fn sequence_numbers_are_the_clock_and_strictly_increase() {
        let s = Sender::new("node-a", addr("192.0.2.11:7947"));
        let seqs: Vec<u64> = (0..1000).map(|_| s.next_seq()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert!(seqs[0].abs_diff(now_micros()) < 10_000_000);
    }

    #[test]
    fn debug_never_prints_keys() {
        let text = format!("{:?}", keys(K1, Some(K2)));
        assert!(!text.contains("0011") && !text.contains("ffee"), "{text}");
    }
}
