//! The allocator's one error type, and the policy that tells transient from permanent errors.

use std::time::Duration;

/// What can go wrong outside the pure decisions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize a patch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lost the leader Lease {0}; stopping so that only the new leader writes")]
    LeaderLost(String),
    #[error("a watch stopped: {0}")]
    WatchEnded(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Transient errors are retried with back-off; permanent ones become Events and wait for
    /// the next change.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code >= 500 || matches!(s.code, 404 | 409 | 429),
            Error::Kube(_) | Error::Io(_) | Error::WatchEnded(_) => true,
            Error::Json(_) | Error::LeaderLost(_) => false,
        }
    }
}

/// Exponential back-off from 250 ms to 5 min (per object: see `apply::Retries`).
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(250);
    pub const MAX: Duration = Duration::from_secs(300);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next retry; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_from_250ms_to_five_minutes() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..14).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(&delays[..4], &[250, 500, 1000, 2000]);
        assert_eq!(*delays.last().expect("delays"), 300_000);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::FIRST);
    }

    #[test]
    fn tells_transient_from_permanent() {
        let api = |code: u16| {
            Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        let cases = [
            (500, true),
            (503, true),
            (409, true),
            (429, true),
            (422, false),
            (403, false),
        ];
        for (code, want) in cases {
            assert_eq!(api(code).is_transient(), want, "HTTP {code}");
        }
        assert!(!Error::LeaderLost("x".into()).is_transient());
    }
}
