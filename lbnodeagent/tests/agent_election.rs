//! The election in the real `ferrolb-agent` binary: three nodes in namespaces, gossip on their
//! LAN, the real API server. Who holds an address is read from the kernel: every node's LAN
//! interface is sampled every 50 ms, and overlaps are looked for in those samples.

mod world;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_api::election::holder;
use world::{World, settings};

const V4: &str = "192.0.2.120";
const V6: &str = "2001:db8:1::120";
/// Loose functional bounds: they catch breakage, not regressions of a few hundred ms.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The addresses on each node's LAN interface at one instant.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    held: Vec<BTreeSet<IpAddr>>,
}

impl Sample {
    fn holders(&self, addr: IpAddr) -> Vec<usize> {
        (0..self.held.len())
            .filter(|&i| self.held[i].contains(&addr))
            .collect()
    }
}

/// Samples every node's LAN interface from a thread of its own until dropped.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(w: &World) -> Self {
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

    fn since(&self, t: Instant) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.at >= t)
            .cloned()
            .collect()
    }

    /// Waits (bounded) for a sample taken after `from` that satisfies `ok`; returns it.
    async fn first(
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
    fn assert_no_overlap(&self, w: &World, addr: IpAddr, from: Instant, what: &str) {
        self.assert_no_overlap_on_the_wire(w, addr, from, None, what);
    }

    /// Like [`Sampler::assert_no_overlap`], leaving out `off_lan = (node, until)`: a node whose
    /// LAN link is down until then answers nobody, so its copy is no overlap on the wire (it
    /// lets go on carrier loss, but that races with the others declaring it dead).
    fn assert_no_overlap_on_the_wire(
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

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The global addresses on `dev` in namespace `ns`.
fn addresses(ns: &str, dev: &str) -> BTreeSet<IpAddr> {
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

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// The node the election picks for `addr` among `nodes` (indices into the world's nodes).
fn elected(w: &World, addr: IpAddr, nodes: &[usize]) -> usize {
    let name = holder(addr, nodes.iter().map(|&i| w.nodes[i].as_str())).expect("a candidate");
    w.nodes
        .iter()
        .position(|n| n == name)
        .expect("one of the nodes")
}

/// Three agents, two Services sharing one v4 and one v6 address; returns once each address is
/// on exactly its elected node.
async fn three_agents(tag: &str, test: &str) -> Option<(World, Sampler)> {
    let mut w = World::with_nodes(tag, test, settings("3s", "1s"), 3).await?;
    for i in 0..3 {
        w.start_agent(i);
    }
    let group = w.local_group();
    w.service("web", &group, &[V4, V6], false).await;
    w.service("web-udp", &group, &[V4, V6], false).await;
    let sampler = Sampler::start(&w);
    let all = [0, 1, 2];
    let (h4, h6) = (elected(&w, ip(V4), &all), elected(&w, ip(V6), &all));
    let start = Instant::now();
    sampler
        .first(
            &w,
            "each address is on its elected node only",
            start,
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4] && s.holders(ip(V6)) == [h6],
        )
        .await;
    Some((w, sampler))
}

#[tokio::test]
async fn one_node_holds_each_address_and_a_graceful_stop_hands_over_without_overlap() {
    let Some((mut w, sampler)) = three_agents("ee", "election-stop").await else {
        return;
    };
    let all = [0, 1, 2];
    let (h4, h6) = (elected(&w, ip(V4), &all), elected(&w, ip(V6), &all));
    println!("elected: {V4} on node {h4}, {V6} on node {h6}");
    // It stays that way: a second of samples with one holder each.
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for s in sampler.since(steady) {
        assert_eq!(s.holders(ip(V4)), [h4], "{s:?}");
        assert_eq!(s.holders(ip(V6)), [h6], "{s:?}");
    }
    let m = w.metrics(h4);
    for line in [
        "ferrolb_agent_gossip_live_peers 2",
        "ferrolb_agent_gossip_rejected_total 0",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }

    // (c) SIGTERM on the v4 holder: the next one takes over, never both at once.
    let rest: Vec<usize> = all.into_iter().filter(|&i| i != h4).collect();
    let next4 = elected(&w, ip(V4), &rest);
    let stopped = Instant::now();
    w.agent(h4).signal("TERM").expect("SIGTERM");
    let taken = sampler
        .first(
            &w,
            "the next node holds the v4 address",
            stopped,
            TAKEOVER_BOUND,
            |s| s.holders(ip(V4)) == [next4],
        )
        .await;
    println!(
        "graceful handover of {V4}: node {h4} -> node {next4} in {:?}",
        taken.at.duration_since(stopped)
    );
    while w.agent(h4).exit_status().is_none() {
        assert!(
            stopped.elapsed() < world::TIMEOUT,
            "the stopped agent did not exit\n{}",
            w.logs()
        );
        tokio::time::sleep(world::STEP).await;
    }
    let h6_after = if h6 == h4 {
        elected(&w, ip(V6), &rest)
    } else {
        h6
    };
    sampler
        .first(
            &w,
            "the v6 address is on its holder among the others",
            stopped,
            TAKEOVER_BOUND,
            |s| s.holders(ip(V6)) == [h6_after],
        )
        .await;
    for addr in [ip(V4), ip(V6)] {
        sampler.assert_no_overlap(&w, addr, stopped, "graceful stop");
    }

    // (e) It comes back with the lowest hash: it gets its addresses back, break before make,
    // and claims nothing before its view has settled.
    let restarted = Instant::now();
    w.start_agent(h4);
    sampler
        .first(
            &w,
            "the restarted node holds its addresses again",
            restarted,
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4] && s.holders(ip(V6)) == [h6],
        )
        .await;
    // A little longer, to see that nothing moves any more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for addr in [ip(V4), ip(V6)] {
        sampler.assert_no_overlap(&w, addr, restarted, "rejoin after a graceful stop");
    }
}

