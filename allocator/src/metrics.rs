//! The allocator's metrics (prometheus-client, names `ferrolb_allocator_*`) and the
//! `/metrics`, `/healthz`, `/readyz` endpoint. What a gauge shows is computed from the plan by
//! pure functions ([`invalid_groups`], [`announcers`]); this module only carries it out.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;
use ferrolb_api::pool::Family as AddrFamily;
use ferrolb_api::servicegroup::condition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::decide::{GroupPlan, SvcPlan};

/// Every name this registry exports starts with this.
pub const PREFIX: &str = "ferrolb_allocator";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HolderLabels {
    group: String,
}

/// One allocated address. Not `namespace`/`service`: Prometheus's scrape of the allocator's
/// own Service sets those target labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AddressLabels {
    pub service_namespace: String,
    pub service_name: String,
    pub group: String,
    pub address: String,
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
    usage_series: Mutex<HashSet<GroupLabels>>,
    holder_changes: Family<HolderLabels, Counter>,
    groups_invalid: Family<ReasonLabels, Gauge>,
    announcers: Family<AddressLabels, Gauge>,
    announcer_series: Mutex<HashSet<AddressLabels>>,
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

/// The reasons a ServiceGroup gives out no address though it exists: its `InvalidRange` or
/// `Overlapping` condition is True.
pub const INVALID_REASONS: [&str; 2] = [condition::INVALID_RANGE, condition::OVERLAPPING];

/// Per reason of [`INVALID_REASONS`], how many groups have that condition True (a group with
/// both counts under both). Every reason is there, zero included: an absent series and "no
/// invalid group" look different to an alert.
pub fn invalid_groups(groups: &[GroupPlan]) -> BTreeMap<&'static str, usize> {
    INVALID_REASONS
        .iter()
        .map(|&r| {
            let n = groups
                .iter()
                .filter(|g| {
                    g.status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == r && c.status == "True")
                })
                .count();
            (r, n)
        })
        .collect()
}

/// How many nodes announce each address of each Service the plan gives addresses to, from
/// the `announcing-IPv4/-IPv6` annotation the plan writes: a local group's value lists one
/// `node,interface,address` per holder; a virtual group's says `<n> nodes,<interface>`; no
/// annotation is nobody.
pub fn announcers(services: &[SvcPlan]) -> BTreeMap<AddressLabels, usize> {
    let mut out = BTreeMap::new();
    for p in services {
        let Some(group) = &p.group else { continue };
        for addr in &p.ingress {
            let key = match AddrFamily::of(*addr) {
                AddrFamily::V4 => ann::ANNOUNCING_IPV4,
                AddrFamily::V6 => ann::ANNOUNCING_IPV6,
            };
            let n = p
                .annotations
                .get(key)
                .map_or(0, |v| nodes_in(&ann::announcing_for(v, *addr)));
            out.insert(
                AddressLabels {
                    service_namespace: p.key.namespace.clone(),
                    service_name: p.key.name.clone(),
                    group: group.clone(),
                    address: addr.to_string(),
                },
                n,
            );
        }
    }
    out
}

/// The number of nodes an announcing value names.
fn nodes_in(value: &str) -> usize {
    match value.split_once(" nodes,") {
        Some((n, _)) => n.trim().parse().unwrap_or(0),
        None => value.split_whitespace().count(),
    }
}

/// The HolderChanged news of a Service's plan: one per address whose holders change.
pub fn holder_changes(p: &SvcPlan) -> usize {
    p.news
        .iter()
        .filter(|n| n.reason == reason::HOLDER_CHANGED)
        .count()
}

