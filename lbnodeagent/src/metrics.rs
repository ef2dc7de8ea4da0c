//! The agent's metrics (prometheus-client, names `ferrolb_agent_*`) and its `/metrics`,
//! `/healthz`, `/readyz` endpoint. What a gauge shows is computed by pure functions
//! ([`announced`]); this module only carries it out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::decide::{AddressKind, Desired};
use crate::gossip::auth::AuthCounters;
use crate::health::Health;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabels {
    kind: &'static str,
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConflictLabels {
    family: &'static str,
    /// `agent` (another ferrolb agent) or `foreign` (a host that is no agent).
    with: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: &'static str,
}

/// Every name this registry exports starts with this.
pub const PREFIX: &str = "ferrolb_agent";

/// One address this node announces. Not `namespace`/`service`: Prometheus's scrape of the
/// agent's own Service sets those target labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AnnouncedLabels {
    pub service_namespace: String,
    pub service_name: String,
    pub address: String,
    pub node: String,
    /// `local` (this node is the elected holder) or `virtual` (every node routes it).
    pub kind: &'static str,
}

/// The addresses `node` announces now: the local addresses it really holds (`held`, by
/// interface) and the virtual addresses it should carry, each with the Service it belongs to
/// (`services`: address -> `namespace/name`). An address of no Service is not listed.
pub fn announced(
    node: &str,
    held: &BTreeSet<(String, IpAddr)>,
    desired: &Desired,
    services: &BTreeMap<IpAddr, String>,
) -> BTreeSet<AnnouncedLabels> {
    let local = held.iter().map(|(_, a)| (*a, AddressKind::Local));
    let virtuals = desired
        .addresses
        .values()
        .filter(|a| a.kind == AddressKind::Virtual)
        .map(|a| (a.address, AddressKind::Virtual));
    local
        .chain(virtuals)
        .filter_map(|(address, kind)| {
            let key = services.get(&address)?;
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            Some(AnnouncedLabels {
                service_namespace: namespace.into(),
                service_name: name.into(),
                address: address.to_string(),
                node: node.into(),
                kind: kind_label(kind),
            })
        })
        .collect()
}

fn kind_label(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Local => "local",
        AddressKind::Virtual => "virtual",
    }
}

fn family_label(address: IpAddr) -> &'static str {
    if address.is_ipv4() { "ipv4" } else { "ipv6" }
}

