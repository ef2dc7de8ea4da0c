//! The gossip keys from the `ferrolb-gossip` Secret: read at start (no valid key, no agent) and
//! read again every [`REREAD`], so a key rotation needs no restart. Each agent re-reads on its
//! own schedule, so a rotation is two-phase (docs/install.md): the new key goes into
//! `previousKey` first (accepted, never signed with), and into `key` only once every agent has
//! had it for a [`REREAD`] or more.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrolb_api::contracts::gossip;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::gossip::auth::GossipKeys;
use crate::{Error, Result};

/// How often the Secret is read again.
pub const REREAD: Duration = Duration::from_secs(10);

/// The keys the Secret holds now; an error that says how to create the Secret when it has no
/// valid `key`.
pub async fn load(client: &Client, namespace: &str) -> Result<GossipKeys> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    read(&api).await.map_err(|why| Error::GossipKeys {
        namespace: namespace.to_string(),
        secret: gossip::SECRET,
        why,
    })
}

/// Reads the Secret every [`REREAD`] and swaps in its keys when they change. A Secret that
/// goes missing or turns invalid keeps the last good keys (and says so).
pub fn keep_current(
    client: &Client,
    namespace: &str,
    keys: Arc<RwLock<GossipKeys>>,
) -> JoinHandle<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REREAD).await;
            match read(&api).await {
                Ok(new) => {
                    let mut current = keys.write().unwrap_or_else(|p| p.into_inner());
                    if *current != new {
                        *current = new;
                        info!(
                            secret = gossip::SECRET,
                            "gossip keys changed; using the new ones"
                        );
                    }
                }
                Err(why) => warn!(
                    secret = gossip::SECRET,
                    why, "cannot read the gossip keys; keeping the last good ones"
                ),
            }
        }
    })
}

async fn read(api: &Api<Secret>) -> Result<GossipKeys, String> {
    let secret = api
        .get_opt(gossip::SECRET)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?
        .ok_or_else(|| "it does not exist".to_string())?;
    let data = secret.data.unwrap_or_default();
    let value = |k: &str| data.get(k).map(|v| v.0.as_slice());
    GossipKeys::from_secret(
        value(gossip::SECRET_KEY),
        value(gossip::SECRET_PREVIOUS_KEY),
    )
    .map_err(|e| e.to_string())
}
