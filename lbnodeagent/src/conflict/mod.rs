//! Conflicts on the wire (DESIGN.md): every `conflictProbe` the holder probes each of its local
//! addresses (ARP probe / DAD solicitation) and listens for answers from other MACs; against a
//! known agent the lower election hash keeps the address, against a foreign host the holder
//! keeps it and reports. An address this node does not have yet (new, given up, or left by a
//! node that is no longer live, whose copy may linger) is added only once a probe goes
//! unanswered: a host that is no agent and has it keeps it, reported, probed once per interval.
//! Answers from the node's own interfaces (a second port on the same LAN) are no conflict.
//!
//! The rules are pure ([`rules`]); this module owns the packet sockets and the clock. It runs
//! in the agent's network namespace, on `AF_PACKET` sockets bound to the local interfaces.

mod notes;
pub mod packet;
pub mod rules;
mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use self::packet::Answer;
use self::rules::{
    Answered, Gates, Mac, Macs, PROBES_PER_INTERVAL, Pace, Party, Verdict, Wait, judge, patience,
};
use self::socket::{Heard, Socket};
use crate::apply::NodeEvents;
use crate::decide::mac_text;
use crate::gratuitous::packet::{gratuitous_arp, unsolicited_na};
use crate::metrics::Metrics;
use crate::run::Held;

/// `conflictProbe` before the first LBNodeAgent is read (the CRD's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The same conflict (address, MAC) gets at most one Event this often.
const EVENT_EVERY: Duration = Duration::from_secs(30);
/// `localAddressLifetime` before the first LBNodeAgent is read (the CRD's default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(5);

/// What the round and the prober share.
struct Shared {
    gates: Gates,
    /// This node's MACs, and every agent's LAN MAC (gossip and the per-node Leases).
    macs: Macs,
    /// The local interface per family (IPv4, IPv6).
    interfaces: [Option<String>; 2],
    interval: Duration,
    /// `localAddressLifetime`: how long a crashed agent's copy of an address may linger.
    lifetime: Duration,
    /// The Service (`namespace/name`) of each address, for the Events.
    services: BTreeMap<IpAddr, String>,
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
            macs: Macs::default(),
            interfaces: [None, None],
            interval: DEFAULT_INTERVAL,
            lifetime: DEFAULT_LIFETIME,
            services: BTreeMap::new(),
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