#[tokio::test]
async fn a_crashed_or_cut_off_holder_is_replaced_and_gets_its_address_back() {
    let Some((mut w, sampler)) = three_agents("ek", "election-crash").await else {
        return;
    };
    let all = [0, 1, 2];
    let h4 = elected(&w, ip(V4), &all);
    let rest: Vec<usize> = all.into_iter().filter(|&i| i != h4).collect();
    let next4 = elected(&w, ip(V4), &rest);

    // (a) SIGKILL: its copy lingers until its lifetime ends; another node takes over as soon
    // as the failure detector declares it dead.
    let killed = Instant::now();
    w.agent(h4).kill();
    let taken = sampler
        .first(
            &w,
            "another node holds the v4 address after the crash",
            killed,
            TAKEOVER_BOUND,
            |s| s.holders(ip(V4)).contains(&next4),
        )
        .await;
    println!(
        "takeover after SIGKILL of {V4}: node {h4} -> node {next4} in {:?}",
        taken.at.duration_since(killed)
    );
    let expired = sampler
        .first(
            &w,
            "the dead agent's copy expires",
            killed,
            TAKEOVER_BOUND,
            |s| s.holders(ip(V4)) == [next4],
        )
        .await;
    for s in sampler.since(taken.at) {
        assert!(
            s.holders(ip(V4)).iter().all(|&i| i == h4 || i == next4),
            "{s:?}"
        );
    }

    // Back after the crash: break before make again.
    let restarted = Instant::now();
    assert!(restarted >= expired.at);
    w.start_agent(h4);
    sampler
        .first(
            &w,
            "the restarted node holds the v4 address again",
            restarted,
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4],
        )
        .await;
    sampler.assert_no_overlap(&w, ip(V4), restarted, "rejoin after a crash");

    // (d) Carrier lost on the holder's LAN: it lets go at once (carrier-down), the others
    // declare it dead and one takes over.
    let cut = Instant::now();
    w.topo.cut_lan(h4).expect("cut the LAN");
    let taken = sampler
        .first(
            &w,
            "another node holds the v4 address after the cut",
            cut,
            TAKEOVER_BOUND,
            |s| s.holders(ip(V4)) == [next4],
        )
        .await;
    println!(
        "takeover after carrier loss of {V4}: node {h4} -> node {next4} in {:?}",
        taken.at.duration_since(cut)
    );
    let restored = Instant::now();
    w.topo.restore_lan(h4).expect("restore the LAN");
    let back = sampler
        .first(
            &w,
            "the node back on the LAN holds the v4 address again",
            restored,
            world::TIMEOUT,
            |s| s.holders(ip(V4)) == [h4],
        )
        .await;
    println!(
        "{V4} back on node {h4} {:?} after the LAN came back",
        back.at.duration_since(restored)
    );
    sampler.assert_no_overlap_on_the_wire(
        &w,
        ip(V4),
        cut,
        Some((h4, restored)),
        "carrier lost and back",
    );
}
