//! Who owns which names: a topology claims a slot (and so its name prefix and management
//! addresses) with a PID file under `/run/ferrolb-e2e/`, and leftovers of dead owners are removed.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::exec::run;
use super::{Error, MGMT_BRIDGE, Result};

/// Where PID files and the lock live.
pub const RUN_DIR: &str = "/run/ferrolb-e2e";

/// What every name the harness creates starts with.
pub const NAME_PREFIX: &str = "flb";

/// Temp dirs are `<tmp>/ferrolb-e2e-<prefix>`.
const TMP_DIR_PREFIX: &str = "ferrolb-e2e-";

/// A claimed slot: the PID file is removed when this is dropped, after everything else.
#[derive(Debug)]
pub(crate) struct Claim {
    pub slot: u8,
    pub prefix: String,
    pid_file: PathBuf,
    owner: Owner,
}

impl Claim {
    /// False when the PID file no longer names this process (removed by hand, or taken over):
    /// then the names are not ours to delete any more.
    pub fn still_ours(&self) -> bool {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| Owner::parse(&t))
            == Some(self.owner)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.still_ours() {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.pid_file)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("topology: removing {}: {e}", self.pid_file.display());
        }
    }
}

/// The process that owns a slot: pid plus start time, so a reused pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
}

impl Owner {
    fn me() -> Result<Owner> {
        let pid = std::process::id();
        let start =
            start_time(pid).ok_or_else(|| Error::Invalid("cannot read /proc/self/stat".into()))?;
        Ok(Owner { pid, start })
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        Some(Owner {
            pid: words.next()?.parse().ok()?,
            start: words.next()?.parse().ok()?,
        })
    }

    fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The slot of a name the harness made (`flb` + two hex digits + ...), if it is one.
pub(crate) fn slot_of(name: &str) -> Option<u8> {
    let hex = name.strip_prefix(NAME_PREFIX)?.get(..2)?;
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u8::from_str_radix(hex, 16)
        .ok()
        .filter(|s| *s != 0 && *s != 0xff)
}

/// The per-topology scratch directory.
pub(crate) fn tmp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{TMP_DIR_PREFIX}{prefix}"))
}

/// Holds the cross-process lock on `RUN_DIR/lock` while alive.
struct Lock(#[allow(dead_code)] File);

fn lock() -> Result<Lock> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    std::fs::create_dir_all(RUN_DIR).map_err(io("creating /run/ferrolb-e2e"))?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(RUN_DIR).join("lock"))
        .map_err(io("opening the lock file"))?;
    file.lock().map_err(io("locking /run/ferrolb-e2e/lock"))?;
    Ok(Lock(file))
}

/// What the PID files say.
struct PidFiles {
    /// Slots whose owner is alive.
    live: BTreeSet<u8>,
    /// (prefix, path) of PID files whose owner is dead.
    dead: Vec<(String, PathBuf)>,
}

fn scan_pid_files() -> Result<PidFiles> {
    let mut live = BTreeSet::new();
    let mut dead = Vec::new();
    let entries = std::fs::read_dir(RUN_DIR).map_err(|source| Error::Io {
        what: "listing /run/ferrolb-e2e".into(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(prefix) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
            .map(str::to_string)
        else {
            continue;
        };
        let Some(slot) = slot_of(&prefix) else {
            continue;
        };
        let owner = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Owner::parse(&t));
        if owner.is_some_and(Owner::alive) {
            live.insert(slot);
        } else {
            dead.push((prefix, path));
        }
    }
    Ok(PidFiles { live, dead })
}

/// Removes namespaces, host links, temp dirs and PID files whose names start with `prefix`
/// (`"flb"` for all of them) and whose owning process is dead, and the processes left in those
/// namespaces. Live topologies of other test processes are left alone. Returns what it removed.
pub fn cleanup_leftovers(prefix: &str) -> Result<Vec<String>> {
    let _lock = lock()?;
    cleanup_locked(prefix)
}

fn cleanup_locked(prefix: &str) -> Result<Vec<String>> {
    let PidFiles { live, dead } = scan_pid_files()?;
    let ours = |name: &str| {
        name.starts_with(prefix)
            && name != MGMT_BRIDGE
            && slot_of(name).is_some_and(|s| !live.contains(&s))
    };
    let mut removed = Vec::new();

    let namespaces: Vec<String> = list_namespaces()?.into_iter().filter(|n| ours(n)).collect();
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(TMP_DIR_PREFIX).is_some_and(ours) {
            super::rooted::kill_processes_under(&entry.path());
        }
    }
    for ns in &namespaces {
        kill_namespace_processes(ns);
    }
    for link in list_host_links()?.into_iter().filter(|n| ours(n)) {
        if delete_link(&link) {
            removed.push(format!("link {link}"));
        }
    }
    for ns in namespaces {
        match run(&["ip", "netns", "del", &ns]) {
            Ok(_) => removed.push(format!("netns {ns}")),
            Err(e) => eprintln!("topology: cleanup: {e}"),
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(p) = name.strip_prefix(TMP_DIR_PREFIX)
                && ours(p)
                && super::rooted::release_dir(&entry.path()).is_ok()
            {
                removed.push(format!("dir {}", entry.path().display()));
            }
        }
    }
    for (name, path) in dead {
        if name.starts_with(prefix) && std::fs::remove_file(&path).is_ok() {
            removed.push(format!("pid file {}", path.display()));
        }
    }
    if !removed.is_empty() {
        eprintln!(
            "topology: removed leftovers of dead runs: {}",
            removed.join(", ")
        );
    }
    Ok(removed)
}

