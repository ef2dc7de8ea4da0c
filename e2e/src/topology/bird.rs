//! BIRD 2 instances inside node namespaces, each with its own config file, control socket and
//! log in the topology's scratch dir, so any number run side by side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::exec::{self, Process, in_namespace, wait_for};
use super::{Error, Result};

/// A running `bird -f` in a node namespace; dropping it kills it.
#[derive(Debug)]
pub struct BirdHandle {
    process: Process,
    config: PathBuf,
    socket: PathBuf,
}

impl BirdHandle {
    pub(crate) fn start(ns: &str, dir: &Path, config: &str) -> Result<BirdHandle> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let config_path = dir.join("bird.conf");
        write(&config_path, config)?;
        exec::checked(Command::new("bird").arg("-p").arg("-c").arg(&config_path))?;
        let socket = dir.join("bird.ctl");
        let log = dir.join("bird.log");
        let (out, err) = exec::log_stdio(&log)?;
        let mut cmd = in_namespace(ns, "bird");
        cmd.arg("-f")
            .arg("-c")
            .arg(&config_path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdout(out)
            .stderr(err);
        let mut process = super::exec::spawn(&format!("bird in {ns}"), cmd, Some(log))?;
        let ready = wait_for(
            "BIRD to answer on its control socket",
            Duration::from_secs(10),
            || {
                if let Some(status) = process.exit_status() {
                    return Err(Error::Exited {
                        what: format!("bird in {ns}"),
                        status: status.to_string(),
                        log: process.log(),
                    });
                }
                Ok(birdc(&socket, &["show", "status"]).is_ok().then_some(()))
            },
        );
        if let Err(e) = ready {
            return Err(match process.exit_status() {
                Some(status) => Error::Exited {
                    what: format!("bird in {ns}"),
                    status: status.to_string(),
                    log: process.log(),
                },
                None => e,
            });
        }
        Ok(BirdHandle {
            process,
            config: config_path,
            socket,
        })
    }

    /// `birdc -s <socket> <args>`: its output, with the `BIRD x.y ready.` banner.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        birdc(&self.socket, args)
    }

    /// The state and info columns of `show protocols` for protocol `name`, e.g.
    /// `("up", "Established")`; `None` when BIRD has no such protocol.
    pub fn protocol(&self, name: &str) -> Result<Option<(String, String)>> {
        let out = self.birdc(&["show", "protocols", name])?;
        Ok(out.lines().find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Name Proto Table State Since Info...
            (cols.first() == Some(&name) && cols.len() >= 5).then(|| {
                (
                    cols[3].to_string(),
                    cols.get(5..).map(|c| c.join(" ")).unwrap_or_default(),
                )
            })
        }))
    }

    /// Replaces the config file and runs `birdc configure`; a config BIRD rejects is an error
    /// (and BIRD keeps the old one).
    pub fn configure(&self, config: &str) -> Result<()> {
        write(&self.config, config)?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(Error::Command {
                command: "birdc configure".into(),
                status: "rejected".into(),
                output: out,
            })
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// BIRD's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.process.stop(grace);
    }
}

fn birdc(socket: &Path, args: &[&str]) -> Result<String> {
    let out = exec::checked(Command::new("birdc").arg("-s").arg(socket).args(args))?;
    if out.contains("Unable to connect to server") {
        return Err(Error::Command {
            command: format!("birdc -s {} {}", socket.display(), args.join(" ")),
            status: "no server".into(),
            output: out,
        });
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}
