//! The failover probe: a bounded request loop from the client against one address, sampling
//! which nodes hold it, and the summary of what it saw (a pure function of the samples).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most this long, whatever the caller does.
const PROBE_LIMIT: Duration = Duration::from_secs(300);
const INTERVAL: Duration = Duration::from_millis(100);

/// One request: when it was sent (since the probe started), whether the app answered, and
/// which nodes held the address on their LAN interface right after.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Duration,
    pub ok: bool,
    pub holders: Vec<String>,
}

/// Where to look for the address: a node's namespace and LAN interface.
#[derive(Debug, Clone)]
pub struct NodeLan {
    pub ns: String,
    pub dev: String,
}

pub struct Probe {
    started: Instant,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Probe {
    /// Starts requesting `url` from the namespace `client` every 100 ms (each request times out
    /// after 1 s) and sampling which of `nodes` hold `addr`.
    pub fn start(client: &str, url: &str, addr: &str, nodes: Vec<NodeLan>) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (flag, client, url, addr) = (
            stop.clone(),
            client.to_string(),
            url.to_string(),
            addr.to_string(),
        );
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < PROBE_LIMIT {
                let at = started.elapsed();
                let ok = output(&[
                    "ip", "netns", "exec", &client, "curl", "-s", "-m", "1", &url,
                ])
                .is_some_and(|body| body.contains("pod="));
                let holders = nodes
                    .iter()
                    .filter(|n| {
                        output(&[
                            "ip", "-n", &n.ns, "-o", "addr", "show", "dev", &n.dev, "to", &addr,
                        ])
                        .is_some_and(|o| !o.trim().is_empty())
                    })
                    .map(|n| n.ns.clone())
                    .collect();
                samples.push(Sample { at, ok, holders });
                std::thread::sleep(INTERVAL.saturating_sub(started.elapsed() - at));
            }
            samples
        });
        Probe {
            started,
            stop,
            handle: Some(handle),
        }
    }

    /// Time since the probe started (the samples' clock).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A command's standard output when it succeeds.
fn output(argv: &[&str]) -> Option<String> {
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// What the probe saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub sent: usize,
    pub failed: usize,
    /// The longest stretch without an answer: from the last answered request before it (or the
    /// first request) to the next answered one (`None`: never answered again).
    pub longest_gap: Option<(Duration, Option<Duration>)>,
    /// The longest time between two consecutive answered requests (the probe's resolution when
    /// nothing failed).
    pub longest_between_answers: Duration,
    /// When the set of holders changed, and to what (the first sample included).
    pub holder_changes: Vec<(Duration, Vec<String>)>,
    /// Whether two nodes ever held the address at once.
    pub two_holders: bool,
}

impl Summary {
    /// The longest gap's length (to `end` when it never closed).
    pub fn gap_length(&self, end: Duration) -> Option<Duration> {
        self.longest_gap
            .map(|(from, to)| to.unwrap_or(end).saturating_sub(from))
    }
}

