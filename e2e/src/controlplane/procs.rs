//! Child processes that die with the test process, their run directories, free ports.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;

const RUN_ROOT: &str = "/tmp/ferrolb-e2e";
const TMPFS_ROOT: &str = "/dev/shm/ferrolb-e2e";

/// A child process whose output goes to `<dir>/<name>.log`; killed on drop.
pub struct Process {
    name: String,
    log: PathBuf,
    child: Child,
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` under `setpriv --pdeathsig KILL`, from one thread that lives as long as the
/// process: the kernel sends the death signal when the *thread* that forked the child exits,
/// and test threads end with their tests. `Command` does not expose its stdio, so the output
/// goes where `stdout` and `stderr` say.
pub fn spawn_tied(cmd: &Command, stdout: Stdio, stderr: Stdio) -> std::io::Result<Child> {
    static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);
    let sender = {
        let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
        guard
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
            .clone()
    };
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((wrapped, reply_tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

impl Process {
    /// Starts `program args` with output to `<dir>/<name>.log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(dir);
        Self::spawn_cmd(name, cmd, out, log)
    }

    /// Starts a prepared command with output to `log`.
    pub fn spawn_cmd(name: &str, cmd: Command, out: File, log: PathBuf) -> anyhow::Result<Self> {
        let child = spawn_tied(&cmd, out.try_clone()?.into(), out.into())
            .map_err(|e| anyhow::anyhow!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            log,
            child,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful stop), without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, up to `timeout`; `true` when it did.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// `Some(description with the log's tail)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        Some(format!(
            "{} exited ({status}); last lines of {}:\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 30)
        ))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A new run directory `/tmp/ferrolb-e2e/cp-<pid>-<n>`.
pub fn run_dir() -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(RUN_ROOT).join(format!(
        "cp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The tmpfs twin of a run directory, for etcd's data.
pub fn tmpfs_dir(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = run_dir.file_name().expect("run dirs have a name");
    let dir = Path::new(TMPFS_ROOT).join(name).join("etcd");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn remove_run_dir(dir: &Path) {
    if let Some(name) = dir.file_name() {
        let _ = std::fs::remove_dir_all(Path::new(TMPFS_ROOT).join(name));
    }
    if std::env::var_os("FERROLB_E2E_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes run directories of test processes that no longer exist (a crashed earlier run).
pub fn cleanup_leftovers() {
    for root in [RUN_ROOT, TMPFS_ROOT] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let pid = name
                .strip_prefix("cp-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A TCP port free on loopback right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