    /// After a round: this node's and the agents' MACs, the local interfaces, `conflictProbe`,
    /// `localAddressLifetime`, the Service of each address, and the local addresses the round
    /// asked about (gates of others are dropped).
    pub fn update(
        &self,
        macs: Macs,
        interfaces: [Option<String>; 2],
        (interval, lifetime): (Duration, Duration),
        services: BTreeMap<IpAddr, String>,
        asked: &BTreeSet<IpAddr>,
    ) {
        let mut s = self.lock();
        s.services = services;
        s.macs = macs;
        s.interfaces = interfaces;
        s.interval = interval.max(Duration::from_millis(100));
        s.lifetime = lifetime;
        s.gates.retain(asked);
    }
}

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
        // Five steps per probe of a waiting address (see `Pace::at` for the rest).
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
        // Answers the kernel already has count before anything is declared unanswered.
        let pending: Vec<(String, Answer)> = self
            .sockets
            .iter()
            .flat_map(|(name, socket)| socket.drain().into_iter().map(|a| (name.clone(), a)))
            .collect();
        let read = Instant::now();
        for (interface, answer) in pending {
            self.answered(&interface, answer, read);
        }
        let now = Instant::now();
        let (mut clear, waiting, interfaces) = {
            let mut s = self.lock();
            let (clear, waiting) = s.gates.tick(now.into_std(), Pace::at(interval));
            (clear, waiting, s.interfaces.clone())
        };
        let mut unsent = Vec::new();
        let mut sent = Vec::new();
        for address in waiting {
            // Stamped just before it leaves: an answer can come no earlier.
            let at = Instant::now().into_std();
            let ok = interfaces[usize::from(address.is_ipv6())]
                .clone()
                .is_some_and(|interface| {
                    self.send(&interface, address, |mac| packet::probe(mac, address))
                });
            if ok {
                sent.push((address, at));
            } else {
                unsent.push(address);
            }
        }
        {
            // The answer's window runs from when the probe left, not from when it was due.
            let mut s = self.lock();
            s.gates.sent(&sent);
            unsent.retain(|&a| s.gates.unsent(a));
        }
        if !unsent.is_empty() {
            warn!(addresses = ?unsent, "cannot probe: the addresses are taken unprobed");
            clear.extend(unsent);
        }
        if !clear.is_empty() {
            info!(addresses = ?clear, "probes unanswered: the addresses are free to take");
            self.r.wake.notify_one();
        }
        let mut out = Vec::new();
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
    /// `false` when it could not be sent.
    fn send(&mut self, interface: &str, address: IpAddr, frame: impl Fn(Mac) -> Vec<u8>) -> bool {
        if !self.sockets.contains_key(interface) {
            match Socket::open(interface, self.answers.clone()) {
                Ok(s) => {
                    debug!(interface, "conflict probes on this interface");
                    self.sockets.insert(interface.to_string(), s);
                }
                Err(e) => {
                    warn!(interface, error = e, "cannot probe for conflicts");
                    return false;
                }
            }
        }
        let socket = &self.sockets[interface];
        if let Err(e) = socket.send(&frame(socket.mac)) {
            warn!(interface, address = %address, error = %e, "conflict probe not sent");
            self.sockets.remove(interface);
            return false;
        }
        true
    }

    fn answered(&mut self, interface: &str, answer: Answer, at: Instant) {
        let Answer { address, mac } = answer;
        let by = mac_text(&mac);
        let (other, waiting, verdict, interval) = {
            let mut s = self.lock();
            let other = match s.macs.party(&self.r.node, mac) {
                Party::Own => {
                    // A second port of this node on the same LAN answers ARP for the node's
                    // addresses: that is the node itself, never a conflict.
                    debug!(address = %address, mac = by, interface, "answered by this node itself");
                    return;
                }
                Party::Agent(node) => Some(node.to_string()),
                Party::Foreign => None,
            };
            let interval = s.interval;
            let patience = patience(s.lifetime, interval);
            match s
                .gates
                .answered(address, at.into_std(), other.is_none(), patience)
            {
                Some(wait) => (other, Some(wait), None, interval),
                None => {
                    let verdict = judge(&self.r.node, address, mac, &s.macs);
                    (other, None, Some(verdict), interval)
                }
            }
        };
        if let Some(Answered { why, waited, tell }) = waiting {
            // Waiting for it: the answer keeps it away. A host that has the address is reported
            // at once; another agent only when a handover takes longer than it should.
            match (&other, tell) {
                (None, true) => {
                    warn!(address = %address, mac = by,
                          "a host that is no agent has this address: not taking it")
                }
                (Some(node), true) => warn!(address = %address, mac = by, other = node, ?why,
                                            ?waited, "another agent still answers: waiting"),
                (Some(node), false) => debug!(address = %address, mac = by, other = node, ?why,
                                              ?waited, "another agent answers: waiting"),
                (None, false) => {}
            }
            if tell {
                self.report(address, mac, other.is_some(), || {
                    notes::waiting(address, &by, other.as_deref(), why, interval, waited)
                });
            }
            return;
        }
        if !self.held().iter().any(|(_, a)| *a == address) {
            return;
        }
        match verdict {
            None | Some(Verdict::Own) => {}
            Some(Verdict::Yield { other }) => {
                warn!(address = %address, other, mac = by, "conflict: the other agent keeps it");
                self.lock().gates.probe_first(address, Wait::Yielded);
                self.r.wake.notify_one();
                self.report(address, mac, true, || notes::yielded(address, &by, &other));
            }
            Some(Verdict::Keep { other }) => {
                if let Some(other) = &other {
                    warn!(address = %address, other, mac = by, "conflict: this node keeps it");
                    let frame = |m: Mac| match address {
                        IpAddr::V4(a) => gratuitous_arp(m, a),
                        IpAddr::V6(a) => unsolicited_na(m, a),
                    };
                    self.send(interface, address, frame);
                } else {
                    warn!(address = %address, mac = by, "conflict with a host that is no agent");
                }
                self.report(address, mac, other.is_some(), || {
                    notes::kept(address, &by, other.as_deref())
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
        let service = self.lock().services.get(&address).cloned();
        self.r
            .events
            .address_conflict(address, note(), service.as_deref());
    }
}
