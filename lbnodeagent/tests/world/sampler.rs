//! Who holds what, read from the kernel: every node's LAN interface sampled every 50 ms from a
//! thread of its own, and the checks tests make on those samples (one holder, no overlap).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_api::election::holder;

use super::World;

pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The addresses on each node's LAN interface at one instant.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub held: Vec<BTreeSet<IpAddr>>,
}

impl Sample {
    pub fn holders(&self, addr: IpAddr) -> Vec<usize> {
        (0..self.held.len())
            .filter(|&i| self.held[i].contains(&addr))
            .collect()
    }
}

/// Samples every node's LAN interface from a thread of its own until dropped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(w: &World) -> Self {
        let targets: Vec<(String, String)> = w
            .topo
            .nodes()
            .iter()
            .map(|n| (n.ns_name().to_string(), n.lan_ifname().to_string()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let at = Instant::now();
                let held = targets.iter().map(|(ns, dev)| addresses(ns, dev)).collect();
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Sample { at, held });
                std::thread::sleep(SAMPLE_EVERY.saturating_sub(at.elapsed()));
            }
        });
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    pub fn since(&self, t: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.at >= t)
            .cloned()
            .collect()
    }

    /// Waits (bounded) for a sample taken after `from` that satisfies `ok`; returns it.
    pub async fn first(
        &self,
        w: &World,
        what: &str,
        from: Instant,
        timeout: Duration,
        ok: impl Fn(&Sample) -> bool,
    ) -> Sample {
        loop {
            if let Some(s) = self.since(from).into_iter().find(|s| ok(s)) {
                return s;
            }
            assert!(
                from.elapsed() < timeout,
                "timed out after {timeout:?} waiting until {what}\n{}",
                w.logs()
            );
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }

    /// Panics when a sample since `from` has `addr` on more than one node.
    pub fn assert_no_overlap(&self, w: &World, addr: IpAddr, from: Instant, what: &str) {
        self.assert_no_overlap_on_the_wire(w, addr, from, None, what);
    }

    /// Like [`Sampler::assert_no_overlap`], leaving out `off_lan = (node, until)`: a node whose
    /// LAN link is down until then answers nobody, so its copy is no overlap on the wire (it
    /// lets go on carrier loss, but that races with the others declaring it dead).
    pub fn assert_no_overlap_on_the_wire(
        &self,
        w: &World,
        addr: IpAddr,
        from: Instant,
        off_lan: Option<(usize, Instant)>,
        what: &str,
    ) {
        let samples = self.since(from);
        assert!(!samples.is_empty(), "{what}: no samples");
        let on_wire = |s: &Sample| -> Vec<usize> {
            s.holders(addr)
                .into_iter()
                .filter(|&i| !matches!(off_lan, Some((n, until)) if n == i && s.at < until))
                .collect()
        };
        if let Some(s) = samples.iter().find(|s| on_wire(s).len() > 1) {
            let timeline: Vec<String> = samples
                .iter()
                .map(|s| format!("{:?}: {:?}", s.at.duration_since(from), s.holders(addr)))
                .collect();
            eprintln!("{}", timeline.join("\n"));
            panic!(
                "{what}: {addr} on nodes {:?} at once, {:?} after the start\n{}",
                s.holders(addr),
                s.at.duration_since(from),
                w.logs()
            );
        }
    }
}

impl Sampler {
    /// How long `addr` was on no node just before `until`: from the last sample since `from`
    /// that had it somewhere to the first one at or after `until` (zero when it never was
    /// unheld). Resolution: the sampling period.
    pub fn unheld_before(&self, addr: IpAddr, from: Instant, until: Instant) -> Duration {
        let samples = self.since(from);
        let last_held = samples
            .iter()
            .rfind(|s| s.at < until && !s.holders(addr).is_empty());
        let last_unheld = samples
            .iter()
            .rfind(|s| s.at < until && s.holders(addr).is_empty());
        match (last_held, last_unheld) {
            (Some(h), Some(u)) if u.at > h.at => until.duration_since(h.at),
            _ => Duration::ZERO,
        }
    }

    /// The longest stretch since `from` during which `addr` was on no node (from the last
    /// sample that had it to the next one that has it again).
    pub fn longest_unheld(&self, addr: IpAddr, from: Instant) -> Duration {
        let samples = self.since(from);
        let mut longest = Duration::ZERO;
        let mut last_held: Option<Instant> = None;
        let mut gap_open = false;
        for s in &samples {
            if s.holders(addr).is_empty() {
                gap_open = true;
            } else {
                if gap_open && let Some(h) = last_held {
                    longest = longest.max(s.at.duration_since(h));
                }
                gap_open = false;
                last_held = Some(s.at);
            }
        }
        longest
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The global addresses on `dev` in namespace `ns`.
pub fn addresses(ns: &str, dev: &str) -> BTreeSet<IpAddr> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-o", "addr", "show", "dev", dev])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// The node the election picks for `addr` among `nodes` (indices into the world's nodes).
pub fn elected(w: &World, addr: IpAddr, nodes: &[usize]) -> usize {
    let name = holder(addr, nodes.iter().map(|&i| w.nodes[i].as_str())).expect("a candidate");
    w.nodes
        .iter()
        .position(|n| n == name)
        .expect("one of the nodes")
}
