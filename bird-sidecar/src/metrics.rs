//! Prometheus metrics (names `ferrolb_router_*`) and the `/metrics`, `/healthz`, `/readyz`
//! endpoints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Every name this registry exports starts with this.
pub const PREFIX: &str = "ferrolb_router";

/// How long the loop may go without a beat before `/healthz` fails, until the loop says.
const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);

/// Every metric the sidecar exports, whether it is ready, and whether its loop is alive.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub config_applied: Counter,
    pub config_rejected: Counter,
    /// 1 when the last rendered config was accepted, 0 when it was refused or none was yet.
    pub config_accepted: Gauge,
    pub bird_restarts: Counter,
    pub bgp_session_up: Family<PeerLabels, Gauge>,
    pub bgp_prefixes_exported: Family<PeerLabels, Gauge>,
    pub bgp_prefixes_imported: Family<PeerLabels, Gauge>,
    pub protocol_up: Family<ProtocolLabels, Gauge>,
    pub draining: Gauge,
    /// `None` when ready, else why not.
    not_ready: Mutex<Option<String>>,
    health: Mutex<Heartbeat>,
    /// While draining the loop does not beat; the pod is going away anyway.
    stopping: AtomicBool,
}

/// When the sidecar's loop last made progress, and how long it may go without.
#[derive(Debug, Clone, Copy)]
struct Heartbeat {
    last: Instant,
    limit: Duration,
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
            config_applied: Counter::default(),
            config_rejected: Counter::default(),
            config_accepted: Gauge::default(),
            bird_restarts: Counter::default(),
            bgp_session_up: Family::default(),
            bgp_prefixes_exported: Family::default(),
            bgp_prefixes_imported: Family::default(),
            protocol_up: Family::default(),
            draining: Gauge::default(),
            not_ready: Mutex::new(Some("starting".into())),
            health: Mutex::new(Heartbeat {
                last: Instant::now(),
                limit: DEFAULT_STALL_LIMIT,
            }),
            stopping: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "config_applied",
            "Rendered BIRD configs validated and applied",
            m.config_applied.clone(),
        );
        registry.register(
            "config_rejected",
            "Rendered BIRD configs that failed to render or that BIRD refused; the old config stayed",
            m.config_rejected.clone(),
        );
        registry.register(
            "config_accepted",
            "1 when BIRD accepted the last rendered config, 0 when it was refused (the old one \
             stays) or before the first",
            m.config_accepted.clone(),
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
            "protocol_up",
            "1 when the BIRD protocol is up",
            m.protocol_up.clone(),
        );
        registry.register(
            "draining",
            "1 while the sidecar drains BIRD before stopping",
            m.draining.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a rendered config BIRD accepted (`true`) or refused, and remembers which.
    pub fn config_outcome(&self, accepted: bool) {
        if accepted {
            self.config_applied.inc();
        } else {
            self.config_rejected.inc();
        }
        self.config_accepted.set(i64::from(accepted));
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

    /// Ready (`None`) or not, and why not.
    pub fn set_readiness(&self, why_not: Option<String>) {
        *lock(&self.not_ready) = why_not;
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_none()
    }

    /// `None` when ready, else why not.
    pub fn readiness(&self) -> Option<String> {
        lock(&self.not_ready).clone()
    }

    /// The loop made progress; it counts as stuck after `limit` without another beat.
    pub fn beat(&self, limit: Duration) {
        *lock(&self.health) = Heartbeat {
            last: Instant::now(),
            limit,
        };
    }

    /// The sidecar is stopping (draining): not ready, and no longer expected to beat.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.set_readiness(Some("draining".into()));
    }

    /// False when the loop has not beaten within its limit (it is stuck).
    pub fn is_alive(&self) -> bool {
        let h = *lock(&self.health);
        self.stopping.load(Ordering::Relaxed) || alive(h.last, Instant::now(), h.limit)
    }

    /// The registry in the text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The exposition of a registry with a series in every family: every name the sidecar exports
/// (e2e/tests/alerts.rs checks the chart's alerts and dashboard against it). An empty family
/// is not encoded at all, hence the series.
pub fn specimen() -> String {
    let m = Metrics::new();
    m.config_outcome(true);
    m.config_outcome(false);
    m.bird_restarts.inc();
    m.draining.set(0);
    m.set_protocols(&[Protocol {
        name: "peer_192_0_2_1".into(),
        proto: "BGP".into(),
        state: "up".into(),
        bgp_state: Some("Established".into()),
        neighbor_address: Some("192.0.2.1".into()),
        ..Default::default()
    }]);
    m.encode()
}

/// A loop that last beat at `last` is alive at `now` unless more than `limit` has passed.
fn alive(last: Instant, now: Instant, limit: Duration) -> bool {
    now.saturating_duration_since(last) <= limit
}

/// The state behind a mutex that only ever holds plain values: a panic elsewhere while it was
/// held cannot leave it half-written, so a poisoned lock is still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    axum::serve(listener, app).await
}

