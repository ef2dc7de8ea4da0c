//! The only code that talks to BIRD: validate (`bird -p`), swap the config file atomically,
//! and drive the running BIRD through `birdc`.

use std::path::{Path, PathBuf};

use tokio::process::Command;

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

/// BIRD as the sidecar drives it.
#[derive(Debug, Clone)]
pub struct Bird {
    paths: BirdPaths,
}

impl Bird {
    pub fn new(paths: BirdPaths) -> Self {
        Bird { paths }
    }

    pub fn paths(&self) -> &BirdPaths {
        &self.paths
    }

    /// Validates `config` with `bird -p` and, only if BIRD accepts it, renames it over the
    /// config path (same directory, so the swap is atomic). A refused config leaves the old
    /// file untouched and comes back as [`Error::Rejected`] with BIRD's message.
    pub async fn install(&self, config: &str) -> Result<()> {
        let target = &self.paths.config;
        let dir = target.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io("creating", dir))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bird.conf".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        tokio::fs::write(&tmp, config)
            .await
            .map_err(io("writing", &tmp))?;
        let checked = self.validate(&tmp).await;
        if let Err(e) = checked {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, target)
            .await
            .map_err(io("renaming over", target))
    }

    /// `bird -p -c <path>`: parse only.
    pub async fn validate(&self, path: &Path) -> Result<()> {
        let out = Command::new(&self.paths.bird)
            .arg("-p")
            .arg("-c")
            .arg(path)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: self.paths.bird.display().to_string(),
                source,
            })?;
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

    /// Installs `config` and has the running BIRD read it.
    pub async fn apply(&self, config: &str) -> Result<()> {
        self.install(config).await?;
        self.configure().await
    }

    /// `birdc configure`: BIRD re-reads its config file.
    pub async fn configure(&self) -> Result<()> {
        let out = self.birdc(&["configure"]).await?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            return Ok(());
        }
        // "Reconfiguration already in progress, queueing new config" also means it will load.
        if out.contains("queueing") {
            return Ok(());
        }
        Err(Error::Birdc {
            command: "configure".into(),
            output: out,
        })
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
        let out = Command::new(&self.paths.birdc)
            .arg("-s")
            .arg(&self.paths.socket)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: self.paths.birdc.display().to_string(),
                source,
            })?;
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
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}