pub fn summarize(samples: &[Sample]) -> Summary {
    let failed = samples.iter().filter(|s| !s.ok).count();
    let end = samples.last().map_or(Duration::ZERO, |s| s.at);
    let mut longest: Option<(Duration, Option<Duration>)> = None;
    let mut last_ok: Option<Duration> = None;
    let mut open: Option<Duration> = None;
    let mut consider = |gap: (Duration, Option<Duration>)| {
        let len = |(f, t): (Duration, Option<Duration>)| t.unwrap_or(end).saturating_sub(f);
        if longest.is_none_or(|l| len(gap) > len(l)) {
            longest = Some(gap);
        }
    };
    for s in samples {
        if s.ok {
            if let Some(from) = open.take() {
                consider((from, Some(s.at)));
            }
            last_ok = Some(s.at);
        } else if open.is_none() {
            open = Some(last_ok.unwrap_or(s.at));
        }
    }
    if let Some(from) = open {
        consider((from, None));
    }
    let mut holder_changes: Vec<(Duration, Vec<String>)> = Vec::new();
    for s in samples {
        if holder_changes.last().is_none_or(|(_, h)| *h != s.holders) {
            holder_changes.push((s.at, s.holders.clone()));
        }
    }
    let answered: Vec<Duration> = samples.iter().filter(|s| s.ok).map(|s| s.at).collect();
    let longest_between_answers = answered
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(Duration::ZERO);
    Summary {
        sent: samples.len(),
        longest_between_answers,
        failed,
        longest_gap: longest,
        holder_changes,
        two_holders: samples.iter().any(|s| s.holders.len() > 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample(at: u64, ok: bool, holders: &[&str]) -> Sample {
        Sample {
            at: ms(at),
            ok,
            holders: holders.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn summarize_measures_the_longest_stretch_between_answers_and_every_holder_change() {
        struct Case {
            name: &'static str,
            samples: Vec<Sample>,
            failed: usize,
            gap: Option<(Duration, Option<Duration>)>,
            between: Duration,
            changes: Vec<(Duration, Vec<&'static str>)>,
            two: bool,
        }
        let cases = vec![
            Case {
                name: "always answered, one holder",
                samples: vec![sample(0, true, &["a"]), sample(100, true, &["a"])],
                failed: 0,
                gap: None,
                between: ms(100),
                changes: vec![(ms(0), vec!["a"])],
                two: false,
            },
            Case {
                name: "a move with a gap, then a move back without one",
                samples: vec![
                    sample(0, true, &["a"]),
                    sample(100, false, &[]),
                    sample(1100, false, &["b"]),
                    sample(1200, true, &["b"]),
                    sample(1300, true, &["a"]),
                ],
                failed: 2,
                gap: Some((ms(0), Some(ms(1200)))),
                between: ms(1200),
                changes: vec![
                    (ms(0), vec!["a"]),
                    (ms(100), vec![]),
                    (ms(1100), vec!["b"]),
                    (ms(1300), vec!["a"]),
                ],
                two: false,
            },
            Case {
                name: "the longer of two gaps",
                samples: vec![
                    sample(0, true, &["a"]),
                    sample(100, false, &["a"]),
                    sample(200, true, &["a"]),
                    sample(300, false, &["a", "b"]),
                    sample(400, false, &["b"]),
                    sample(900, true, &["b"]),
                ],
                failed: 3,
                gap: Some((ms(200), Some(ms(900)))),
                between: ms(700),
                changes: vec![
                    (ms(0), vec!["a"]),
                    (ms(300), vec!["a", "b"]),
                    (ms(400), vec!["b"]),
                ],
                two: true,
            },
            Case {
                name: "never answered again",
                samples: vec![
                    sample(0, true, &["a"]),
                    sample(100, false, &[]),
                    sample(200, false, &[]),
                ],
                failed: 2,
                gap: Some((ms(0), None)),
                between: Duration::ZERO,
                changes: vec![(ms(0), vec!["a"]), (ms(100), vec![])],
                two: false,
            },
            Case {
                name: "failing from the first request",
                samples: vec![sample(0, false, &[]), sample(100, true, &["a"])],
                failed: 1,
                gap: Some((ms(0), Some(ms(100)))),
                between: Duration::ZERO,
                changes: vec![(ms(0), vec![]), (ms(100), vec!["a"])],
                two: false,
            },
        ];
        for c in cases {
            let s = summarize(&c.samples);
            assert_eq!(s.sent, c.samples.len(), "{}", c.name);
            assert_eq!(s.failed, c.failed, "{}", c.name);
            assert_eq!(s.longest_gap, c.gap, "{}", c.name);
            assert_eq!(s.longest_between_answers, c.between, "{}", c.name);
            let changes: Vec<(Duration, Vec<String>)> = c
                .changes
                .iter()
                .map(|(t, h)| (*t, h.iter().map(|x| x.to_string()).collect()))
                .collect();
            assert_eq!(s.holder_changes, changes, "{}", c.name);
            assert_eq!(s.two_holders, c.two, "{}", c.name);
        }
    }
}
