//! Faults of the leader at random moments: SIGKILL (a new replica started after a pause), or a
//! hang (SIGSTOP past the lease duration and until the next leader has allocated, then SIGCONT:
//! the woken leader must stop at once, and the ledger catches anything it still writes). Each
//! fault is timed from the moment it hits to the first allocation after the Lease changed hands.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferrolb_api::contracts::ALLOCATOR_LEASE_DURATION;
use ferrolb_e2e::rng::XorShift;
use serde_json::{Value, json};

use crate::ledger::Ledger;
use crate::lock;
use crate::replicas::{Holders, Replicas};
use crate::secs;

/// Longest time a killed replica stays down before its replacement starts.
pub const MAX_DOWN_MS: usize = 1500;
/// Longest a leader loss may take to be followed by an allocation of the next leader: the
/// follower waits out the lease duration from the last renewal it saw, plus a retry period,
/// plus generous room for a loaded machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(45);
/// How soon a woken hung leader must exit: its term ended while it hung.
const WAKE_EXIT_BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Hang,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "killed",
            Fault::Hang => "hung",
        }
    }
}

pub struct Faults<'a> {
    replicas: &'a mut Replicas,
    holders: &'a Holders,
    ledger: &'a Mutex<Ledger>,
    rng: &'a mut XorShift,
    /// The run's start, to say when each fault struck.
    epoch: Instant,
    kills: usize,
    hangs: usize,
    records: Vec<Value>,
    /// Seconds from each leader loss to the next leader's first allocation.
    recovery: Vec<f64>,
    unexpected_exits: usize,
    pub violations: Vec<String>,
}

impl<'a> Faults<'a> {
    pub fn new(
        replicas: &'a mut Replicas,
        holders: &'a Holders,
        ledger: &'a Mutex<Ledger>,
        rng: &'a mut XorShift,
        epoch: Instant,
    ) -> Self {
        Faults {
            replicas,
            holders,
            ledger,
            rng,
            epoch,
            kills: 0,
            hangs: 0,
            records: Vec::new(),
            recovery: Vec::new(),
            unexpected_exits: 0,
            violations: Vec::new(),
        }
    }

    /// Sleeps a random time in `min_ms..max_ms`.
    pub async fn pause(&mut self, min_ms: usize, max_ms: usize) {
        let ms = min_ms + self.rng.below(max_ms - min_ms);
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    }

