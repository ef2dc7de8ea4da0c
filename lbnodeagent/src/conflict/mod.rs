//! Conflicts on the wire (DESIGN.md): every `conflictProbe` the holder probes each of its local
//! addresses (ARP probe / DAD solicitation) and listens for answers from other MACs; against a
//! known agent the lower election hash keeps the address, against a foreign host the holder
//! keeps it and reports. An address given up (or left by a node that is no longer live, whose
//! copy may linger) comes back only once a probe goes unanswered.
//!
//! The rules are pure ([`rules`]); this module owns the packet sockets and the clock. It runs
//! in the agent's network namespace, on `AF_PACKET` sockets bound to the local interfaces.

pub mod packet;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use self::packet::Answer;
use self::rules::{Gates, Mac, PROBES_PER_INTERVAL, Verdict, judge};
use crate::apply::NodeEvents;
use crate::decide::mac_text;
use crate::gratuitous::packet::{gratuitous_arp, unsolicited_na};
use crate::metrics::Metrics;
use crate::run::Held;

/// `conflictProbe` before the first LBNodeAgent is read (the CRD's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The same conflict (address, MAC) gets at most one Event this often.
const EVENT_EVERY: Duration = Duration::from_secs(30);

/// What the round and the prober share.
struct Shared {
    gates: Gates,
    /// Every agent's LAN MAC, from gossip and the per-node Leases, live or not.
    known: BTreeMap<Mac, String>,
    /// The local interface per family (IPv4, IPv6).
    interfaces: [Option<String>; 2],
    interval: Duration,
}

/// What the prober reports through.
pub struct Reporting {
    pub node: String,
    /// The local addresses this node holds now.
    pub held: Held,
    pub events: NodeEvents,
    pub metrics: Arc<Metrics>,
    /// Wakes the reconcile loop when an address is given up or cleared.
    pub wake: Arc<Notify>,
}

/// The running prober; stops when dropped.
pub struct Prober {
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Prober {
    pub fn start(reporting: Reporting) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            gates: Gates::default(),
            known: BTreeMap::new(),
            interfaces: [None, None],
            interval: DEFAULT_INTERVAL,
        }));
        let task = tokio::spawn(probe_loop(shared.clone(), reporting));
        Self { shared, task }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the wire lets this node have `address` (see [`Gates::allows`]).
    pub fn allows(&self, address: IpAddr, elected: bool, on_kernel: bool, lingering: bool) -> bool {
        self.lock()
            .gates
            .allows(address, elected, on_kernel, lingering)
    }

    /// After a round: the agents' MACs, the local interfaces, `conflictProbe`, and the local
    /// addresses the round asked about (gates of others are dropped).
    pub fn update(
        &self,
        known: BTreeMap<Mac, String>,
        interfaces: [Option<String>; 2],
        interval: Duration,
        asked: &BTreeSet<IpAddr>,
    ) {
        let mut s = self.lock();
        s.known = known;
        s.interfaces = interfaces;
        s.interval = interval.max(Duration::from_millis(100));
        s.gates.retain(asked);
    }
}

/// A packet socket on one interface, and the thread reading answers from it (a blocking read
/// with a timeout: registering a raw fd with tokio would take unsafe code).
struct Socket {
    fd: Arc<OwnedFd>,
    mac: Mac,
    stop: Arc<AtomicBool>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long the reading thread blocks before it looks whether it should stop.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

impl Socket {
    fn open(interface: &str, answers: mpsc::Sender<Heard>) -> Result<Self, String> {
        let link: LinkAddr = getifaddrs()
            .map_err(|e| format!("getifaddrs: {e}"))?
            .filter(|a| a.interface_name == interface)
            .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
            .ok_or("no such interface, or no link-layer address")?;
        let mac = link.addr().ok_or("no MAC address")?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            Some(SockProtocol::EthAll),
        )
        .map_err(|e| format!("packet socket: {e}"))?;
        bind(fd.as_raw_fd(), &link).map_err(|e| format!("bind: {e}"))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(0, READ_TIMEOUT.as_micros() as _),
        )
        .map_err(|e| format!("receive timeout: {e}"))?;
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let (reader, stopped, name) = (fd.clone(), stop.clone(), interface.to_string());
        std::thread::Builder::new()
            .name(format!("probe-{interface}"))
            .spawn(move || read_answers(&reader, mac, &name, &stopped, &answers))
            .map_err(|e| format!("reader thread: {e}"))?;
        Ok(Self { fd, mac, stop })
    }

    fn send(&self, frame: &[u8]) -> nix::Result<()> {
        send(self.fd.as_raw_fd(), frame, MsgFlags::empty()).map(drop)
    }
}

