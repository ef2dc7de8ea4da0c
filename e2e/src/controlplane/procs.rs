//! The control plane's run directories (cleaned after a crashed run) and free ports.

use std::path::{Path, PathBuf};

const RUN_ROOT: &str = "/tmp/ferrolb-e2e";
const TMPFS_ROOT: &str = "/dev/shm/ferrolb-e2e";

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
