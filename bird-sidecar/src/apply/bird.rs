//! The only code that talks to BIRD: validate (`bird -p`), swap the config file atomically,
//! and drive the running BIRD through `birdc`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::timeout;

use crate::error::{Error, Result};
use crate::status::{Protocol, parse_protocols};

/// Where BIRD's binaries, config and control socket are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdPaths {
    pub bird: PathBuf,
    pub birdc: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl BirdPaths {
    /// The Contracts' paths with `bird` and `birdc` from `$PATH`.
    pub fn contract() -> Self {
        use ferrolb_api::contracts::bird::{CONFIG_PATH, CONTROL_SOCKET};
        BirdPaths {
            bird: "bird".into(),
            birdc: "birdc".into(),
            config: CONFIG_PATH.into(),
            socket: CONTROL_SOCKET.into(),
        }
    }
}

/// How long one `bird -p` or `birdc` call may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// BIRD as the sidecar drives it. Every `bird -p` and `birdc` call is bounded by `timeout`:
/// a BIRD that stops answering must not stop the sidecar's loop.
#[derive(Debug, Clone)]
pub struct Bird {
    paths: BirdPaths,
    timeout: Duration,
}

impl Bird {
    pub fn new(paths: BirdPaths) -> Self {
        Bird::with_timeout(paths, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(paths: BirdPaths, timeout: Duration) -> Self {
        Bird { paths, timeout }
    }

    pub fn paths(&self) -> &BirdPaths {
        &self.paths
    }

    /// Validates `config` with `bird -p` and, only if BIRD accepts it, renames it over the
    /// config path (same directory, so the swap is atomic). A refused config leaves the old
    /// file untouched and comes back as [`Error::Rejected`] with BIRD's message. For the first
    /// config, before BIRD runs; a running BIRD gets [`Bird::apply`].
    pub async fn install(&self, config: &str) -> Result<()> {
        let staged = self.stage(config).await?;
        staged.commit().await
    }

    /// Has the running BIRD load `config`: validated in a temp file beside the config path,
    /// loaded from that file (`birdc configure "<temp>"`), and renamed over the config path
    /// only once BIRD has loaded it. So the config file always holds the last config BIRD
    /// accepted, and a BIRD restarted by the supervisor starts from it, never from one BIRD
    /// refused ([`Error::Refused`]) or never answered about ([`Error::Timeout`]).
    pub async fn apply(&self, config: &str) -> Result<()> {
        let staged = self.stage(config).await?;
        match self.configure_from(&staged.tmp).await {
            Ok(()) => staged.commit().await,
            Err(e) => {
                staged.discard().await;
                Err(e)
            }
        }
    }

    /// Writes `config` to a temp file beside the config path and validates it there.
    async fn stage(&self, config: &str) -> Result<Staged> {
        let target = self.paths.config.clone();
        let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io("creating", &dir))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bird.conf".into());
        let staged = Staged {
            tmp: dir.join(format!(".{name}.{}.tmp", std::process::id())),
            target,
        };
        if let Err(e) = tokio::fs::write(&staged.tmp, config).await {
            staged.discard().await;
            return Err(io("writing", &staged.tmp)(e));
        }
        if let Err(e) = self.validate(&staged.tmp).await {
            staged.discard().await;
            return Err(e);
        }
        Ok(staged)
    }

    /// `bird -p -c <path>`: parse only.
    pub async fn validate(&self, path: &Path) -> Result<()> {
        let mut cmd = Command::new(&self.paths.bird);
        cmd.arg("-p").arg("-c").arg(path);
        let out = self
            .bounded(cmd, &self.paths.bird, &format!("-p -c {}", path.display()))
            .await?;
        if out.status.success() {
            return Ok(());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Err(Error::Rejected(text.trim().to_string()))
    }

    /// `birdc configure`: BIRD re-reads its config file.
    pub async fn configure(&self) -> Result<()> {
        configured(self.birdc(&["configure"]).await?)
    }

    /// `birdc configure "<path>"`: BIRD loads `path` instead of its config file (which it
    /// keeps as the file it reads on the next start or plain `configure`).
    async fn configure_from(&self, path: &Path) -> Result<()> {
        let path = path.to_string_lossy();
        // BIRD's strings have no escapes: a quote or newline cannot be passed.
        if path.contains(['"', '\n']) {
            return Err(Error::Refused(format!(
                "the config path {path:?} cannot be quoted for birdc"
            )));
        }
        configured(self.birdc(&["configure", &format!("\"{path}\"")]).await?)
    }

    /// `birdc show protocols all`, parsed.
    pub async fn protocols(&self) -> Result<Vec<Protocol>> {
        Ok(parse_protocols(
            &self.birdc(&["show", "protocols", "all"]).await?,
        ))
    }

    /// `birdc disable <protocol>`: its routes are withdrawn.
    pub async fn disable(&self, protocol: &str) -> Result<()> {
        let out = self.birdc(&["disable", protocol]).await?;
        if out.contains(&format!("{protocol}: disabled"))
            || out.contains(&format!("{protocol}: already disabled"))
        {
            return Ok(());
        }
        Err(Error::Birdc {
            command: format!("disable {protocol}"),
            output: out,
        })
    }

    /// True when BIRD answers on its control socket.
    pub async fn answers(&self) -> bool {
        self.birdc(&["show", "status"]).await.is_ok()
    }

    /// `birdc -s <socket> <args>`; a non-zero exit (BIRD down, command refused) is an error.
    pub async fn birdc(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.paths.birdc);
        cmd.arg("-s").arg(&self.paths.socket).args(args);
        let out = self
            .bounded(cmd, &self.paths.birdc, &args.join(" "))
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && !text.contains("Unable to connect to server") {
            Ok(text)
        } else {
            Err(Error::Birdc {
                command: args.join(" "),
                output: text.trim().to_string(),
            })
        }
    }

    /// Runs `cmd` to completion within the timeout; on timeout the child is killed (dropping
    /// the output future drops the child, and `kill_on_drop` sends SIGKILL).
    async fn bounded(&self, mut cmd: Command, program: &Path, args: &str) -> Result<Output> {
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        let command = format!("{} {args}", program.display());
        match timeout(self.timeout, cmd.output()).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(source)) => Err(Error::Spawn {
                program: program.display().to_string(),
                source,
            }),
            Err(_) => {
                tracing::error!(
                    command = %command,
                    after = ?self.timeout,
                    "BIRD did not answer in time; the command was killed and counts as failed"
                );
                Err(Error::Timeout {
                    command,
                    after: self.timeout,
                })
            }
        }
    }
}

/// A validated config in its temp file, not yet the config BIRD reads on start.
struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

impl Staged {
    /// Renames the temp file over the config path.
    async fn commit(self) -> Result<()> {
        if let Err(e) = tokio::fs::rename(&self.tmp, &self.target).await {
            self.discard().await;
            return Err(io("renaming over", &self.target)(e));
        }
        Ok(())
    }

    async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

/// Whether a `birdc configure` reply means BIRD loads the config. Any other reply is BIRD
/// answering that it does not (a parse error, "shutting down"): permanent for this config.
fn configured(out: String) -> Result<()> {
    // "Reconfiguration already in progress, queueing new config" also means it will load:
    // BIRD has parsed the file by the time it answers.
    if out.contains("Reconfigured")
        || out.contains("Reconfiguration in progress")
        || out.contains("queueing")
    {
        return Ok(());
    }
    Err(Error::Refused(out.trim().to_string()))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}
