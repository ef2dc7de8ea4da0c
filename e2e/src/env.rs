//! What a test may assume about the machine: root, network namespaces, the built tools.

use std::path::{Path, PathBuf};
use std::process::Command;

/// True under CI (`CI=true`), where a test that cannot get what it needs must fail, not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns `true` when the test may go on. When `reason` says something is missing, it panics
/// under CI and otherwise prints why the test is skipped and returns `false`.
pub fn require(what: &str, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) if in_ci() => panic!("CI=true and this test needs {what}: {why}"),
        Some(why) => {
            eprintln!("SKIPPED: this test needs {what}: {why} (under CI=true it would fail)");
            false
        }
    }
}

/// Root and the ability to create network namespaces.
pub fn require_root() -> bool {
    let missing = if !is_root() {
        Some("not running as root".to_string())
    } else if !std::path::Path::new("/proc/self/ns/net").exists() {
        Some("no network namespace support in /proc".to_string())
    } else {
        None
    };
    require("root and network namespaces", missing)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Where the Go-built test tools are cached: `${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/`,
/// or `FERROLB_TOOLS_DIR` when set.
pub fn tools_cache() -> PathBuf {
    if let Ok(dir) = std::env::var("FERROLB_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".to_string()))
                .join(".cache")
        });
    base.join("ferrolb")
}

const VERSIONS: &str = include_str!("../control-plane/versions.env");

fn version(key: &str) -> &'static str {
    VERSIONS
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("e2e/control-plane/versions.env has no {key}"))
}

/// Path of a Go-built test tool in the cache (`kube-apiserver`, `kube-controller-manager`,
/// `kubectl`, `kubelet`, `kube-proxy`, `kube-scheduler`, `etcd`, `helm`), as `e2e/control-plane/build.sh` (run by `make tools`) lays it out.
pub fn tool(name: &str) -> PathBuf {
    let dir = match name {
        "kube-apiserver"
        | "kube-controller-manager"
        | "kubectl"
        | "kubelet"
        | "kube-proxy"
        | "kube-scheduler" => {
            format!("kubernetes-{}-nodes", version("KUBERNETES_VERSION"))
        }
        "etcd" => format!("etcd-{}", version("ETCD_VERSION")),
        "helm" => format!("helm-{}", version("HELM_VERSION")),
        "promtool" => format!("promtool-{}", version("PROMETHEUS_VERSION")),
        other => panic!("{other} is not one of the test tools"),
    };
    tools_cache().join(dir).join(name)
}

/// `Some(reason)` when a tool has not been built yet.
pub fn missing_tool(name: &str) -> Option<String> {
    let path = tool(name);
    (!path.exists()).then(|| format!("{} is not built; run `make tools`", path.display()))
}

/// Path of one of ferrolb's own binaries (`ferrolb-allocator`, `ferrolb-agent`, `bird-sidecar`,
/// `kubectl-ferrolb`), built by cargo into the target directory: `FERROLB_BIN_DIR` when set,
/// else the directory of the running executable (or its parent, for test executables in
/// `deps/`).
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("FERROLB_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let dir = if dir.ends_with("deps") {
        dir.parent().map(PathBuf::from).unwrap_or(dir)
    } else {
        dir
    };
    dir.join(name)
}

/// helm with its own config and cache directories (nothing of the user's is read or written),
/// reaching the cluster of `kubeconfig` when given.
pub fn helm(kubeconfig: Option<&Path>) -> Command {
    let home = std::env::temp_dir().join(format!("ferrolb-helm-{}", std::process::id()));
    let mut cmd = Command::new(tool("helm"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    if let Some(kc) = kubeconfig {
        cmd.arg("--kubeconfig").arg(kc);
    }
    cmd
}

/// The repository's helm chart.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .join("manifests/helm/ferrolb")
}
