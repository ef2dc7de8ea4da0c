//! Events on this node's Node object (they live in namespace `default`, as Events of
//! cluster-scoped objects do), published without holding up the reconcile loop.

use ferrolb_api::contracts::{FIELD_MANAGER_AGENT, reason};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use crate::Error;
use crate::decide::Change;

/// Publishes the agent's Events about its own Node.
#[derive(Clone)]
pub struct NodeEvents {
    recorder: Recorder,
    node: ObjectReference,
}

impl NodeEvents {
    pub fn new(client: Client, node: &str) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER_AGENT.into(),
            instance: Some(node.to_string()),
        };
        // As the kubelet does: a Node's events name it by name, with the name as uid, which is
        // what `kubectl describe node` looks for.
        let node = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            uid: Some(node.to_string()),
            ..Default::default()
        };
        Self {
            recorder: Recorder::new(client, reporter),
            node,
        }
    }

    /// `AnnouncementFailed`: a change of the kernel's addresses failed.
    pub fn announcement_failed(&self, change: &Change, error: &Error) {
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::ANNOUNCEMENT_FAILED.into(),
            note: Some(truncate(format!(
                "{change} failed: {error}; the agent retries with back-off. Check the interface \
                 and the address with `ip addr` on the node."
            ))),
            action: "Announce".into(),
            secondary: None,
        });
    }

    /// `AddressConflict`: another MAC answered for a local address; `note` says who keeps it.
    pub fn address_conflict(&self, note: String) {
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::ADDRESS_CONFLICT.into(),
            note: Some(truncate(note)),
            action: "Probe".into(),
            secondary: None,
        });
    }

    fn publish(&self, event: Event) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.recorder.publish(&event, &this.node).await {
                warn!(reason = event.reason, error = %e, "cannot publish an Event");
            }
        });
    }
}

/// An Event note is at most 1 kB.
fn truncate(mut note: String) -> String {
    if note.len() > 1024 {
        let mut end = 1021;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}
