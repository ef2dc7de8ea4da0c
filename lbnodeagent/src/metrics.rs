//! The agent's metrics (prometheus-client, prefix `ferrolb`) and its `/metrics`, `/healthz`,
//! `/readyz` endpoint.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

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
    health: Health,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb");
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
            health: Health::default(),
            registry: Registry::default(),
        };
        registry.register(
            "agent_addresses_held",
            "Addresses this node carries, by kind (local, virtual) and family",
            m.held.clone(),
        );
        registry.register(
            "agent_address_adds",
            "Addresses added to an interface",
            m.adds.clone(),
        );
        registry.register(
            "agent_address_removes",
            "Addresses removed from an interface",
            m.removes.clone(),
        );
        registry.register(
            "agent_address_renewals",
            "Lifetime renewals of addresses",
            m.renewals.clone(),
        );
        registry.register(
            "agent_netlink_errors",
            "Netlink requests the kernel refused or that failed",
            m.netlink_errors.clone(),
        );
        registry.register(
            "agent_gratuitous_packets_sent",
            "Gratuitous ARP (ipv4) and unsolicited NA (ipv6) packets sent",
            m.gratuitous.clone(),
        );
        registry.register(
            "agent_reconcile_duration_seconds",
            "Time of one reconcile: kernel dump, decide, diff and apply",
            m.reconcile.clone(),
        );
        registry.register(
            "agent_gossip_rejected",
            "Gossip datagrams dropped: no valid HMAC under the current or previous key, not \
             chitchat, or too large once signed",
            m.gossip.rejected.clone(),
        );
        registry.register(
            "agent_gossip_accepted",
            "Gossip datagrams with a valid HMAC",
            m.gossip.accepted.clone(),
        );
        registry.register(
            "agent_gossip_live_peers",
            "Other nodes alive in this agent's gossip view",
            m.live_peers.clone(),
        );
        registry.register(
            "agent_address_conflicts",
            "Answers from another MAC to this node's conflict probes for an address it holds or \
             waits for, by family and by whether the MAC is another agent's or foreign",
            m.conflicts.clone(),
        );
        Metrics { registry, ..m }
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
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_the_conventions() {
        let m = Metrics::new();
        m.added(AddressKind::Local, "192.0.2.1".parse().expect("ip"));
        m.removed();
        m.gratuitous_sent("2001:db8::1".parse().expect("ip"));
        m.reconciled(0.002);
        m.gossip_counters().rejected.inc();
        m.live_peers(2);
        let text = m.render();
        for want in [
            "ferrolb_agent_address_adds_total{kind=\"local\",family=\"ipv4\"} 1",
            "ferrolb_agent_address_removes_total 1",
            "ferrolb_agent_gratuitous_packets_sent_total{family=\"ipv6\"} 1",
            "ferrolb_agent_reconcile_duration_seconds_count 1",
            "ferrolb_agent_netlink_errors_total 0",
            "ferrolb_agent_gossip_rejected_total 1",
            "ferrolb_agent_gossip_accepted_total 0",
            "ferrolb_agent_gossip_live_peers 2",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