/// Every metric of the agent, in one registry.
pub struct Metrics {
    registry: Registry,
    held: Family<AddressLabels, Gauge>,
    adds: Family<AddressLabels, Counter>,
    removes: Counter,
    renewals: Family<AddressLabels, Counter>,
    netlink_errors: Counter,
    gratuitous: Family<FamilyLabels, Counter>,
    reconcile: Histogram,
    gossip: AuthCounters,
    live_peers: Gauge,
    conflicts: Family<ConflictLabels, Counter>,
    announced: Family<AnnouncedLabels, Gauge>,
    /// The series of the last [`Metrics::announced`]: an address this node stopped announcing
    /// loses its series, not left at 1.
    announced_series: Mutex<HashSet<AnnouncedLabels>>,
    lease_renewals: Counter,
    lease_errors: Counter,
    health: Health,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics {
            held: Family::default(),
            adds: Family::default(),
            removes: Counter::default(),
            renewals: Family::default(),
            netlink_errors: Counter::default(),
            gratuitous: Family::default(),
            reconcile: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            gossip: AuthCounters::default(),
            live_peers: Gauge::default(),
            conflicts: Family::default(),
            announced: Family::default(),
            announced_series: Mutex::default(),
            lease_renewals: Counter::default(),
            lease_errors: Counter::default(),
            health: Health::default(),
            registry: Registry::default(),
        };
        registry.register(
            "addresses_held",
            "Addresses this node carries, by kind (local, virtual) and family",
            m.held.clone(),
        );
        registry.register(
            "address_adds",
            "Addresses added to an interface",
            m.adds.clone(),
        );
        registry.register(
            "address_removes",
            "Addresses removed from an interface",
            m.removes.clone(),
        );
        registry.register(
            "address_renewals",
            "Lifetime renewals of addresses",
            m.renewals.clone(),
        );
        registry.register(
            "netlink_errors",
            "Netlink requests the kernel refused or that failed",
            m.netlink_errors.clone(),
        );
        registry.register(
            "gratuitous_packets_sent",
            "Gratuitous ARP (ipv4) and unsolicited NA (ipv6) packets sent",
            m.gratuitous.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one reconcile: kernel dump, decide, diff and apply",
            m.reconcile.clone(),
        );
        registry.register(
            "gossip_rejected",
            "Gossip datagrams dropped: no valid HMAC under the current or previous key, not \
             chitchat, or too large once signed",
            m.gossip.rejected.clone(),
        );
        registry.register(
            "gossip_accepted",
            "Gossip datagrams with a valid HMAC",
            m.gossip.accepted.clone(),
        );
        registry.register(
            "gossip_live_peers",
            "Other nodes alive in this agent's gossip view",
            m.live_peers.clone(),
        );
        registry.register(
            "address_conflicts",
            "Answers from another MAC to this node's conflict probes for an address it holds or \
             waits for, by family and by whether the MAC is another agent's or foreign",
            m.conflicts.clone(),
        );
        registry.register(
            "announced",
            "1 for each address this node announces now, by Service, address, node and kind \
             (local: the elected holder; virtual: routed by every node); gone when it stops",
            m.announced.clone(),
        );
        registry.register(
            "lease_renewals",
            "Writes of this node's Lease ferrolb-node-<node> the API server took",
            m.lease_renewals.clone(),
        );
        registry.register(
            "lease_renewal_errors",
            "Writes of this node's Lease that failed or timed out (retried after 1 s)",
            m.lease_errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the announced gauge to exactly [`announced`]'s addresses.
    pub fn announced(
        &self,
        node: &str,
        held: &BTreeSet<(String, IpAddr)>,
        desired: &Desired,
        services: &BTreeMap<IpAddr, String>,
    ) {
        let now: HashSet<AnnouncedLabels> = announced(node, held, desired, services)
            .into_iter()
            .collect();
        for labels in &now {
            self.announced.get_or_create(labels).set(1);
        }
        let mut before = self
            .announced_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for gone in before.difference(&now) {
            self.announced.remove(gone);
        }
        *before = now;
    }

    pub fn lease_renewed(&self) {
        self.lease_renewals.inc();
    }

    pub fn lease_renewal_failed(&self) {
        self.lease_errors.inc();
    }

    /// Sets the held-addresses gauges from what this node should carry now.
    pub fn held(&self, desired: &Desired) {
        for kind in [AddressKind::Local, AddressKind::Virtual] {
            for family in ["ipv4", "ipv6"] {
                let n = desired
                    .addresses
                    .values()
                    .filter(|a| a.kind == kind && family_label(a.address) == family)
                    .count();
                self.held
                    .get_or_create(&AddressLabels {
                        kind: kind_label(kind),
                        family,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    pub fn added(&self, kind: AddressKind, address: IpAddr) {
        self.adds
            .get_or_create(&AddressLabels {
                kind: kind_label(kind),
                family: family_label(address),
            })
            .inc();
    }

    pub fn removed(&self) {
        self.removes.inc();
    }

    pub fn renewed(&self, kind: AddressKind, address: IpAddr) {
        self.renewals
            .get_or_create(&AddressLabels {
                kind: kind_label(kind),
                family: family_label(address),
            })
            .inc();
    }

    pub fn netlink_error(&self) {
        self.netlink_errors.inc();
    }

    pub fn gratuitous_sent(&self, address: IpAddr) {
        self.gratuitous
            .get_or_create(&FamilyLabels {
                family: family_label(address),
            })
            .inc();
    }

    /// The counters the authenticated gossip transport updates.
    pub fn gossip_counters(&self) -> AuthCounters {
        self.gossip.clone()
    }

    pub fn address_conflict(&self, address: IpAddr, agent: bool) {
        self.conflicts
            .get_or_create(&ConflictLabels {
                family: family_label(address),
                with: if agent { "agent" } else { "foreign" },
            })
            .inc();
    }

    pub fn live_peers(&self, n: usize) {
        self.live_peers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconcile.observe(seconds);
    }

    /// What `/healthz` and `/readyz` answer from.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The exposition of a registry with a series in every family: every name the agent exports
/// (e2e/tests/alerts.rs checks the chart's alerts and dashboard against it). An empty family
/// is not encoded at all, hence the series.
pub fn specimen() -> String {
    let m = Metrics::new();
    let addr: IpAddr = [192, 0, 2, 1].into();
    let desired = Desired {
        addresses: BTreeMap::new(),
        eligible: None,
        local_interface_v4: None,
        local_interface_v6: None,
        subnets: BTreeSet::new(),
        virtual_interface: String::new(),
        keep_virtual_interface: false,
        skipped: Vec::new(),
    };
    m.held(&desired);
    m.added(AddressKind::Local, addr);
    m.removed();
    m.renewed(AddressKind::Local, addr);
    m.netlink_error();
    m.gratuitous_sent(addr);
    m.reconciled(0.0);
    m.live_peers(0);
    m.address_conflict(addr, false);
    m.announced(
        "node",
        &BTreeSet::from([("eth0".to_string(), addr)]),
        &desired,
        &BTreeMap::from([(addr, "ns/svc".to_string())]),
    );
    m.lease_renewed();
    m.lease_renewal_failed();
    m.render()
}

/// Binds `addr` and serves the endpoint in a task; returns the bound address (`:0` picks one).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> (StatusCode, String) {
    answer(metrics.health().readiness(), "not ready")
}

async fn live(State(metrics): State<Arc<Metrics>>) -> (StatusCode, String) {
    answer(metrics.health().liveness(), "not live")
}

fn answer(verdict: Result<(), String>, no: &str) -> (StatusCode, String) {
    match verdict {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{no}: {why}\n")),
    }
}

#[cfg(test)]
mod tests;
