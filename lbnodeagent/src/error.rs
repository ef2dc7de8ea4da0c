//! The agent's one error type.

use nix::errno::Errno;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed; `errno` is set when the kernel answered with an error code.
    #[error("netlink {op}: {source}")]
    Netlink {
        op: String,
        errno: Option<Errno>,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("could not open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error(
        "the kernel does not keep IFA_PROTO on addresses ({detail}); ferrolb marks the addresses it \
         owns with it and needs Linux 5.18 or later"
    )]
    AddressProtocolUnsupported { detail: String },
    #[error("no interface named {0}")]
    NoSuchInterface(String),
    #[error("could not create {name} as dummy ({dummy}) nor as ifb ({ifb})")]
    VirtualInterface {
        name: String,
        dummy: String,
        ifb: String,
    },
    #[error("{interface}: {setting}: {why}")]
    LinkSetting {
        interface: String,
        setting: &'static str,
        why: String,
    },
    #[error("gratuitous ARP/NA on {interface}: {why}")]
    Gratuitous { interface: String, why: String },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "no usable gossip key in Secret {namespace}/{secret}: {why}. The agents gossip only \
         with a shared key; create it with: kubectl -n {namespace} create secret generic \
         {secret} --from-literal=key=$(openssl rand -hex 32)"
    )]
    GossipKeys {
        namespace: String,
        secret: &'static str,
        why: String,
    },
    #[error("gossip on {listen}: {why}")]
    Gossip { listen: String, why: String },
    #[error("LBNodeAgent {agent}: {field}: {why}")]
    InvalidConfig {
        agent: String,
        field: &'static str,
        why: String,
    },
}

impl Error {
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        let errno = match &source {
            rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
                Some(Errno::from_raw(msg.raw_code().abs()))
            }
            _ => None,
        };
        Error::Netlink {
            op: op.into(),
            errno,
            source,
        }
    }

    /// The kernel's error code, when the kernel refused a request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Netlink { errno, .. } => *errno,
            _ => None,
        }
    }
}
