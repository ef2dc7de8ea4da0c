//! What a conflict on the wire means (DESIGN.md, "Conflicts on the wire"), and the gate that
//! keeps an address off this node while someone else still answers for it. Pure: the clock is
//! passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_api::election::election_hash;

/// A LAN MAC.
pub type Mac = [u8; 6];

/// The MACs an answer can come from that this node knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Macs {
    /// Every interface of this node (from the kernel): a second port on the same LAN answers
    /// an ARP probe for an address the node has (Linux answers for any local address on any
    /// interface), and that is no conflict.
    pub own: BTreeSet<Mac>,
    /// Every agent's LAN MAC (gossip and per-node Leases, live or not).
    pub agents: BTreeMap<Mac, String>,
}

/// Who answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party<'a> {
    /// This node itself (any of its interfaces, or the MAC it publishes).
    Own,
    /// Another node's agent.
    Agent(&'a str),
    /// A host that is no ferrolb agent.
    Foreign,
}

impl Macs {
    pub fn party(&self, me: &str, mac: Mac) -> Party<'_> {
        if self.own.contains(&mac) {
            return Party::Own;
        }
        match self.agents.get(&mac) {
            Some(node) if node == me => Party::Own,
            Some(node) => Party::Agent(node),
            None => Party::Foreign,
        }
    }
}

/// What to do about another MAC answering for an address this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The answer came from this node itself: no conflict, nothing to report.
    Own,
    /// Keep it: the other is a known agent with a higher election hash (it yields), or no agent
    /// at all (`other: None`: report, never fight a foreign host).
    Keep { other: Option<String> },
    /// Let go: a known agent, live or not, with a lower election hash has it.
    Yield { other: String },
}

pub fn judge(me: &str, address: IpAddr, mac: Mac, macs: &Macs) -> Verdict {
    match macs.party(me, mac) {
        Party::Own => Verdict::Own,
        Party::Agent(other) => {
            let lower = |n: &str| (election_hash(n, address), n.to_string());
            if lower(other) < lower(me) {
                Verdict::Yield {
                    other: other.to_string(),
                }
            } else {
                Verdict::Keep {
                    other: Some(other.to_string()),
                }
            }
        }
        Party::Foreign => Verdict::Keep { other: None },
    }
}

/// `aa:bb:cc:dd:ee:ff` (any case) as bytes.
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Why an address waits for a quiet probe before this node adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Not on this node yet: every first add is probed, so a pool that overlaps a live host
    /// never takes its address (a gratuitous ARP would move that host's clients).
    New,
    /// A node that is not live in gossip still published it: its copy may linger until its
    /// lifetime ends.
    Lingering,
    /// This node gave it up to an agent with a lower election hash.
    Yielded,
}

/// An answer for an address this node waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    pub why: Wait,
    /// Since the first answer of this wait.
    pub waited: Duration,
    /// Worth an Event now.
    pub tell: bool,
}

/// How long another agent may go on answering for an address this node waits for before it
/// is reported: a crashed agent's copy expires with the address lifetime, and a live agent
/// gives way once gossip has converged, which takes a few probe intervals.
pub fn patience(lifetime: Duration, interval: Duration) -> Duration {
    lifetime + interval * 5
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Gate {
    /// Someone answers (or may answer) for it: not on this node, probed at the [`Pace`].
    Probing {
        why: Wait,
        probed: Option<Instant>,
        answered: Option<Instant>,
        /// The first answer of this wait.
        since: Option<Instant>,
        /// This wait was reported.
        told: bool,
        /// The last answer came from a host that is no agent.
        foreign: bool,
    },
    /// A probe went unanswered: this node may add it.
    Clear,
}

/// How often, per `conflictProbe`, an address this node waits for is probed (DESIGN.md: ten).
pub const PROBES_PER_INTERVAL: u32 = 10;

/// How often a waiting address is probed, and how long a probe waits for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Between probes of an address another agent may still have (a handover is quick).
    pub every: Duration,
    /// Between probes of an address a host that is no agent answers for: it may keep the
    /// address for days, and each probe is a broadcast.
    pub foreign_every: Duration,
    /// A probe unanswered this long leaves the address clear.
    pub window: Duration,
}

impl Pace {
    /// At `conflictProbe` = `interval`: ten probes per interval, once per interval against a
    /// foreign host, half the time to the next probe for an answer (50 ms at 1 s: on a LAN an
    /// answer takes a millisecond or two, the rest is room for a loaded node).
    pub fn at(interval: Duration) -> Self {
        let every = interval / PROBES_PER_INTERVAL;
        Self {
            every,
            foreign_every: interval,
            window: every / 2,
        }
    }
}

