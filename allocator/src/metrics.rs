//! The allocator's metrics (prometheus-client, prefix `ferrolb`) and the `/metrics`, `/healthz`,
//! `/readyz` endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ferrolb_api::pool::Family as AddrFamily;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Every metric of the allocator, in one registry.
pub struct Metrics {
    registry: Registry,
    allocations: Family<GroupLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    event_failures: Family<ReasonLabels, Counter>,
    capacity: Family<GroupLabels, Gauge<f64, AtomicU64>>,
    allocated: Family<GroupLabels, Gauge>,
    /// The (group, family) series of the last [`Metrics::usages`]: those of a group (or family)
    /// that is gone are removed, not left at their last value.
    usage_series: std::sync::Mutex<std::collections::HashSet<GroupLabels>>,
    reconcile: Histogram,
    /// Caches synced and (when electing) this replica leads or follows: `/readyz` says ok.
    pub ready: AtomicBool,
}

fn family_name(f: AddrFamily) -> String {
    match f {
        AddrFamily::V4 => "ipv4".into(),
        AddrFamily::V6 => "ipv6".into(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb");
        let allocations = Family::<GroupLabels, Counter>::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let event_failures = Family::<ReasonLabels, Counter>::default();
        let capacity = Family::<GroupLabels, Gauge<f64, AtomicU64>>::default();
        let allocated = Family::<GroupLabels, Gauge>::default();
        let reconcile = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "allocations",
            "Addresses allocated to Services",
            allocations.clone(),
        );
        registry.register(
            "allocation_failures",
            "Allocations that failed, by Event reason",
            failures.clone(),
        );
        registry.register(
            "event_failures",
            "Events the API server did not take, by Event reason",
            event_failures.clone(),
        );
        registry.register(
            "pool_capacity_addresses",
            "Allocatable addresses per ServiceGroup and family",
            capacity.clone(),
        );
        registry.register(
            "pool_allocated_addresses",
            "Allocated addresses per ServiceGroup and family",
            allocated.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one allocation pass, decide and apply",
            reconcile.clone(),
        );
        Metrics {
            registry,
            allocations,
            failures,
            event_failures,
            capacity,
            allocated,
            usage_series: std::sync::Mutex::default(),
            reconcile,
            ready: AtomicBool::new(false),
        }
    }

    pub fn allocated(&self, group: &str, addr: std::net::IpAddr) {
        let family = family_name(AddrFamily::of(addr));
        self.allocations
            .get_or_create(&GroupLabels {
                group: group.into(),
                family,
            })
            .inc();
    }

    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn event_failed(&self, reason: &str) {
        self.event_failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// Capacity and allocated addresses of every (group, family) there is now; the series of
    /// groups and families no longer there go.
    pub fn usages<'a>(&self, rows: impl IntoIterator<Item = (&'a str, AddrFamily, u128, u64)>) {
        let mut now = std::collections::HashSet::new();
        for (group, family, capacity, allocated) in rows {
            let labels = GroupLabels {
                group: group.into(),
                family: family_name(family),
            };
            // A /64 holds more than f64 counts exactly; the gauge is for dashboards.
            self.capacity.get_or_create(&labels).set(capacity as f64);
            self.allocated
                .get_or_create(&labels)
                .set(i64::try_from(allocated).unwrap_or(i64::MAX));
            now.insert(labels);
        }
        let mut before = self.usage_series.lock().unwrap_or_else(|p| p.into_inner());
        for gone in before.difference(&now) {
            self.capacity.remove(gone);
            self.allocated.remove(gone);
        }
        *before = now;
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconcile.observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Binds the endpoint; returns the address it listens on (for `--metrics-addr ...:0`).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/healthz" => ("200 OK", "ok\n".to_string()),
                    "/readyz" if metrics.ready.load(Ordering::Relaxed) => ("200 OK", "ok\n".into()),
                    "/readyz" => ("503 Service Unavailable", "caches not synced\n".into()),
                    _ => ("404 Not Found", "not found\n".into()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_the_ferrolb_prefix() {
        let m = Metrics::new();
        m.allocated("default", "192.0.2.1".parse().expect("ip"));
        m.failed("AllocationFailed");
        m.event_failed("AllocationFailed");
        m.usages([("default", AddrFamily::V4, 51, 1)]);
        m.reconciled(0.01);
        let text = m.render();
        for want in [
            "ferrolb_allocations_total{group=\"default\",family=\"ipv4\"} 1",
            "ferrolb_allocation_failures_total{reason=\"AllocationFailed\"} 1",
            "ferrolb_event_failures_total{reason=\"AllocationFailed\"} 1",
            "ferrolb_pool_capacity_addresses{group=\"default\",family=\"ipv4\"} 51",
            "ferrolb_pool_allocated_addresses{group=\"default\",family=\"ipv4\"} 1",
            "ferrolb_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
    }

    /// Issue 20: a deleted group's pool series stayed at their last value forever.
    #[test]
    fn the_pool_series_of_a_group_that_is_gone_go() {
        let m = Metrics::new();
        m.usages([
            ("a", AddrFamily::V4, 10, 1),
            ("a", AddrFamily::V6, 10, 1),
            ("b", AddrFamily::V4, 5, 0),
        ]);
        m.usages([("a", AddrFamily::V4, 10, 2)]);
        let text = m.render();
        assert!(
            text.contains("ferrolb_pool_allocated_addresses{group=\"a\",family=\"ipv4\"} 2"),
            "{text}"
        );
        for gone in ["group=\"b\"", "family=\"ipv6\""] {
            assert!(!text.contains(gone), "{gone} still in\n{text}");
        }
    }
}
