//! Running the tools the harness drives (`ip`, `sysctl`, `kill`, routers) and owning the
//! processes it starts, each in its own process group so a stop takes its children too.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Error, Result};

/// The command line as text, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion and returns its output, whatever its exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: describe(cmd),
            source,
        })
}

/// Runs `cmd` and returns its stdout; a non-zero exit is an error carrying stderr.
pub(crate) fn checked(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if !out.status.success() {
        return Err(Error::Command {
            command: describe(cmd),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `argv[0] argv[1..]`, checked.
pub(crate) fn run(argv: &[&str]) -> Result<String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Invalid("empty command".into()))?;
    checked(Command::new(program).args(args))
}

/// Feeds `lines` to one `ip [-n ns] -batch -`, so building a topology costs a few processes
/// rather than one per link and address. Stops at the first failing line.
pub(crate) fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<()> {
    use std::io::Write;
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: describe(&cmd),
        source,
    })?;
    let script = lines.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|source| Error::Io {
                what: "writing an ip batch".into(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        command: describe(&cmd),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{} <<EOF\n{script}EOF", describe(&cmd)),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// `sysctl -w` inside a namespace.
pub(crate) fn sysctl(ns: &str, settings: &[&str]) -> Result<()> {
    let mut argv = vec!["ip", "netns", "exec", ns, "sysctl", "-q", "-w"];
    argv.extend_from_slice(settings);
    run(&argv).map(drop)
}

/// `ip netns exec <ns> <program>`, in a process group of its own, stdin closed.
pub fn in_namespace(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// Rebuilds `cmd` (program, arguments, environment, working directory) to run inside `ns`.
/// Standard streams cannot be read back from a `Command`: the caller passes them again.
pub(crate) fn rebuild_in_namespace(ns: &str, cmd: &Command) -> Command {
    let mut inner = in_namespace(ns, cmd.get_program());
    inner.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => inner.env(key, value),
            None => inner.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        inner.current_dir(dir);
    }
    inner
}

/// Opens a log file for a child's stdout and stderr.
pub(crate) fn log_stdio(path: &Path) -> Result<(Stdio, Stdio)> {
    let open = |p: &Path| {
        File::options()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|source| Error::Io {
                what: format!("opening {}", p.display()),
                source,
            })
    };
    let out = open(path)?;
    let err = out.try_clone().map_err(|source| Error::Io {
        what: format!("cloning {}", path.display()),
        source,
    })?;
    Ok((Stdio::from(out), Stdio::from(err)))
}

/// Sends `signal` (a name like `TERM` or `KILL`) to the process group `pgid`.
pub(crate) fn signal_group(pgid: u32, signal: &str) -> Result<()> {
    run(&["kill", "-s", signal, "--", &format!("-{pgid}")]).map(drop)
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
    /// Spawns `cmd` as the leader of a new process group.
    pub(crate) fn spawn(label: &str, cmd: &mut Command, log: Option<PathBuf>) -> Result<Process> {
        let child = cmd
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: describe(cmd),
                source,
            })?;
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
    pub fn signal(&self, signal: &str) -> Result<()> {
        signal_group(self.id(), signal)
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

/// Polls `probe` every 100 ms until it yields a value or `timeout` passes. An `Err` from the
/// probe counts as "not yet" (routers refuse commands while they start); the last one is in the
/// timeout error.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last_error = String::new();
    loop {
        match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = e.to_string(),
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                detail: if last_error.is_empty() {
                    String::new()
                } else {
                    format!("last error: {last_error}")
                },
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