    /// Waits for the first allocation since `edited` (at most 3 s), then 0-100 ms more: a
    /// fault then finds the leader amid the writes the edit started, some of them checked
    /// against its term and not yet sent.
    pub async fn in_the_burst(&mut self, edited: Instant) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && lock(self.ledger).allocation_since(edited).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.pause(0, 100).await;
    }

    /// A replica that exited by itself is a violation (only a woken hung leader may, and that
    /// one is reaped where it is woken); a new one replaces it, so two stay around.
    pub fn check_exits(&mut self) {
        for (identity, why) in self.replicas.reap() {
            self.unexpected_exits += 1;
            self.violations
                .push(format!("replica {identity} exited on its own: {why}"));
            self.replicas.start();
        }
    }

    /// When the Lease left `lost` after `at`, and the first allocation after that.
    fn recovered(&self, lost: &str, at: Instant) -> Option<(Instant, Instant)> {
        let taken = self.holders.taken_from(lost, at)?;
        // The Lease is polled every 100 ms: the new leader may have written just before.
        let alloc = lock(self.ledger).allocation_since(taken - Duration::from_millis(300))?;
        Some((taken, alloc))
    }

    /// The replica that holds the Lease and runs, waited for up to the recovery bound.
    async fn leader(&mut self) -> Option<String> {
        let deadline = Instant::now() + RECOVERY_BOUND;
        while Instant::now() < deadline {
            if let Some(h) = self.holders.current()
                && self.replicas.find(&h).is_some_and(|r| !r.stopped)
            {
                return Some(h);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub async fn fault(&mut self, kind: Fault) {
        self.check_exits();
        let Some(leader) = self.leader().await else {
            self.violations.push(format!(
                "no running replica held the leader Lease for {RECOVERY_BOUND:?} (holder {:?})",
                self.holders.current()
            ));
            return;
        };
        let at = Instant::now();
        let mut record = json!({ "fault": kind.name(), "leader": leader,
                                 "at_s": secs(at - self.epoch) });
        match kind {
            Fault::Kill => {
                self.kills += 1;
                self.replicas.kill(&leader);
                let down = self.rng.below(MAX_DOWN_MS) as u64;
                tokio::time::sleep(Duration::from_millis(down)).await;
                record["replacement_after_ms"] = down.into();
                self.replicas.start();
            }
            Fault::Hang => {
                self.hangs += 1;
                self.replicas.signal(&leader, true);
                // Hung past the lease duration, and until the next leader has written, so that
                // the woken one finds the world changed under it.
                let long_enough = ALLOCATOR_LEASE_DURATION + Duration::from_millis(500);
                while at.elapsed() < RECOVERY_BOUND
                    && (at.elapsed() < long_enough || self.recovered(&leader, at).is_none())
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                self.replicas.signal(&leader, false);
                let woke = Instant::now();
                record["woken_at_s"] = secs(woke - self.epoch).into();
                record["stopped_s"] = secs(at.elapsed()).into();
                while woke.elapsed() < WAKE_EXIT_BOUND
                    && !self.replicas.find(&leader).is_none_or(|r| r.exited())
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let exited = self.replicas.find(&leader).is_none_or(|r| r.exited());
                record["exited_after_wake_s"] = secs(woke.elapsed()).into();
                if exited {
                    let r = self.replicas.find(&leader);
                    let said = r
                        .as_ref()
                        .is_some_and(|r| r.log().contains("not renewed within the renew deadline"));
                    if !said {
                        let tail = r.map(|r| r.log_tail(15)).unwrap_or_default();
                        self.violations.push(format!(
                            "the woken leader {leader} exited without saying its renew deadline passed:\n{tail}"
                        ));
                    }
                } else {
                    self.violations.push(format!(
                        "the hung leader {leader} still runs {WAKE_EXIT_BOUND:?} after SIGCONT; its term ended while it hung"
                    ));
                }
                self.replicas.kill(&leader);
                self.replicas.start();
            }
        }
        loop {
            if let Some((taken, alloc)) = self.recovered(&leader, at) {
                let took = alloc.saturating_duration_since(at);
                record["lease_taken_s"] = secs(taken.saturating_duration_since(at)).into();
                record["first_allocation_s"] = secs(took).into();
                record["new_leader"] = self.holders.current().into();
                self.recovery.push(took.as_secs_f64());
                break;
            }
            if at.elapsed() > RECOVERY_BOUND {
                self.violations.push(format!(
                    "no allocation within {RECOVERY_BOUND:?} after the leader {leader} was {} (holder now {:?})",
                    kind.name(),
                    self.holders.current()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.records.push(record);
    }

    pub fn figures(&self) -> Value {
        let mut r = self.recovery.clone();
        r.sort_by(f64::total_cmp);
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let median = if r.is_empty() {
            0.0
        } else if r.len() % 2 == 1 {
            r[r.len() / 2]
        } else {
            (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
        };
        json!({
            "kills": self.kills,
            "hangs": self.hangs,
            "unexpected_exits": self.unexpected_exits,
            "first_allocation_after_leader_loss_s": {
                "max": round(r.last().copied().unwrap_or(0.0)),
                "median": round(median),
            },
            "faults": self.records,
        })
    }
}

/// One step of the schedule: a pool edit or a fault of the leader.
pub enum Step {
    Edit(usize),
    Fault(Fault),
}

/// The faults in a seeded order, with the edits spread among them (the last one after the
/// last fault). A fault right after an edit hits the leader in the burst of writes it starts.
pub fn schedule(kills: usize, hangs: usize, edits: usize, rng: &mut XorShift) -> Vec<Step> {
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::Kill, kills)
        .chain(std::iter::repeat_n(Fault::Hang, hangs))
        .collect();
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i + 1));
    }
    let n = faults.len();
    let before: Vec<usize> = (0..edits)
        .map(|k| if edits > 1 { k * n / (edits - 1) } else { 0 })
        .collect();
    let mut steps = Vec::new();
    for (i, f) in faults.into_iter().enumerate() {
        steps.extend((0..edits).filter(|k| before[*k] == i).map(Step::Edit));
        steps.push(Step::Fault(f));
    }
    steps.extend((0..edits).filter(|k| before[*k] >= n).map(Step::Edit));
    steps
}
