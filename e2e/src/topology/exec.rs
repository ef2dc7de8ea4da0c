//! Running the tools the harness drives (`ip`, `sysctl`, routers) inside the namespaces.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Error, Result};
pub use crate::process::Process;

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

/// `ip netns exec <ns> <program>`, tied to the test process (it dies with it), stdin closed.
pub fn in_namespace(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = crate::process::tied("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .stdin(Stdio::null());
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

/// Starts `cmd` as a [`Process`] (own process group, tied to the test process).
pub(crate) fn spawn(label: &str, cmd: Command, log: Option<std::path::PathBuf>) -> Result<Process> {
    let command = describe(&cmd);
    Process::spawn(label, cmd, log).map_err(|source| Error::Spawn { command, source })
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