/// Sets `family` to exactly `rows`: a series of the last call that is not among them goes.
fn replace<L, G>(
    family: &Family<L, Gauge<i64, G>>,
    before: &Mutex<HashSet<L>>,
    rows: impl IntoIterator<Item = (L, i64)>,
) where
    L: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug,
    G: prometheus_client::metrics::gauge::Atomic<i64> + Default,
{
    let mut now = HashSet::new();
    for (labels, value) in rows {
        family.get_or_create(&labels).set(value);
        now.insert(labels);
    }
    let mut before = before.lock().unwrap_or_else(|p| p.into_inner());
    for gone in before.difference(&now) {
        family.remove(gone);
    }
    *before = now;
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let allocations = Family::<GroupLabels, Counter>::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let event_failures = Family::<ReasonLabels, Counter>::default();
        let capacity = Family::<GroupLabels, Gauge<f64, AtomicU64>>::default();
        let allocated = Family::<GroupLabels, Gauge>::default();
        let holder_changes = Family::<HolderLabels, Counter>::default();
        let groups_invalid = Family::<ReasonLabels, Gauge>::default();
        let announcers = Family::<AddressLabels, Gauge>::default();
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
            "holder_changes",
            "Changes of the nodes announcing a local address (HolderChanged Events), by ServiceGroup",
            holder_changes.clone(),
        );
        registry.register(
            "groups_invalid",
            "ServiceGroups that give out no address because their InvalidRange or Overlapping \
             condition is True, by that condition",
            groups_invalid.clone(),
        );
        registry.register(
            "address_announcers",
            "Nodes announcing each allocated address, as the per-node Leases tell it (0: nobody)",
            announcers.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one allocation pass, decide and apply",
            reconcile.clone(),
        );
        let m = Metrics {
            registry,
            allocations,
            failures,
            event_failures,
            capacity,
            allocated,
            usage_series: Mutex::default(),
            holder_changes,
            groups_invalid,
            announcers,
            announcer_series: Mutex::default(),
            reconcile,
            ready: AtomicBool::new(false),
        };
        m.groups(&[]);
        m
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

    /// Counts the holder changes a Service's plan tells of (see [`holder_changes`]).
    pub fn holders_changed(&self, p: &SvcPlan) {
        let n = holder_changes(p);
        if let (Some(group), true) = (&p.group, n > 0) {
            self.holder_changes
                .get_or_create(&HolderLabels {
                    group: group.clone(),
                })
                .inc_by(n as u64);
        }
    }

    /// Capacity and allocated addresses of every (group, family) there is now; the series of
    /// groups and families no longer there go.
    pub fn usages<'a>(&self, rows: impl IntoIterator<Item = (&'a str, AddrFamily, u128, u64)>) {
        let mut now = HashSet::new();
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

    /// The per-group gauges of a plan: pool usage, invalid groups.
    pub fn groups(&self, groups: &[GroupPlan]) {
        self.usages(groups.iter().flat_map(|p| {
            p.usage.iter().map(|(family, capacity, allocated)| {
                (p.name.as_str(), *family, *capacity, *allocated)
            })
        }));
        for (reason, n) in invalid_groups(groups) {
            self.groups_invalid
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .set(gauge(n));
        }
    }

    /// The announcers of every allocated address of a plan; addresses no longer allocated lose
    /// their series.
    pub fn announced(&self, services: &[SvcPlan]) {
        replace(
            &self.announcers,
            &self.announcer_series,
            announcers(services)
                .into_iter()
                .map(|(labels, n)| (labels, gauge(n))),
        );
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

/// The exposition of a registry with a series in every family: every name the allocator
/// exports (e2e/tests/alerts.rs checks the chart's alerts and dashboard against it). An empty
/// family is not encoded at all, hence the series.
pub fn specimen() -> String {
    let m = Metrics::new();
    let addr: std::net::IpAddr = [192, 0, 2, 1].into();
    m.allocated("g", addr);
    m.failed(reason::ALLOCATION_FAILED);
    m.event_failed(reason::ALLOCATION_FAILED);
    m.groups(&[GroupPlan {
        name: "g".into(),
        usage: vec![(AddrFamily::V4, 1, 1)],
        ..Default::default()
    }]);
    let svc = SvcPlan {
        group: Some("g".into()),
        ingress: vec![addr],
        news: vec![crate::decide::Note::normal(reason::HOLDER_CHANGED, "")],
        ..Default::default()
    };
    m.holders_changed(&svc);
    m.announced(&[svc]);
    m.reconciled(0.0);
    m.render()
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
mod tests;
