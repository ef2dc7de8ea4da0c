//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while rendering, validating, applying or running BIRD.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The values file (peers, BFD, OSPF) is not usable.
    #[error("values: {0}")]
    Values(String),
    /// A ServiceGroups file does not parse.
    #[error("groups file: {0}")]
    Groups(String),
    /// The node lacks a fact the config needs (e.g. an IPv4 address for the router id).
    #[error("node facts: {0}")]
    Facts(String),
    /// The template does not parse or does not render with these inputs.
    #[error("template: {0}")]
    Template(String),
    /// `bird -p` refused the rendered config; the running config was kept.
    #[error("BIRD rejected the rendered config (the running config was kept): {0}")]
    Rejected(String),
    /// BIRD answered `birdc configure` but did not load the config (it passed `bird -p`);
    /// BIRD kept running the previous config and the config file was not replaced.
    #[error("BIRD refused to load the rendered config (it keeps running the previous one): {0}")]
    Refused(String),
    /// `bird` or `birdc` did not finish in time and was killed.
    #[error("`{command}` did not finish within {after:?} and was killed")]
    Timeout { command: String, after: Duration },
    /// `birdc` failed or BIRD refused a command.
    #[error("`birdc {command}`: {output}")]
    Birdc { command: String, output: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when retrying with the same inputs may succeed (BIRD down, I/O); false when the
    /// inputs must change first (a template, values or config BIRD refuses).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Values(_)
                | Error::Groups(_)
                | Error::Facts(_)
                | Error::Template(_)
                | Error::Rejected(_)
                | Error::Refused(_)
        )
    }
}
