//! Runs `bird -f` as a child process, restarts it with back-off when it dies, and stops it
//! (SIGTERM, then SIGKILL) when asked.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::apply::BirdPaths;

/// Back-off between restarts: doubles from `first` up to `max`; a child that ran for `reset`
/// starts the count again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub reset: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(30),
            reset: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before the next start, given the last wait and how long the child ran.
    pub fn next(&self, last: Option<Duration>, ran: Duration) -> Duration {
        match last {
            Some(last) if ran < self.reset => (last * 2).min(self.max),
            _ => self.first,
        }
    }
}

/// A running supervisor; [`Supervisor::stop`] ends BIRD and the supervision.
#[derive(Debug)]
pub struct Supervisor {
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
    restarts: watch::Receiver<u64>,
}

impl Supervisor {
    /// Starts `bird -f -c <config> -s <socket>` and keeps it running. BIRD gets a process
    /// group of its own, so a signal to the sidecar's group (a terminal's Ctrl-C, a harness)
    /// reaches the sidecar, which drains, and not BIRD directly.
    pub fn start(paths: &BirdPaths, backoff: Backoff) -> Supervisor {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (restarts_tx, restarts) = watch::channel(0);
        let paths = paths.clone();
        let task = tokio::spawn(supervise(paths, backoff, stop_rx, restarts_tx));
        Supervisor {
            stop: Some(stop_tx),
            task,
            restarts,
        }
    }

    /// How often BIRD has been restarted after dying.
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarts.clone()
    }

    /// SIGTERM to BIRD, SIGKILL after `grace`; returns when it is gone.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        let _ = (&mut self.task).await;
    }
}

fn spawn(paths: &BirdPaths) -> std::io::Result<Child> {
    Command::new(&paths.bird)
        .arg("-f")
        .arg("-c")
        .arg(&paths.config)
        .arg("-s")
        .arg(&paths.socket)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

async fn supervise(
    paths: BirdPaths,
    backoff: Backoff,
    mut stop: oneshot::Receiver<Duration>,
    restarts: watch::Sender<u64>,
) {
    if let Some(dir) = paths.socket.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let mut last_wait = None;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&paths) {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(bird = %paths.bird.display(), "cannot start BIRD: {e}");
                let wait = backoff.next(last_wait, Duration::ZERO);
                last_wait = Some(wait);
                tokio::select! {
                    grace = &mut stop => { let _ = grace; return; }
                    _ = sleep(wait) => continue,
                }
            }
        };
        tracing::info!(pid = child.id(), "BIRD started");
        let status = tokio::select! {
            grace = &mut stop => {
                terminate(&mut child, grace.unwrap_or(Duration::from_secs(5))).await;
                return;
            }
            status = child.wait() => status,
        };
        let ran = started.elapsed();
        let wait = backoff.next(last_wait, ran);
        last_wait = Some(wait);
        restarts.send_modify(|n| *n += 1);
        tracing::warn!(
            status = %describe(status),
            ran = ?ran,
            restart_in = ?wait,
            "BIRD exited; restarting it"
        );
        tokio::select! {
            grace = &mut stop => { let _ = grace; return; }
            _ = sleep(wait) => {}
        }
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if let Ok(status) = timeout(grace, child.wait()).await {
            tracing::info!(status = %describe(status), "BIRD stopped");
            return;
        }
        tracing::warn!(?grace, "BIRD ignored SIGTERM; killing it");
    }
    let _ = child.kill().await;
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_doubling_and_resets_after_a_long_run() {
        let b = Backoff::default();
        let ms = Duration::from_millis;
        let cases = [
            ("first restart", None, ms(10), ms(250)),
            ("second quick death doubles", Some(ms(250)), ms(10), ms(500)),
            (
                "capped",
                Some(Duration::from_secs(20)),
                ms(10),
                Duration::from_secs(30),
            ),
            (
                "long run resets",
                Some(Duration::from_secs(30)),
                Duration::from_secs(61),
                ms(250),
            ),
        ];
        for (name, last, ran, want) in cases {
            assert_eq!(b.next(last, ran), want, "{name}");
        }
    }
}
