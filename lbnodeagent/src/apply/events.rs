//! Events on this node's Node object (they live in namespace `default`, as Events of
//! cluster-scoped objects do), published without holding up the reconcile loop.

use std::net::IpAddr;

use ferrolb_api::contracts::{FIELD_MANAGER_AGENT, reason};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use crate::Error;
use crate::decide::{Change, Rejected};

/// Publishes the agent's Events about its own Node.
#[derive(Clone)]
pub struct NodeEvents {
    recorder: Recorder,
    node: ObjectReference,
}

/// The related object of an Event about `address` of a Service (`namespace/name`): the
/// Service, with the address as the field (`status.loadBalancer.ingress{192.0.2.10}`, after
/// the kubelet's `spec.containers{name}`). kube's recorder keeps one series, with its first
/// note, per reason, regarding and related object: without this every address's problem on a
/// Node would count up under the first one's note.
fn address_ref(service: &str, address: IpAddr) -> ObjectReference {
    let (namespace, name) = service.split_once('/').unwrap_or(("", service));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: Some(name.to_string()),
        field_path: Some(format!("status.loadBalancer.ingress{{{address}}}")),
        ..Default::default()
    }
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

    /// `AnnouncementFailed`: a change of the kernel's addresses failed; `service`
    /// (`namespace/name`): the Service whose address it was.
    pub fn announcement_failed(&self, change: &Change, error: &Error, service: Option<&str>) {
        let related = change
            .address()
            .zip(service)
            .map(|(a, s)| address_ref(s, a));
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::ANNOUNCEMENT_FAILED.into(),
            note: Some(truncate(format!(
                "{change} failed: {error}; the agent retries with back-off. Check the interface \
                 and the address with `ip addr` on the node."
            ))),
            action: "Announce".into(),
            secondary: related,
        });
    }

    /// `AddressConflict`: another MAC answered for `address`; `note` says who keeps it;
    /// `service` (`namespace/name`): the Service whose address it is.
    pub fn address_conflict(&self, address: IpAddr, note: String, service: Option<&str>) {
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::ADDRESS_CONFLICT.into(),
            note: Some(truncate(note)),
            action: "Probe".into(),
            secondary: service.map(|s| address_ref(s, address)),
        });
    }

    /// `StrictARPApplied`: the local interface answers ARP only for its own addresses now.
    pub fn strict_arp_applied(&self, note: String) {
        self.publish(Event {
            type_: EventType::Normal,
            reason: reason::STRICT_ARP_APPLIED.into(),
            note: Some(truncate(note)),
            action: "Configure".into(),
            secondary: None,
        });
    }

    /// `AnnouncementFailed`: strict ARP is needed (kube-proxy in IPVS mode) but cannot be set.
    pub fn strict_arp_failed(&self, interface: &str, error: &Error) {
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::ANNOUNCEMENT_FAILED.into(),
            note: Some(truncate(format!(
                "kube-proxy's IPVS mode puts every Service address on kube-ipvs0, so every node \
                 answers ARP for local addresses; setting arp_ignore 1 and arp_announce 2 on \
                 {interface} failed: {error}. Set `strictARP: true` in kube-proxy's configuration."
            ))),
            action: "Configure".into(),
            secondary: None,
        });
    }

    /// `InvalidLBNodeAgent`: an LBNodeAgent does not parse and is ignored on this node. The
    /// Event relates to that version of the object: kube's recorder folds Events with the same
    /// reason, regarding and related object into one series that keeps the first note, so
    /// another object (or another edit) must make another Event.
    pub fn invalid_agent(&self, rejected: &Rejected) {
        self.publish(Event {
            type_: EventType::Warning,
            reason: reason::INVALID_LBNODEAGENT.into(),
            note: Some(truncate(format!(
                "{rejected}. Ignored by this node's agent (the settings it gave this node, if \
                 any, stay in force); fix it and check it with `kubectl ferrolb check`."
            ))),
            action: "Configure".into(),
            secondary: Some(ObjectReference {
                api_version: Some("ferrolb.io/v1".into()),
                kind: Some("LBNodeAgent".into()),
                name: Some(rejected.agent.clone()),
                uid: rejected.uid.clone(),
                resource_version: rejected.resource_version.clone(),
                ..Default::default()
            }),
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
