//! Processes the harness starts: each in its own process group (a stop takes its children too)
//! and tied to the test process with `PR_SET_PDEATHSIG`, so nothing outlives a killed test.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// `setpriv --pdeathsig KILL -- <program>`: the kernel kills the program when the thread that
/// started it exits. [`Process::spawn`] starts it from a thread that lives as long as the test
/// process (test threads end with their tests), so the program dies with the process.
pub fn tied(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawn_from_spawner_thread(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);
    let gone = || std::io::Error::other("the spawner thread is gone");
    let sender = SPAWNER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("ferrolb-e2e-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("a spawner thread");
            tx
        })
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    sender.send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A process started by the harness, in its own process group; dropping it kills the group.
#[derive(Debug)]
pub struct Process {
    label: String,
    child: Child,
    log: Option<PathBuf>,
    reaped: Option<ExitStatus>,
}

impl Process {
    /// Spawns `cmd` as the leader of a new process group, from the spawner thread. Build `cmd`
    /// with [`tied`] so that it also dies with the test process.
    pub fn spawn(label: &str, mut cmd: Command, log: Option<PathBuf>) -> std::io::Result<Process> {
        cmd.process_group(0);
        let child = spawn_from_spawner_thread(cmd)?;
        Ok(Process {
            label: label.to_string(),
            child,
            log,
            reaped: None,
        })
    }

    /// The process id, which is also its process group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// `/proc/<pid>/<file>`, empty once the process is gone.
    pub fn proc_file(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.id())).unwrap_or_default()
    }

    /// A `/proc/<pid>/status` figure given in kiB (`field` with its colon, e.g. `VmHWM:`), as
    /// MiB; 0 when absent.
    pub fn status_mib(&self, field: &str) -> f64 {
        self.proc_file("status")
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// Its CPU time so far (utime + stime), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        stat_cpu_seconds(&self.proc_file("stat"))
    }

    /// The child, e.g. to take a piped stdout. Waiting on it directly is fine; signal through
    /// [`Process::signal`] so the whole group gets it.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }

    /// Where its stdout and stderr go, when the harness chose the file.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Its log so far (empty when it has none).
    pub fn log(&self) -> String {
        self.log
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `KILL`, `HUP`, `STOP`, `CONT`, ...) to the whole process group.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.id())])
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -s {signal} of group {} failed",
                self.id()
            )))
        }
    }

    /// SIGKILL to the group, and reap.
    pub fn kill(&mut self) {
        self.stop(Duration::ZERO);
    }

    /// `Some(description with the log's tail)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.exit_status()?;
        let tail = self.log_path().map(|p| log_tail(p, 30)).unwrap_or_default();
        Some(format!(
            "{} exited ({status}); its last lines:\n{tail}",
            self.label
        ))
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL; reaps it.
    /// A process that has exited already is left alone: once reaped its pid may be reused, so
    /// its group is not signalled any more (the topology's namespace sweep gets stragglers).
    pub fn stop(&mut self, grace: Duration) {
        if self.exit_status().is_some() {
            return;
        }
        if !grace.is_zero() {
            // Failing means the group is gone already.
            let _ = self.signal("TERM");
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                // Peek without reaping, so the pid (the group id) stays ours.
                if self.leader_exited() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The leader is not reaped yet, so its pid still names our group: descendants that
        // outlive it get SIGKILL too.
        let _ = self.signal("KILL");
        let _ = self.child.kill();
        self.reaped = self.child.wait().ok();
    }

    /// True when the leader has exited (a zombie counts), without reaping it.
    fn leader_exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.id()))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
            })
            .is_none_or(|state| state == "Z" || state == "X")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// This process's own CPU time so far (utime + stime of all its threads), in seconds.
pub fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime of a `/proc/<pid>/stat` text, in seconds; 0 when unreadable.
fn stat_cpu_seconds(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    // After the command: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / clock_ticks()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_cpu_time_and_resident_set() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
        ]);
        let mut p = Process::spawn("busy", cmd, None).expect("sh runs");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            p.status_mib("VmHWM:") > 0.0,
            "a live process has a peak RSS"
        );
        assert!(p.cpu_seconds() > 0.0, "the busy loop used CPU time");
        assert_eq!(p.status_mib("NoSuchField:"), 0.0);
        p.stop(Duration::ZERO);
    }
}
