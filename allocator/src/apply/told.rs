//! What an earlier allocator told: its Warning Events about Services, read back by a new leader
//! (after a restart or failover) so that it does not tell them again. Asked of the API server
//! with a field selector and a page at a time: a cluster's Events are many, and few are ours.

use std::collections::{BTreeSet, HashMap};

use ferrolb_api::contracts::{FIELD_MANAGER_ALLOCATOR, reason};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::Result;
use crate::decide::Note;

/// Reasons of standing problems (Warning Events about a Service).
const PROBLEMS: [&str; 7] = [
    reason::ALLOCATION_FAILED,
    reason::REQUESTED_ADDRESS_UNAVAILABLE,
    reason::SHARING_CONFLICT,
    reason::DEPRECATED_FIELD,
    reason::ANNOTATION_CONFLICT,
    reason::NO_CANDIDATE,
    reason::UNSUPPORTED_ANNOTATION,
];

/// Events read per request when a new leader learns what was told before.
pub const EVENT_PAGE: u32 = 500;

/// What the API server is asked for when the told problems are read back: this allocator's
/// Warning Events about Services (the Events of the whole cluster are many, and none of the
/// others matter).
pub fn told_selector() -> String {
    format!("reportingController={FIELD_MANAGER_ALLOCATOR},type=Warning,regarding.kind=Service")
}

/// The standing problems an earlier allocator told, per Service uid: its Warning Events about
/// Services in `namespace` (all when `None`), filtered by the API server and read `page` at a
/// time.
pub async fn told_before(
    client: &Client,
    namespace: Option<&str>,
    page: u32,
) -> Result<HashMap<String, BTreeSet<Note>>> {
    let api: Api<K8sEvent> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default()
        .fields(&told_selector())
        .limit(page.max(1));
    let mut told: HashMap<String, BTreeSet<Note>> = HashMap::new();
    loop {
        let list = api.list(&params).await?;
        for e in list.items {
            // The selector already says so; an API server that ignored part of it changes nothing.
            if e.reporting_controller.as_deref() != Some(FIELD_MANAGER_ALLOCATOR)
                || e.type_.as_deref() != Some("Warning")
            {
                continue;
            }
            let uid = e.regarding.and_then(|r| r.uid);
            let known = e
                .reason
                .as_deref()
                .and_then(|r| PROBLEMS.iter().find(|p| **p == r));
            if let (Some(uid), Some(reason), Some(note)) = (uid, known, e.note) {
                told.entry(uid)
                    .or_default()
                    .insert(Note::warning(reason, note));
            }
        }
        match list.metadata.continue_ {
            Some(next) if !next.is_empty() => params = params.continue_token(&next),
            _ => return Ok(told),
        }
    }
}
