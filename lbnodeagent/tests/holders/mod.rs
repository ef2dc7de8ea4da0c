//! Who holds an address, read from the kernel precisely enough to tell a real overlap from a
//! slow look. One thread per node `setns(2)`-es into the node's namespace and dumps its LAN
//! interface's addresses over netlink every [`READ_EVERY`], noting when each dump was asked for
//! and when it was answered. The kernel took the dump at some instant between the two, so a
//! node certainly held an address from the answer of one dump that had it to the request of
//! the last dump of an unbroken run that had it; an overlap is two nodes whose certain spans
//! intersect.
//!
//! Why not `ip addr` in a loop (`world::sampler`): on a loaded machine one `ip netns exec` per
//! node takes tens of ms, so a "sample" of three nodes spans 50 ms or more, and a handover that
//! happens inside it shows the old holder (read first) and the new one (read last) "at once".

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_lbnodeagent::netlink::Netlink;
use nix::sched::CloneFlags;

use crate::world::World;

/// How often each node's addresses are dumped.
pub const READ_EVERY: Duration = Duration::from_millis(5);

/// One dump of one node: asked at `sent`, answered at `got`; which of the watched addresses
/// (by position) the LAN interface carried.
#[derive(Clone, Debug)]
struct Read {
    sent: Instant,
    got: Instant,
    held: Vec<bool>,
}

/// A stretch during which a node certainly held an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub node: usize,
    pub from: Instant,
    pub to: Instant,
}

/// Reads every node's LAN interface from threads of its own until dropped.
pub struct Holders {
    addresses: Vec<IpAddr>,
    stop: Arc<AtomicBool>,
    reads: Vec<Arc<Mutex<Vec<Read>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Holders {
    /// Watches `addresses` on every node of `w`.
    pub fn start(w: &World, addresses: &[IpAddr]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut reads = Vec::new();
        let mut threads = Vec::new();
        for node in w.topo.nodes() {
            let out = Arc::new(Mutex::new(Vec::new()));
            reads.push(out.clone());
            let path = format!("/run/netns/{}", node.ns_name());
            let dev = node.lan_ifname().to_string();
            let (stop, watched) = (stop.clone(), addresses.to_vec());
            threads.push(std::thread::spawn(move || {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the node");
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(watch(dev, watched, stop, out));
            }));
        }
        let holders = Self {
            addresses: addresses.to_vec(),
            stop,
            reads,
            threads,
        };
        // Every thread has answered once: from now on the record covers every node.
        let started = Instant::now();
        while holders.reads.iter().any(|r| lock(r).is_empty()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the address watchers did not start"
            );
            std::thread::sleep(READ_EVERY);
        }
        holders
    }

    /// The stretches since `from` during which a node certainly held `addr`; a node in
    /// `off_lan = (node, until)` counts only from `until` on (its LAN link was down until then,
    /// so its copy answered nobody).
    pub fn spans(
        &self,
        addr: IpAddr,
        from: Instant,
        off_lan: Option<(usize, Instant)>,
    ) -> Vec<Span> {
        let Some(k) = self.addresses.iter().position(|a| *a == addr) else {
            panic!("{addr} is not watched");
        };
        self.reads
            .iter()
            .enumerate()
            .flat_map(|(node, reads)| {
                let since = match off_lan {
                    Some((n, until)) if n == node => until.max(from),
                    _ => from,
                };
                spans_in(&lock(reads), k, node, since)
            })
            .collect()
    }

    /// The first instant since `from` at which two nodes certainly held `addr`, with them.
    pub fn overlap(
        &self,
        addr: IpAddr,
        from: Instant,
        off_lan: Option<(usize, Instant)>,
    ) -> Option<(Instant, Span, Span)> {
        first_overlap(&self.spans(addr, from, off_lan))
    }

    /// Panics when two nodes certainly held `addr` at once since `from`, with the holders'
    /// timeline and the agents' logs.
    pub fn assert_no_overlap(&self, w: &World, addr: IpAddr, from: Instant, what: &str) {
        self.assert_no_overlap_on_the_wire(w, addr, from, None, what);
    }

