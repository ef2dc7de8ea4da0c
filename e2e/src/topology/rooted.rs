//! Removing a directory that real nodes used: containers whose root filesystem is mounted under
//! it run in pod namespaces of their own (killing a node namespace's processes does not reach
//! them), and kubelet and containerd leave mounts in it (overlay root filesystems, network
//! namespace files, volume tmpfs and bind mounts). Removing such a directory without first
//! unmounting would follow a bind mount into what it shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// SIGKILLs every process whose root directory or working directory is under `dir`, until none
/// is left (bounded).
pub(crate) fn kill_processes_under(dir: &Path) {
    for _ in 0..50 {
        let pids = processes_under(dir);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // A process that exited meanwhile gives ESRCH: fine.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "topology: processes rooted under {} left after repeated SIGKILL",
        dir.display()
    );
}

fn processes_under(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            ["root", "cwd"].iter().any(|link| {
                std::fs::read_link(format!("/proc/{pid}/{link}")).is_ok_and(|p| p.starts_with(dir))
            }) || root_mounted_from(*pid, dir)
        })
        .collect()
}

/// Whether the process's root filesystem is an overlay whose layers lie under `dir`: a
/// container's root shows as `/` in its own mount namespace, but the overlay's options name
/// the snapshot directories as the host sees them.
fn root_mounted_from(pid: i32, dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return false;
    };
    let needle = format!("={}/", dir.display());
    text.lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .is_some_and(|l| l.contains(&needle))
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Detaches every mount under `dir` (lazily: a mount still busy goes when its last user does).
pub(crate) fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        eprintln!("topology: mounts left under {}: {left:?}", dir.display());
    }
}

/// Kills what runs from `dir`, unmounts what is mounted under it, then removes it; a directory
/// that is not there is fine. Never crosses into a mount it could not detach.
pub(crate) fn release_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    kill_processes_under(dir);
    unmount_under(dir);
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(std::io::Error::other(format!(
            "{} still has mounts under it: {left:?}",
            dir.display()
        )));
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_read_back() {
        let cases = [
            ("plain", "/run/a", "/run/a"),
            ("space", r"/run/a\040b", "/run/a b"),
            ("backslash", r"/run/a\134b", r"/run/a\b"),
            ("not an escape", r"/run/a\x", r"/run/a\x"),
        ];
        for (name, field, want) in cases {
            assert_eq!(unescape(field), want, "{name}");
        }
    }
}
