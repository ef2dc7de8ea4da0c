//! Keeps this node's Lease `ferrolb-node-<node>` current: renewed every 5 s, and at once when
//! an annotation changes. Server-side apply with field manager `ferrolb-agent`.
//!
//! It runs as a task of its own so that a slow or absent API server never delays the kernel
//! work (local addresses must be renewed whatever the API server does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::contracts::{
    FIELD_MANAGER_AGENT, NODE_LEASE_DURATION, NODE_LEASE_RENEW, node_lease_name,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::{Error, Result};

/// After a failed write, the next try comes this much later.
const RETRY: Duration = Duration::from_secs(1);
/// A write that takes longer is given up (and retried): a hung request must not hold up the
/// renewals after it.
const WRITE_TIMEOUT: Duration = NODE_LEASE_RENEW;

/// The handle the reconcile loop publishes annotations through.
pub struct LeasePublisher {
    want: watch::Sender<Option<BTreeMap<String, String>>>,
    published: watch::Receiver<Option<BTreeMap<String, String>>>,
    task: JoinHandle<()>,
}

impl Drop for LeasePublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeasePublisher {
    /// Starts the task; it writes nothing until the first [`LeasePublisher::publish`]. Each
    /// write that succeeds counts for readiness.
    pub fn start(client: Client, namespace: &str, node: &str, metrics: Arc<Metrics>) -> Self {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let (want, want_rx) = watch::channel(None);
        let (published_tx, published) = watch::channel(None);
        let node = node.to_string();
        let task = tokio::spawn(keep_current(api, node, want_rx, published_tx, metrics));
        Self {
            want,
            published,
            task,
        }
    }

    /// These annotations from now on; written at once when they differ from the last ones.
    pub fn publish(&self, annotations: BTreeMap<String, String>) {
        self.want.send_if_modified(|current| {
            if current.as_ref() == Some(&annotations) {
                false
            } else {
                *current = Some(annotations);
                true
            }
        });
    }

    /// Waits (at most `timeout`) until the Lease carries what was last published; `false` when
    /// it does not by then.
    pub async fn flushed(&self, timeout: Duration) -> bool {
        let want = self.want.borrow().clone();
        let mut published = self.published.clone();
        tokio::time::timeout(timeout, published.wait_for(|p| *p == want))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn keep_current(
    api: Api<Lease>,
    node: String,
    mut want: watch::Receiver<Option<BTreeMap<String, String>>>,
    published: watch::Sender<Option<BTreeMap<String, String>>>,
    metrics: Arc<Metrics>,
) {
    let acquired = Timestamp::now();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            changed = want.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(next) => {}
        }
        let Some(annotations) = want.borrow_and_update().clone() else {
            next = tokio::time::Instant::now() + NODE_LEASE_RENEW;
            continue;
        };
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, write(&api, &node, acquired, &annotations))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Io {
                        what: "per-node Lease write",
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    })
                });
        match written {
            Ok(()) => {
                debug!(node, "per-node Lease renewed");
                metrics.health().lease_written();
                metrics.lease_renewed();
                published.send_replace(Some(annotations));
                next = tokio::time::Instant::now() + NODE_LEASE_RENEW;
            }
            Err(e) => {
                warn!(node, error = %e, "cannot write the per-node Lease; retrying");
                metrics.lease_renewal_failed();
                next = tokio::time::Instant::now() + RETRY;
            }
        }
    }
}

/// The Lease as this agent owns it: holder, duration, times and every annotation.
fn lease(
    namespace: &str,
    node: &str,
    acquired: Timestamp,
    annotations: &BTreeMap<String, String>,
) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node_lease_name(node)),
            namespace: Some(namespace.to_string()),
            annotations: Some(annotations.clone()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(NODE_LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    }
}

async fn write(
    api: &Api<Lease>,
    node: &str,
    acquired: Timestamp,
    annotations: &BTreeMap<String, String>,
) -> Result<()> {
    let namespace = api.namespace().unwrap_or_default().to_string();
    let mut body = serde_json::to_value(lease(&namespace, node, acquired, annotations))
        .expect("a Lease always serializes");
    body["apiVersion"] = "coordination.k8s.io/v1".into();
    body["kind"] = "Lease".into();
    api.patch(
        &node_lease_name(node),
        &PatchParams::apply(FIELD_MANAGER_AGENT).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
