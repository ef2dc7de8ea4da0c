//! Prometheus metrics (prefix `ferrolb`) and the `/metrics`, `/healthz`, `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::Protocol;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The neighbour's address.
    pub peer: String,
    /// BIRD's protocol name.
    pub protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: String,
    /// `BGP`, `OSPF`, `BFD`, ...
    pub proto: String,
}

/// Every metric the sidecar exports, and whether it is ready.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub config_applied: Counter,
    pub config_rejected: Counter,
    pub bird_restarts: Counter,
    pub bgp_session_up: Family<PeerLabels, Gauge>,
    pub bgp_prefixes_exported: Family<PeerLabels, Gauge>,
    pub bgp_prefixes_imported: Family<PeerLabels, Gauge>,
    pub protocol_up: Family<ProtocolLabels, Gauge>,
    pub draining: Gauge,
    ready: AtomicBool,
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
            config_applied: Counter::default(),
            config_rejected: Counter::default(),
            bird_restarts: Counter::default(),
            bgp_session_up: Family::default(),
            bgp_prefixes_exported: Family::default(),
            bgp_prefixes_imported: Family::default(),
            protocol_up: Family::default(),
            draining: Gauge::default(),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "router_config_applied",
            "Rendered BIRD configs validated and applied",
            m.config_applied.clone(),
        );
        registry.register(
            "router_config_rejected",
            "Rendered BIRD configs that failed to render or that BIRD refused; the old config stayed",
            m.config_rejected.clone(),
        );
        registry.register(
            "bird_restarts",
            "Times BIRD died and was restarted",
            m.bird_restarts.clone(),
        );
        registry.register(
            "bgp_session_up",
            "1 when the BGP session is Established",
            m.bgp_session_up.clone(),
        );
        registry.register(
            "bgp_prefixes_exported",
            "Prefixes exported to the BGP peer",
            m.bgp_prefixes_exported.clone(),
        );
        registry.register(
            "bgp_prefixes_imported",
            "Prefixes imported from the BGP peer",
            m.bgp_prefixes_imported.clone(),
        );
        registry.register(
            "router_protocol_up",
            "1 when the BIRD protocol is up",
            m.protocol_up.clone(),
        );
        registry.register(
            "router_draining",
            "1 while the sidecar drains BIRD before stopping",
            m.draining.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Replaces the session gauges with what `show protocols all` says now (a protocol that is
    /// gone loses its series).
    pub fn set_protocols(&self, protocols: &[Protocol]) {
        self.bgp_session_up.clear();
        self.bgp_prefixes_exported.clear();
        self.bgp_prefixes_imported.clear();
        self.protocol_up.clear();
        for p in protocols {
            self.protocol_up
                .get_or_create(&ProtocolLabels {
                    protocol: p.name.clone(),
                    proto: p.proto.clone(),
                })
                .set(i64::from(p.is_up()));
            if p.proto != "BGP" {
                continue;
            }
            let labels = PeerLabels {
                peer: p.neighbor_address.clone().unwrap_or_default(),
                protocol: p.name.clone(),
            };
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.bgp_session_up
                .get_or_create(&labels)
                .set(i64::from(p.is_established()));
            self.bgp_prefixes_exported
                .get_or_create(&labels)
                .set(gauge(p.exported()));
            self.bgp_prefixes_imported
                .get_or_create(&labels)
                .set(gauge(p.imported()));
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The registry in the text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    axum::serve(listener, app).await
}

/// Binds `addr` (e.g. `0.0.0.0:9472`).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: BIRD has no applied config yet",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_sessions_and_counters_with_the_ferrolb_prefix() {
        let m = Metrics::new();
        m.config_applied.inc();
        let text = include_str!("../tests/fixtures/show-protocols-all-established.txt");
        m.set_protocols(&crate::status::parse_protocols(text));
        let out = m.encode();
        let cases = [
            "ferrolb_router_config_applied_total 1",
            "ferrolb_router_config_rejected_total 0",
            "ferrolb_bgp_session_up{peer=\"192.0.2.1\",protocol=\"peer_192_0_2_1\"} 1",
            "ferrolb_bgp_session_up{peer=\"192.0.2.77\",protocol=\"peer_192_0_2_77\"} 0",
            "ferrolb_bgp_prefixes_exported{peer=\"2001:db8:1::1\",protocol=\"peer_2001_db8_1__1\"} 1",
            "ferrolb_router_protocol_up{protocol=\"ferrolb_ospf\",proto=\"OSPF\"} 1",
        ];
        for want in cases {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        m.set_protocols(&[]);
        assert!(
            !m.encode().contains("peer_192_0_2_1"),
            "gone protocols lose their series"
        );
    }
}