fn read_answers(
    fd: &OwnedFd,
    mac: Mac,
    interface: &str,
    stop: &AtomicBool,
    answers: &mpsc::Sender<Heard>,
) {
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => {
                // Stamped on arrival: the loop may see it later than the prober's next tick.
                if let Some(answer) = packet::answer(&buf[..n], mac)
                    && answers
                        .blocking_send((interface.to_string(), answer, Instant::now()))
                        .is_err()
                {
                    return;
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                warn!(interface, error = %e, "reading the conflict probe socket failed");
                return;
            }
        }
    }
}

/// An answer, the interface it came on, and when it arrived.
type Heard = (String, Answer, Instant);

/// The prober's own state across ticks.
struct Watch {
    shared: Arc<Mutex<Shared>>,
    r: Reporting,
    sockets: BTreeMap<String, Socket>,
    answers: mpsc::Sender<Heard>,
    next_full: Instant,
    last_held: BTreeSet<(String, IpAddr)>,
    reported: BTreeMap<(IpAddr, Mac, bool), Instant>,
}

async fn probe_loop(shared: Arc<Mutex<Shared>>, r: Reporting) {
    let (answers, mut incoming) = mpsc::channel(1024);
    let mut p = Watch {
        shared,
        r,
        sockets: BTreeMap::new(),
        answers,
        next_full: Instant::now(),
        last_held: BTreeSet::new(),
        reported: BTreeMap::new(),
    };
    let mut period = Duration::ZERO;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        let interval = p.lock().interval;
        // Five steps per probe of a waiting address; a probe counts as unanswered after half
        // the time to the next one (50 ms at the default 1 s): on a LAN an answer takes a
        // millisecond or two, the rest is room for a loaded node.
        let step = interval / (5 * PROBES_PER_INTERVAL);
        if step != period {
            period = step;
            ticks = tokio::time::interval(step);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        tokio::select! {
            _ = ticks.tick() => {
                // Answers already read count before anything is declared unanswered.
                while let Ok((interface, answer, at)) = incoming.try_recv() {
                    p.answered(&interface, answer, at);
                }
                p.tick(interval);
            }
            Some((interface, answer, at)) = incoming.recv() => p.answered(&interface, answer, at),
        }
    }
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> BTreeSet<(String, IpAddr)> {
        self.r
            .held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn tick(&mut self, interval: Duration) {
        let now = Instant::now();
        let every = interval / PROBES_PER_INTERVAL;
        let (clear, waiting, interfaces) = {
            let mut s = self.lock();
            let (clear, waiting) = s.gates.tick(now.into_std(), every, every / 2);
            (clear, waiting, s.interfaces.clone())
        };
        if !clear.is_empty() {
            info!(addresses = ?clear, "probes unanswered: the addresses are free to take");
            self.r.wake.notify_one();
        }
        let mut out: Vec<(String, IpAddr)> = waiting
            .into_iter()
            .filter_map(|a| {
                let i = usize::from(a.is_ipv6());
                interfaces[i].clone().map(|name| (name, a))
            })
            .collect();
        let held = self.held();
        if now >= self.next_full {
            self.next_full = now + interval;
            out.extend(held.iter().cloned());
        } else {
            // A new address is probed at once: if a copy the gate missed (a slow answer) is
            // still out there, the overlap lasts one step, not a whole interval.
            out.extend(held.difference(&self.last_held).cloned());
        }
        self.last_held = held;
        let mut used: BTreeSet<String> = interfaces.into_iter().flatten().collect();
        used.extend(out.iter().map(|(i, _)| i.clone()));
        self.sockets.retain(|name, _| used.contains(name));
        for (interface, address) in out {
            self.send(&interface, address, |mac| packet::probe(mac, address));
        }
    }

    /// Sends a frame built for our MAC on `interface`; a failed socket is reopened next time.
    fn send(&mut self, interface: &str, address: IpAddr, frame: impl Fn(Mac) -> Vec<u8>) {
        if !self.sockets.contains_key(interface) {
            match Socket::open(interface, self.answers.clone()) {
                Ok(s) => {
                    debug!(interface, "conflict probes on this interface");
                    self.sockets.insert(interface.to_string(), s);
                }
                Err(e) => {
                    warn!(interface, error = e, "cannot probe for conflicts");
                    return;
                }
            }
        }
        let socket = &self.sockets[interface];
        if let Err(e) = socket.send(&frame(socket.mac)) {
            warn!(interface, address = %address, error = %e, "conflict probe not sent");
            self.sockets.remove(interface);
        }
    }

    fn answered(&mut self, interface: &str, answer: Answer, at: Instant) {
        let Answer { address, mac } = answer;
        let (waiting, verdict) = {
            let mut s = self.lock();
            match s.gates.answered(address, at.into_std()) {
                Some(first) => (Some((first, s.known.get(&mac).cloned())), None),
                None => (None, Some(judge(&self.r.node, address, mac, &s.known))),
            }
        };
        if let Some((first, other)) = waiting {
            // Waiting for it: the answer keeps it away. The first answer of a wait is a
            // conflict worth reporting (e.g. the lingering copy of a crashed agent).
            if first {
                self.report(address, mac, other.is_some(), || {
                    format!(
                        "{address} is answered by {} ({}); this node, elected to hold it, waits \
                         until nobody answers (a crashed agent's copy expires with its lifetime).",
                        mac_text(&mac),
                        other.as_deref().unwrap_or("no ferrolb agent"),
                    )
                });
            }
            return;
        }
        if !self.held().iter().any(|(_, a)| *a == address) {
            return;
        }
        let Some(verdict) = verdict else { return };
        let text = mac_text(&mac);
        match verdict {
            Verdict::Yield { other } => {
                warn!(address = %address, other, mac = text, "conflict: the other agent keeps it");
                self.lock().gates.probe_first(address);
                self.r.wake.notify_one();
                self.report(address, mac, true, || {
                    format!(
                        "{address} is also on node {other} ({text}), which the election hash \
                         prefers: this node removed it and probes until nobody answers. Gossip \
                         between the nodes is probably blocked (UDP 7947)."
                    )
                });
            }
            Verdict::Keep { other: Some(other) } => {
                warn!(address = %address, other, mac = text, "conflict: this node keeps it");
                let frame = |m: Mac| match address {
                    IpAddr::V4(a) => gratuitous_arp(m, a),
                    IpAddr::V6(a) => unsolicited_na(m, a),
                };
                self.send(interface, address, frame);
                self.report(address, mac, true, || {
                    format!(
                        "{address} is also on node {other} ({text}); this node keeps it (lower \
                         election hash) and the other yields. Gossip between the nodes is \
                         probably blocked (UDP 7947)."
                    )
                });
            }
            Verdict::Keep { other: None } => {
                warn!(address = %address, mac = text, "conflict with a host that is no agent");
                self.report(address, mac, false, || {
                    format!(
                        "{address} is also claimed on the LAN by {text}, which is no ferrolb \
                         agent; this node keeps it. Find that host and remove the address, or take \
                         the address out of the ServiceGroup's pool."
                    )
                });
            }
        }
    }

    /// A metric per conflict seen; an Event per (address, MAC, known agent or not) at most every
    /// [`EVENT_EVERY`]: a MAC first seen as foreign and later known as an agent's is told again.
    fn report(&mut self, address: IpAddr, mac: Mac, agent: bool, note: impl FnOnce() -> String) {
        self.r.metrics.address_conflict(address, agent);
        let now = Instant::now();
        self.reported
            .retain(|_, at| now.duration_since(*at) < EVENT_EVERY);
        if self.reported.contains_key(&(address, mac, agent)) {
            return;
        }
        self.reported.insert((address, mac, agent), now);
        self.r.events.address_conflict(note());
    }
}