/// Waits until the process that claimed `prefix` is gone, then removes what it left (see
/// [`cleanup_leftovers`]). Run by `ferrolb-e2e-reaper`, which a test process starts beside a
/// world it shares between tests: such a world lives in a static and is never dropped, and its
/// containers do not die with the test process.
pub fn reap_after_owner(prefix: &str) -> Result<Vec<String>> {
    let pid_file = Path::new(RUN_DIR).join(format!("{prefix}.pid"));
    loop {
        let owner = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| Owner::parse(&t));
        if !owner.is_some_and(Owner::alive) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    cleanup_leftovers(prefix)
}

/// Removes leftovers of dead runs, then claims a free slot for `tag` and writes its PID file.
pub(crate) fn claim(tag: &str) -> Result<Claim> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let _lock = lock()?;
    cleanup_locked(NAME_PREFIX)?;
    let live = scan_pid_files()?.live;
    let me = Owner::me()?;
    // Start the search at a different slot per topology so a slot just given back is not
    // reused at once (the host may still cache the old neighbours).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    let seed = me
        .pid
        .wrapping_mul(31)
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed) * 7)
        ^ nanos;
    for k in 0..254u32 {
        let slot = u8::try_from((seed.wrapping_add(k)) % 254 + 1).expect("1..=254 fits a u8");
        if live.contains(&slot) {
            continue;
        }
        let prefix = format!("{NAME_PREFIX}{slot:02x}{tag}");
        let pid_file = Path::new(RUN_DIR).join(format!("{prefix}.pid"));
        let created = File::options().write(true).create_new(true).open(&pid_file);
        match created {
            Ok(mut f) => {
                use std::io::Write;
                writeln!(f, "{} {}", me.pid, me.start).map_err(|source| Error::Io {
                    what: format!("writing {}", pid_file.display()),
                    source,
                })?;
                return Ok(Claim {
                    slot,
                    prefix,
                    pid_file,
                    owner: me,
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    what: format!("creating {}", pid_file.display()),
                    source,
                });
            }
        }
    }
    Err(Error::NoSlot)
}

/// Network namespaces by name (`ip netns list`).
pub(crate) fn list_namespaces() -> Result<Vec<String>> {
    Ok(run(&["ip", "netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Links of the host (root) namespace by name.
pub(crate) fn list_host_links() -> Result<Vec<String>> {
    Ok(run(&["ip", "-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect())
}

/// Deletes a host link; `false` when it was not there.
pub(crate) fn delete_link(name: &str) -> bool {
    run(&["ip", "link", "del", "dev", name]).is_ok()
}

/// SIGKILLs every process in `ns` until none is left (bounded), and removes the scratch dirs
/// FRR daemons keep under /var/tmp/frr/<daemon>.<pid> (they remove them only on a clean exit).
pub(crate) fn kill_namespace_processes(ns: &str) {
    for _ in 0..50 {
        let pids: Vec<String> = match run(&["ip", "netns", "pids", ns]) {
            Ok(out) => out.split_whitespace().map(str::to_string).collect(),
            Err(_) => return,
        };
        if pids.is_empty() {
            return;
        }
        let comms: Vec<(String, String)> = pids
            .iter()
            .filter_map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
                Some((comm.trim().to_string(), p.clone()))
            })
            .collect();
        let mut argv = vec!["kill", "-s", "KILL", "--"];
        argv.extend(pids.iter().map(String::as_str));
        let _ = run(&argv);
        for (comm, pid) in comms {
            let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{comm}.{pid}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("topology: processes still left in {ns} after repeated SIGKILL");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_of_reads_only_harness_names() {
        let cases = [
            ("namespace", "flb1at1-n0", Some(0x1a)),
            ("host link", "flb0cm12", Some(0x0c)),
            ("management bridge", "flbmgmt0", None),
            ("slot zero is never handed out", "flb00-lan", None),
            ("upper-case hex is not ours", "flb1A-lan", None),
            ("someone else's", "eth0", None),
            ("too short", "flb1", None),
        ];
        for (name, input, want) in cases {
            assert_eq!(slot_of(input), want, "{name}");
        }
    }

    #[test]
    fn owner_round_trips_and_a_wrong_start_time_is_dead() {
        let me = Owner::me().expect("own /proc entry");
        assert_eq!(
            Owner::parse(&format!("{} {}\n", me.pid, me.start)),
            Some(me)
        );
        assert!(me.alive());
        assert!(
            !Owner {
                pid: me.pid,
                start: me.start + 1
            }
            .alive()
        );
    }
}
