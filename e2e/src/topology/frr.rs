//! FRR as the ToR: zebra, bgpd, bfdd (and ospfd) from Debian's package, run inside the ToR
//! namespace with every path (config, PID file, vty and zserv sockets, bfdd control socket) in
//! the topology's scratch dir, so instances never meet each other or /etc/frr and /var/run/frr.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::exec::{self, Process, in_namespace, wait_for};
use super::{Error, Result, TorConfig};

const FRR_BIN: &str = "/usr/lib/frr";
const FRR_USER: &str = "frr";

/// FRR daemons running in the ToR namespace; dropping it stops them.
///
/// FRR 8.4 registers a peer's BFD session without a local address and re-registers it with one
/// when BGP first comes up, which restarts the BFD session: a BFD-enabled peer sees one BGP flap
/// about a second after its first Established. Wait for a state (see [`super::wait_for`]) rather
/// than checking it once.
#[derive(Debug)]
pub struct Frr {
    dir: PathBuf,
    daemons: Vec<Process>,
}

impl Frr {
    pub(crate) fn start(ns: &str, dir: &Path, config: &TorConfig) -> Result<Frr> {
        let io = |what: String| move |source| Error::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut names = vec!["zebra", "bgpd", "bfdd"];
        if config.ospf {
            names.push("ospfd");
        }
        // Daemons get empty configs (so they never look in /etc/frr); vtysh applies frr.conf.
        for name in names.iter().copied().chain(["vtysh"]) {
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, "").map_err(io(format!("writing {}", path.display())))?;
        }
        exec::checked(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{FRR_USER}:{FRR_USER}"))
                .arg(dir),
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "{e}\n(is FRR installed? run e2e/scripts/install-packages.sh)"
            ))
        })?;

        let mut frr = Frr {
            dir: dir.to_path_buf(),
            daemons: Vec::new(),
        };
        for name in &names {
            frr.start_daemon(ns, name)?;
        }
        frr.wait_for_zebra_clients(&names)?;
        frr.configure(&config.render())?;
        Ok(frr)
    }

    fn start_daemon(&mut self, ns: &str, name: &str) -> Result<()> {
        let dir = &self.dir;
        let log = dir.join(format!("{name}.log"));
        let (out, err) = exec::log_stdio(&log)?;
        let mut cmd = in_namespace(ns, Path::new(FRR_BIN).join(name));
        cmd.args(["-u", FRR_USER, "-g", FRR_USER, "-P", "0", "--log", "stdout"])
            .arg("-f")
            .arg(dir.join(format!("{name}.conf")))
            .arg("-i")
            .arg(dir.join(format!("{name}.pid")))
            .arg("--vty_socket")
            .arg(dir)
            .arg("-z")
            .arg(dir.join("zserv.api"))
            .stdout(out)
            .stderr(err);
        if name == "bfdd" {
            cmd.arg("--bfdctl").arg(dir.join("bfdd.sock"));
        }
        let mut process = super::exec::spawn(&format!("{name} in {ns}"), cmd, Some(log))?;
        let vty = dir.join(format!("{name}.vty"));
        let ready = wait_for(
            &format!("{name} to open {}", vty.display()),
            Duration::from_secs(10),
            || {
                if let Some(status) = process.exit_status() {
                    return Err(Error::Exited {
                        what: name.to_string(),
                        status: status.to_string(),
                        log: process.log(),
                    });
                }
                Ok(vty.exists().then_some(()))
            },
        );
        if let Some(status) = process.exit_status() {
            return Err(Error::Exited {
                what: name.to_string(),
                status: status.to_string(),
                log: process.log(),
            });
        }
        self.daemons.push(process);
        ready
    }

    /// Waits until every daemon has its zebra session, so the config lands on daemons that
    /// already know the namespace's VRF and interfaces (bgpd cannot start peers before).
    fn wait_for_zebra_clients(&self, names: &[&str]) -> Result<()> {
        let clients: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix('d'))
            .filter(|n| *n != "zebra")
            .collect();
        wait_for(
            "FRR daemons to connect to zebra",
            Duration::from_secs(10),
            || {
                let out = self.vtysh(&["show zebra client summary"])?;
                let connected =
                    |c: &&str| out.lines().any(|l| l.split_whitespace().next() == Some(*c));
                Ok(clients.iter().all(connected).then_some(()))
            },
        )
    }

    /// Runs each of `commands` (one full command per element, e.g. `"show ip route"`) through
    /// vtysh against this instance and returns the output.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        let mut cmd = self.vtysh_command();
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        exec::checked(&mut cmd)
    }

    /// One `... json` show command, parsed.
    pub fn vtysh_json(&self, command: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(&[command])?;
        serde_json::from_str(&out).map_err(|e| Error::Command {
            command: format!("vtysh -c '{command}'"),
            status: format!("not JSON: {e}"),
            output: out,
        })
    }

    /// Applies frr.conf text (as from [`super::render_frr_conf`]) on top of the running config.
    pub fn configure(&self, frr_conf: &str) -> Result<()> {
        let path = self.dir.join("frr.conf");
        std::fs::write(&path, frr_conf).map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        exec::checked(self.vtysh_command().arg("-f").arg(&path)).map(drop)
    }

    fn vtysh_command(&self) -> Command {
        let mut cmd = Command::new("vtysh");
        cmd.arg("--vty_socket")
            .arg(&self.dir)
            .arg("--config_dir")
            .arg(&self.dir)
            .env("VTYSH_PAGER", "cat");
        cmd
    }

    /// The BGP state of `peer` (`Established`, `Active`, ...), `None` when not configured.
    pub fn bgp_state(&self, peer: IpAddr) -> Result<Option<String>> {
        let v = self.vtysh_json(&format!("show bgp neighbors {peer} json"))?;
        Ok(v.get(peer.to_string())
            .and_then(|n| n.get("bgpState"))
            .and_then(|s| s.as_str())
            .map(str::to_string))
    }

    /// The BFD status of the session to `peer` (`up`, `down`, `init`), `None` when there is none.
    pub fn bfd_status(&self, peer: IpAddr) -> Result<Option<String>> {
        let v = self.vtysh_json("show bfd peers json")?;
        Ok(v.as_array().and_then(|peers| {
            peers
                .iter()
                .find(|p| {
                    p.get("peer")
                        .and_then(|a| a.as_str())
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        == Some(peer)
                })
                .and_then(|p| p.get("status"))
                .and_then(|s| s.as_str())
                .map(str::to_string)
        }))
    }

    /// Next hops of the selected, installed route for exactly `prefix` (e.g. `203.0.113.10/32`);
    /// empty when the ToR has none. IPv6 BGP next hops are the nodes' link-local addresses.
    pub fn route_nexthops(&self, prefix: &str) -> Result<Vec<IpAddr>> {
        let family = if prefix.contains(':') { "ipv6" } else { "ip" };
        let v = self.vtysh_json(&format!("show {family} route {prefix} json"))?;
        let Some(routes) = v.get(prefix).and_then(|r| r.as_array()) else {
            return Ok(Vec::new());
        };
        Ok(routes
            .iter()
            .filter(|r| r.get("selected").and_then(|s| s.as_bool()) == Some(true))
            .flat_map(|r| {
                r.get("nexthops")
                    .and_then(|n| n.as_array())
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|nh| nh.get("fib").and_then(|f| f.as_bool()) == Some(true))
            .filter_map(|nh| {
                nh.get("ip")
                    .and_then(|ip| ip.as_str())
                    .and_then(|ip| ip.parse().ok())
            })
            .collect())
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for d in &self.daemons {
            let _ = writeln!(all, "--- {} ---\n{}", d.label(), d.log());
        }
        all
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the daemons (SIGTERM, so they clean up after themselves; SIGKILL after 2 s).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for d in &self.daemons {
            let _ = d.signal("TERM");
        }
        for d in self.daemons.iter_mut().rev() {
            d.stop(Duration::from_secs(2));
        }
        self.daemons.clear();
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.shutdown();
    }
}
