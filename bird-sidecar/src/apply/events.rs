//! `RouterConfigApplied` / `RouterConfigRejected` Events on the sidecar's Node.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use ferrolb_api::contracts::reason;

/// Publishes Events about this node's router config; without a cluster it only logs.
#[derive(Clone)]
pub struct Events {
    inner: Option<(Recorder, ObjectReference)>,
}

impl Events {
    /// Events go nowhere (offline runs and tests).
    pub fn none() -> Self {
        Events { inner: None }
    }

    /// Events regarding `node` (a Node reference with its uid, so `kubectl describe node`
    /// finds them; Node is cluster-scoped, so the recorder files them in namespace `default`).
    pub fn for_node(client: kube::Client, node: ObjectReference) -> Self {
        let reporter = Reporter {
            controller: "ferrolb-bird-sidecar".into(),
            instance: node.name.clone(),
        };
        Events {
            inner: Some((Recorder::new(client, reporter), node)),
        }
    }

    /// A reference to Node `name` when its object (and uid) is not known.
    pub fn node_reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.to_string()),
            ..ObjectReference::default()
        }
    }

    pub async fn applied(&self, note: String) {
        self.publish(EventType::Normal, reason::ROUTER_CONFIG_APPLIED, note)
            .await;
    }

    pub async fn rejected(&self, note: String) {
        self.publish(EventType::Warning, reason::ROUTER_CONFIG_REJECTED, note)
            .await;
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let Some((recorder, reference)) = &self.inner else {
            return;
        };
        // An Event's note is at most 1 kB.
        let note = truncate(note, 1000);
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: "ConfigureRouter".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, reference).await {
            tracing::warn!(reason, "could not publish Event: {e}");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