/// Per address, whether the wire lets this node have it. An address this node has (or has
/// just been let add) carries no gate.
#[derive(Clone, Debug, Default)]
pub struct Gates {
    gates: BTreeMap<IpAddr, Gate>,
}

impl Gates {
    /// Whether this node may have `address` now. `elected`: the election says so;
    /// `on_kernel`: it has it; `lingering`: a node that is not live in gossip still published
    /// it. An address it does not have yet waits for a probe that nobody answers.
    pub fn allows(
        &mut self,
        address: IpAddr,
        elected: bool,
        on_kernel: bool,
        lingering: bool,
    ) -> bool {
        if !elected {
            self.gates.remove(&address);
            return false;
        }
        match self.gates.get(&address) {
            Some(Gate::Probing { .. }) => false,
            Some(Gate::Clear) => {
                if on_kernel {
                    self.gates.remove(&address);
                }
                true
            }
            None if on_kernel => true,
            None => {
                let why = if lingering {
                    Wait::Lingering
                } else {
                    Wait::New
                };
                self.probe_first(address, why);
                false
            }
        }
    }

    /// Keeps `address` off this node until a probe goes unanswered.
    pub fn probe_first(&mut self, address: IpAddr, why: Wait) {
        self.gates.insert(
            address,
            Gate::Probing {
                why,
                probed: None,
                answered: None,
                since: None,
                told: false,
                foreign: false,
            },
        );
    }

    /// Someone answered for `address` at `at` (`foreign`: a host that is no agent). When this
    /// node waits for it: why, how long it has been answered, and whether to report it now.
    /// A host that is no agent is reported at its first answer. Another agent answering is a
    /// handover in progress (gossip converging, or a crashed agent's copy expiring) and is
    /// reported only when it still answers after `patience` (see [`patience`]), once per wait.
    pub fn answered(
        &mut self,
        address: IpAddr,
        at: Instant,
        foreign: bool,
        patience: Duration,
    ) -> Option<Answered> {
        match self.gates.get_mut(&address) {
            Some(Gate::Probing {
                why,
                answered,
                since,
                told,
                foreign: from_foreign,
                ..
            }) => {
                let first = answered.is_none();
                *answered = Some(at);
                *from_foreign = foreign;
                let since = *since.get_or_insert(at);
                let waited = at.saturating_duration_since(since);
                let tell = if foreign {
                    first
                } else {
                    !*told && waited >= patience
                };
                *told |= tell;
                Some(Answered {
                    why: *why,
                    waited,
                    tell,
                })
            }
            _ => None,
        }
    }

    /// The probe of `address` could not be sent (no packet socket on its interface): an
    /// address nobody has answered for yet is let through, as it was before probes existed,
    /// rather than never served. `true` when it was.
    pub fn unsent(&mut self, address: IpAddr) -> bool {
        match self.gates.get_mut(&address) {
            Some(gate @ Gate::Probing { answered: None, .. }) => {
                *gate = Gate::Clear;
                true
            }
            _ => false,
        }
    }

    /// The probes of these addresses left at these moments (each stamped just before its
    /// send): their answer windows run from then, so a prober that stalled between deciding
    /// to probe and sending gives the answer its whole window.
    pub fn sent(&mut self, sent: &[(IpAddr, Instant)]) {
        for (address, at) in sent {
            if let Some(Gate::Probing { probed, .. }) = self.gates.get_mut(address) {
                *probed = Some(*at);
            }
        }
    }

    /// Whether `address` waits for a quiet probe.
    pub fn waiting(&self, address: IpAddr) -> bool {
        matches!(self.gates.get(&address), Some(Gate::Probing { .. }))
    }

    /// One step of the prober at `now`: addresses whose last probe went unanswered for
    /// `pace.window` are clear (returned first); the addresses to probe now are returned
    /// second and marked probed.
    pub fn tick(&mut self, now: Instant, pace: Pace) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let mut clear = Vec::new();
        let mut probe = Vec::new();
        for (address, gate) in &mut self.gates {
            let Gate::Probing {
                probed,
                answered,
                foreign,
                ..
            } = gate
            else {
                continue;
            };
            let every = if *foreign {
                pace.foreign_every
            } else {
                pace.every
            };
            match *probed {
                Some(p)
                    if now.duration_since(p) >= pace.window && answered.is_none_or(|a| a < p) =>
                {
                    clear.push(*address);
                    *gate = Gate::Clear;
                }
                Some(p) if now.duration_since(p) < every => {}
                _ => {
                    *probed = Some(now);
                    probe.push(*address);
                }
            }
        }
        (clear, probe)
    }

    /// Forgets the addresses not in `wanted` (Services gone, or no longer elected).
    pub fn retain(&mut self, wanted: &BTreeSet<IpAddr>) {
        self.gates.retain(|a, _| wanted.contains(a));
    }
}

#[cfg(test)]
mod tests;