    /// Like [`Holders::assert_no_overlap`], leaving out `off_lan = (node, until)`: a node whose
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
        let Some((at, a, b)) = self.overlap(addr, from, off_lan) else {
            return;
        };
        let ms = |t: Instant| t.saturating_duration_since(from).as_secs_f64() * 1e3;
        let mut timeline: Vec<Span> = self.spans(addr, from, off_lan);
        timeline.sort_by_key(|s| s.from);
        let timeline: Vec<String> = timeline
            .iter()
            .map(|s| {
                format!(
                    "node {} held it {:.1}..{:.1} ms",
                    s.node,
                    ms(s.from),
                    ms(s.to)
                )
            })
            .collect();
        panic!(
            "{what}: {addr} on nodes [{}, {}] at once, {:?} after the start \
             (node {} from {:.1} ms to {:.1} ms, node {} from {:.1} ms to {:.1} ms)\n{}\n{}",
            a.node.min(b.node),
            a.node.max(b.node),
            at.duration_since(from),
            a.node,
            ms(a.from),
            ms(a.to),
            b.node,
            ms(b.from),
            ms(b.to),
            timeline.join("\n"),
            w.logs()
        );
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Dumps the addresses of `dev` every [`READ_EVERY`] until `stop`.
async fn watch(
    dev: String,
    watched: Vec<IpAddr>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Read>>>,
) {
    let netlink = Netlink::connect().expect("a netlink socket in the node");
    let index = netlink
        .link_index(&dev)
        .await
        .expect("look up the LAN interface")
        .expect("the node has its LAN interface");
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let Ok(addresses) = netlink.addresses().await else {
            tokio::time::sleep(READ_EVERY).await;
            continue;
        };
        let got = Instant::now();
        let on: BTreeSet<IpAddr> = addresses
            .into_iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, a)| a.address)
            .collect();
        let held = watched.iter().map(|a| on.contains(a)).collect();
        lock(&out).push(Read { sent, got, held });
        tokio::time::sleep(READ_EVERY.saturating_sub(got.elapsed())).await;
    }
}

/// The stretches of `reads` (one node's) since `from` during which it certainly held the
/// `k`-th watched address: from the answer of the first dump of an unbroken run that had it to
/// the request of the run's last dump (a run of one dump proves no stretch).
fn spans_in(reads: &[Read], k: usize, node: usize, from: Instant) -> Vec<Span> {
    let mut out = Vec::new();
    let mut run: Option<(Instant, Instant)> = None;
    let mut close = |run: &mut Option<(Instant, Instant)>| {
        if let Some((a, b)) = run.take()
            && b > a.max(from)
        {
            out.push(Span {
                node,
                from: a.max(from),
                to: b,
            });
        }
    };
    for r in reads {
        if r.held[k] {
            run = Some(match run {
                Some((a, _)) => (a, r.sent),
                None => (r.got, r.got),
            });
        } else {
            close(&mut run);
        }
    }
    close(&mut run);
    out
}

/// The earliest instant at which spans of two different nodes intersect.
fn first_overlap(spans: &[Span]) -> Option<(Instant, Span, Span)> {
    let mut found: Option<(Instant, Span, Span)> = None;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let start = a.from.max(b.from);
            if a.node != b.node && start < a.to.min(b.to) && found.is_none_or(|(t, _, _)| start < t)
            {
                found = Some((start, *a, *b));
            }
        }
    }
    found
}

/// The rule itself, on made-up dumps (no namespaces needed).
#[test]
fn a_slow_look_during_a_handover_is_no_overlap_and_a_real_one_is() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let read = |sent: u64, got: u64, held: bool| Read {
        sent: ms(sent),
        got: ms(got),
        held: vec![held],
    };
    // Node 0 lets go between its dumps at 18 and 20 ms; node 1 adds between 12 and 40 ms.
    let old = [
        read(0, 2, true),
        read(10, 11, true),
        read(18, 19, true),
        read(20, 21, false),
    ];
    let slow_new = [read(12, 30, false), read(40, 41, true), read(50, 51, true)];
    // Node 1's slow dump (asked at 12, answered at 30) proves nothing about 12..30.
    let spans: Vec<Span> = [spans_in(&old, 0, 0, t0), spans_in(&slow_new, 0, 1, t0)].concat();
    assert_eq!(
        spans,
        [
            Span {
                node: 0,
                from: ms(2),
                to: ms(18)
            },
            Span {
                node: 1,
                from: ms(41),
                to: ms(50)
            },
        ]
    );
    assert_eq!(first_overlap(&spans), None);
    // Node 1 already had it while node 0 still did: an overlap from 11 ms.
    let early_new = [read(11, 11, true), read(15, 16, true), read(25, 26, true)];
    let spans: Vec<Span> = [spans_in(&old, 0, 0, t0), spans_in(&early_new, 0, 1, t0)].concat();
    let (at, _, _) = first_overlap(&spans).expect("an overlap");
    assert_eq!(at, ms(11));
    // One dump alone proves no stretch; spans start no earlier than `from`.
    assert!(spans_in(&[read(0, 1, true)], 0, 0, t0).is_empty());
    assert_eq!(spans_in(&old, 0, 0, ms(5))[0].from, ms(5));
}
