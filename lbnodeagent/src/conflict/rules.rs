//! What a conflict on the wire means (DESIGN.md, "Conflicts on the wire"), and the gate that
//! keeps an address off this node while someone else still answers for it. Pure: the clock is
//! passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_api::election::election_hash;

/// A LAN MAC.
pub type Mac = [u8; 6];

/// What to do about another MAC answering for an address this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it: the other is a known agent with a higher election hash (it yields), or no agent
    /// at all (`other: None`: report, never fight a foreign host).
    Keep { other: Option<String> },
    /// Let go: a known agent, live or not, with a lower election hash has it.
    Yield { other: String },
}

/// `known`: every agent's LAN MAC (gossip and per-node Leases, live or not).
pub fn judge(me: &str, address: IpAddr, mac: Mac, known: &BTreeMap<Mac, String>) -> Verdict {
    match known.get(&mac) {
        Some(other) if other != me => {
            let lower = |n: &str| (election_hash(n, address), n.to_string());
            if lower(other) < lower(me) {
                Verdict::Yield {
                    other: other.clone(),
                }
            } else {
                Verdict::Keep {
                    other: Some(other.clone()),
                }
            }
        }
        _ => Verdict::Keep { other: None },
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

#[derive(Clone, Debug, PartialEq, Eq)]
enum Gate {
    /// Someone answers (or may answer) for it: not on this node; probed every probe interval
    /// divided by [`PROBES_PER_INTERVAL`].
    Probing {
        probed: Option<Instant>,
        answered: Option<Instant>,
    },
    /// A probe went unanswered: this node may add it.
    Clear,
}

/// How often, per `conflictProbe`, an address this node gave up is probed (DESIGN.md: ten).
pub const PROBES_PER_INTERVAL: u32 = 10;

/// Per address, whether the wire lets this node have it. Addresses without a gate are free.
#[derive(Clone, Debug, Default)]
pub struct Gates {
    gates: BTreeMap<IpAddr, Gate>,
}

impl Gates {
    /// Whether this node may have `address` now. `elected`: the election says so;
    /// `on_kernel`: it has it; `lingering`: a node that is not live in gossip still published
    /// it (its copy may linger until its lifetime ends, so a probe goes first).
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
            None if on_kernel || !lingering => true,
            None => {
                self.probe_first(address);
                false
            }
        }
    }

    /// Gives `address` up until a probe goes unanswered.
    pub fn probe_first(&mut self, address: IpAddr) {
        self.gates.insert(
            address,
            Gate::Probing {
                probed: None,
                answered: None,
            },
        );
    }

    /// Someone answered for `address` at `at`; `true` when this node is waiting for it (the
    /// first answer of a wait is worth reporting, the others are not).
    pub fn answered(&mut self, address: IpAddr, at: Instant) -> Option<bool> {
        match self.gates.get_mut(&address) {
            Some(Gate::Probing { answered, .. }) => {
                let first = answered.is_none();
                *answered = Some(at);
                Some(first)
            }
            _ => None,
        }
    }

    /// Whether `address` waits for a quiet probe.
    pub fn waiting(&self, address: IpAddr) -> bool {
        matches!(self.gates.get(&address), Some(Gate::Probing { .. }))
    }

    /// One step of the prober at `now`: addresses whose last probe went unanswered for
    /// `window` are clear (returned first); the addresses to probe now (not probed for
    /// `every`) are returned second and marked probed.
    pub fn tick(
        &mut self,
        now: Instant,
        every: Duration,
        window: Duration,
    ) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let mut clear = Vec::new();
        let mut probe = Vec::new();
        for (address, gate) in &mut self.gates {
            let Gate::Probing { probed, answered } = gate else {
                continue;
            };
            match *probed {
                Some(p) if now.duration_since(p) >= window && answered.is_none_or(|a| a < p) => {
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