/// Binds `addr` (e.g. `127.0.0.1:9472`).
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
    match m.readiness() {
        None => (StatusCode::OK, "ready".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
    }
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_alive() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "stuck: the sidecar's loop has made no progress within its limit",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specimen_has_every_family() {
        let text = specimen();
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, 9, "{text}");
    }

    #[test]
    fn config_accepted_follows_the_last_outcome() {
        let m = Metrics::new();
        let cases = [
            ("before the first", None, 0),
            ("accepted", Some(true), 1),
            ("refused", Some(false), 0),
            ("accepted again", Some(true), 1),
        ];
        for (name, outcome, want) in cases {
            if let Some(accepted) = outcome {
                m.config_outcome(accepted);
            }
            assert_eq!(m.config_accepted.get(), want, "{name}");
        }
        assert_eq!(m.config_applied.get(), 2);
        assert_eq!(m.config_rejected.get(), 1);
    }

    #[test]
    fn a_loop_is_stuck_only_past_its_limit() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let cases = [
            ("just beat", t0, true),
            ("at the limit", t0 + s(10), true),
            ("past the limit", t0 + s(11), false),
            (
                "clock before the beat",
                t0.checked_sub(s(1)).unwrap_or(t0),
                true,
            ),
        ];
        for (name, now, want) in cases {
            assert_eq!(alive(t0, now, s(10)), want, "{name}");
        }
    }

    #[test]
    fn healthz_follows_the_heartbeat_and_stopping() {
        let m = Metrics::new();
        m.beat(Duration::from_secs(60));
        assert!(m.is_alive(), "fresh beat");
        m.beat(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!m.is_alive(), "no beat within a zero limit");
        m.set_stopping();
        assert!(m.is_alive(), "a draining sidecar is not restarted");
        assert_eq!(m.readiness().as_deref(), Some("draining"));
    }

    #[test]
    fn exports_sessions_and_counters_as_ferrolb_router() {
        let m = Metrics::new();
        m.config_outcome(true);
        let text = include_str!("../tests/fixtures/show-protocols-all-established.txt");
        m.set_protocols(&crate::status::parse_protocols(text));
        let out = m.encode();
        let cases = [
            "ferrolb_router_config_applied_total 1",
            "ferrolb_router_config_rejected_total 0",
            "ferrolb_router_config_accepted 1",
            "ferrolb_router_bird_restarts_total 0",
            "ferrolb_router_bgp_session_up{peer=\"192.0.2.1\",protocol=\"peer_192_0_2_1\"} 1",
            "ferrolb_router_bgp_session_up{peer=\"192.0.2.77\",protocol=\"peer_192_0_2_77\"} 0",
            "ferrolb_router_bgp_prefixes_exported{peer=\"2001:db8:1::1\",protocol=\"peer_2001_db8_1__1\"} 1",
            "ferrolb_router_protocol_up{protocol=\"ferrolb_ospf\",proto=\"OSPF\"} 1",
        ];
        for want in cases {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        for line in out.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            assert!(line.starts_with("ferrolb_router_"), "{line}");
        }
        m.set_protocols(&[]);
        assert!(
            !m.encode().contains("peer_192_0_2_1"),
            "gone protocols lose their series"
        );
    }
}
