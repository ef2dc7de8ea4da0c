//! A per-node Lease read back as plain facts: what a node's agent publishes (Contracts,
//! "per-node Lease"). The allocator, which mirrors holders onto Services, and the CLI, which
//! explains them, read Leases the same way.
//!
//! A Lease is input from another party. Its `renewTime` is the writer's clock: data, not a clock.
//! Liveness is judged on the reader's clock ([`Renewal::expiry`]):
//! - a reader that keeps watching counts a node alive for `leaseDurationSeconds` from the moment
//!   it *saw* the record (holder, renewTime, duration) change, as client-go's leader election
//!   does; the writer's timestamp does not matter, however skewed;
//! - a record seen for the first time (a reader's first list, or a one-shot reader such as the
//!   CLI) has no change to go by: it counts as fresh only while its renewTime is in the plausible
//!   recent past, i.e. no more than [`SKEW`] ahead of the reader's clock, and then only for what is
//!   left of its duration counted from `min(renewTime, now)`. A renewTime further ahead is
//!   skewed: not alive until a renewal is seen.
//!
//! A Lease whose renewTime cannot be read, whose duration is not in 1..=[`MAX_DURATION_SECS`],
//! or whose arithmetic overflows is bad: readers ignore it with a warning. Every sum is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::DynamicObject;

use crate::contracts::{self, IneligibleReason, NODE_LEASE_PREFIX, lease};

/// How far ahead of the reader's clock a renewTime seen for the first time may be and still
/// count (clocks of NTP-synced nodes differ by far less; an agent renews every 5 s, so a node
/// further ahead counts again as soon as a renewal is seen).
pub const SKEW: SignedDuration = SignedDuration::from_secs(5);

/// The longest `leaseDurationSeconds` believed (agents write 15): a longer one would let one
/// write keep a node alive for years.
pub const MAX_DURATION_SECS: i64 = 3600;

/// What a node's agent publishes on its per-node Lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLease {
    pub node: String,
    /// renewTime as written, on the writer's clock.
    pub renewed: Option<Timestamp>,
    /// When the node stops counting as alive. As read: renewTime + leaseDurationSeconds (the
    /// writer's clock); every reader replaces it with its own judgement, [`Renewal::expiry`].
    pub expires: Option<Timestamp>,
    /// The `eligible` annotation as written (`None`: not written).
    pub eligible_text: Option<String>,
    /// `None` eligible (also when the annotation is absent or unreadable, as the allocator
    /// reads it), else why not.
    pub ineligible: Option<IneligibleReason>,
    pub interface_v4: Option<String>,
    pub interface_v6: Option<String>,
    pub subnets: Vec<IpNetwork>,
    pub holding: BTreeSet<IpAddr>,
    pub holding_truncated: bool,
    pub virtual_count: Option<u64>,
    pub gossip_addr: Option<String>,
}

/// The part of a Lease whose change is a renewal (client-go's leader election record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Renewal {
    pub holder: Option<String>,
    pub renewed: Option<Timestamp>,
    pub duration: Option<SignedDuration>,
}

impl Renewal {
    /// When a reader stops counting the node alive, on the reader's clock. `seen`: when the
    /// reader saw this record appear; `first_sighting`: it had nothing earlier to compare with
    /// (its first list, or a one-shot read), so `seen` is not the time of a renewal.
    pub fn expiry(&self, seen: Timestamp, first_sighting: bool) -> Option<Timestamp> {
        let d = self.duration?;
        if !first_sighting {
            return seen.checked_add(d).ok();
        }
        let r = self.renewed?;
        if r > seen.checked_add(SKEW).ok()? {
            return None;
        }
        r.min(seen).checked_add(d).ok()
    }

    /// How far the renewTime is ahead of `now`, when more than [`SKEW`] (a skewed writer's clock
    /// or a forged Lease).
    pub fn ahead(&self, now: Timestamp) -> Option<SignedDuration> {
        let ahead = self.renewed?.duration_since(now);
        (ahead > SKEW).then_some(ahead)
    }
}

/// A per-node Lease that cannot be believed; readers ignore it and say why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("per-node Lease {name} is ignored: {why}")]
pub struct BadLease {
    pub name: String,
    pub why: String,
}

impl NodeLease {
    /// `None` for Leases that are not per-node Leases, and for bad ones (see
    /// [`NodeLease::from_object`] to know why).
    pub fn from_lease(l: &Lease) -> Option<Self> {
        let spec = l.spec.clone().unwrap_or_default();
        read(
            l.metadata.name.as_deref()?,
            l.metadata.annotations.as_ref(),
            spec.holder_identity,
            Ok(spec.renew_time.map(|t| t.0)),
            spec.lease_duration_seconds.map(i64::from),
        )?
        .ok()
        .map(|(l, _)| l)
    }

    /// A Lease read without a typed schema, so that one whose renewTime does not parse (the API
    /// server accepts times this side cannot represent) is reported rather than failing the
    /// list or watch of every Lease. `None` for Leases that are not per-node Leases.
    pub fn from_object(o: &DynamicObject) -> Option<Result<(Self, Renewal), BadLease>> {
        let spec = o.data.get("spec");
        let field = |k: &str| spec.and_then(|s| s.get(k)).filter(|v| !v.is_null());
        let renewed = match field("renewTime") {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .map(Some)
                .ok_or_else(|| format!("renewTime {v} cannot be read")),
        };
        let duration = field("leaseDurationSeconds").map(|v| v.as_i64().unwrap_or(-1));
        read(
            o.metadata.name.as_deref()?,
            o.metadata.annotations.as_ref(),
            field("holderIdentity")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            renewed,
            duration,
        )
    }

    /// Counted alive at `now`: `now` is before [`NodeLease::expires`].
    pub fn alive(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e > now)
    }

    /// The local interface of `addr`'s family.
    pub fn interface(&self, addr: IpAddr) -> Option<&str> {
        match addr {
            IpAddr::V4(_) => self.interface_v4.as_deref(),
            IpAddr::V6(_) => self.interface_v6.as_deref(),
        }
    }
}

/// The one reading of a per-node Lease behind both entry points.
fn read(
    name: &str,
    annotations: Option<&BTreeMap<String, String>>,
    holder: Option<String>,
    renewed: Result<Option<Timestamp>, String>,
    duration: Option<i64>,
) -> Option<Result<(NodeLease, Renewal), BadLease>> {
    let node = name.strip_prefix(NODE_LEASE_PREFIX)?;
    let bad = |why: String| {
        Some(Err(BadLease {
            name: name.to_string(),
            why,
        }))
    };
    let renewed = match renewed {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    let duration = match duration {
        None => None,
        Some(d) if (1..=MAX_DURATION_SECS).contains(&d) => Some(SignedDuration::from_secs(d)),
        Some(d) => {
            return bad(format!(
                "leaseDurationSeconds {d} is not within 1..={MAX_DURATION_SECS}"
            ));
        }
    };
    let expires = match (renewed, duration) {
        (Some(t), Some(d)) => match t.checked_add(d) {
            Ok(e) => Some(e),
            Err(_) => {
                return bad(format!(
                    "renewTime {t} plus its duration is past the end of time"
                ));
            }
        },
        _ => None,
    };
    let empty = BTreeMap::new();
    let a = annotations.unwrap_or(&empty);
    let words = |k: &str| -> Vec<String> {
        a.get(k)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let lease = NodeLease {
        node: node.to_string(),
        renewed,
        expires,
        eligible_text: a.get(lease::ELIGIBLE).cloned(),
        ineligible: a
            .get(lease::ELIGIBLE)
            .and_then(|v| contracts::parse_eligible(v).ok())
            .flatten(),
        interface_v4: a.get(lease::INTERFACE_V4).cloned(),
        interface_v6: a.get(lease::INTERFACE_V6).cloned(),
        subnets: words(lease::SUBNETS)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        holding: words(lease::HOLDING)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        holding_truncated: a.get(lease::HOLDING_TRUNCATED).map(String::as_str) == Some("true"),
        virtual_count: a
            .get(lease::VIRTUAL_COUNT)
            .and_then(|v| v.trim().parse().ok()),
        gossip_addr: a.get(lease::GOSSIP_ADDR).cloned(),
    };
    let renewal = Renewal {
        holder,
        renewed,
        duration,
    };
    Some(Ok((lease, renewal)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn object(name: &str, annotations: &[(&str, &str)]) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("n1".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    "2026-11-30T10:00:00Z".parse().expect("a timestamp"),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn reads_what_the_agent_publishes() {
        let l = NodeLease::from_lease(&object(
            "ferrolb-node-n1",
            &[
                (lease::ELIGIBLE, "false,carrier-down"),
                (lease::INTERFACE_V4, "eth0"),
                (lease::SUBNETS, "192.0.2.0/24 2001:db8::/64"),
                (lease::HOLDING, "192.0.2.10 2001:db8::10"),
                (lease::VIRTUAL_COUNT, "3"),
            ],
        ))
        .expect("a per-node Lease");
        assert_eq!(l.node, "n1");
        assert_eq!(l.ineligible, Some(IneligibleReason::CarrierDown));
        assert_eq!(l.subnets.len(), 2);
        assert_eq!(l.holding.len(), 2);
        assert_eq!(l.virtual_count, Some(3));
        assert_eq!(
            l.interface("192.0.2.10".parse().expect("an address")),
            Some("eth0")
        );
        assert_eq!(
            l.interface("2001:db8::10".parse().expect("an address")),
            None
        );
        let renewed: Timestamp = "2026-11-30T10:00:00Z".parse().expect("a timestamp");
        assert!(l.alive(renewed + SignedDuration::from_secs(14)));
        assert!(!l.alive(renewed + SignedDuration::from_secs(15)));
    }

    #[test]
    fn other_leases_are_not_node_leases() {
        assert_eq!(
            NodeLease::from_lease(&object("ferrolb-allocator", &[])),
            None
        );
    }
    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn liveness_is_judged_on_the_readers_clock() {
        let now = at("2026-11-30T10:00:00Z");
        let renewal = |ago: SignedDuration| Renewal {
            holder: Some("n1".into()),
            renewed: now.checked_sub(ago).ok(),
            duration: Some(secs(15)),
        };
        let far = secs(9_000 * 365 * 86_400);
        // (name, renewTime this long before `now`, first sighting, expiry judged at `now`)
        let cases: Vec<(&str, SignedDuration, bool, Option<Timestamp>)> = vec![
            (
                "a renewal seen now lasts a duration",
                secs(0),
                false,
                Some(now + secs(15)),
            ),
            (
                "a renewal seen now lasts a duration however old the writer's clock says it is",
                far,
                false,
                Some(now + secs(15)),
            ),
            (
                "a renewal seen now lasts a duration however far ahead the writer's clock is",
                -far,
                false,
                Some(now + secs(15)),
            ),
            (
                "first seen, renewed 5 s ago: 10 s left",
                secs(5),
                true,
                Some(now + secs(10)),
            ),
            (
                "first seen, renewed 60 s ago: expired 45 s ago",
                secs(60),
                true,
                Some(now - secs(45)),
            ),
            (
                "first seen, 3 s ahead (within the skew): a full duration",
                secs(-3),
                true,
                Some(now + secs(15)),
            ),
            (
                "first seen, 6 s ahead: skewed, not alive until a renewal is seen",
                secs(-6),
                true,
                None,
            ),
            ("first seen, millennia ahead: not alive", -far, true, None),
        ];
        for (name, ago, first, want) in cases {
            assert_eq!(renewal(ago).expiry(now, first), want, "{name}");
        }
        let never = Renewal {
            renewed: None,
            ..renewal(secs(0))
        };
        assert_eq!(never.expiry(now, true), None, "never renewed");
        assert_eq!(renewal(secs(-6)).ahead(now), Some(secs(6)));
        assert_eq!(renewal(secs(-5)).ahead(now), None);
        assert_eq!(
            renewal(secs(0)).expiry(Timestamp::MAX, false),
            None,
            "no overflow"
        );
    }

    fn dynamic(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": "ferrolb-node-n1" }, "spec": spec,
        }))
        .expect("an object")
    }

    #[test]
    fn what_the_api_server_accepts_is_read_without_panic() {
        // (name, spec, Ok(renewed) or Err(part of why it is ignored))
        let cases: Vec<(&str, serde_json::Value, Result<Option<&str>, &str>)> = vec![
            (
                "an agent's Lease",
                serde_json::json!({ "renewTime": "2026-11-30T10:00:00.000000Z", "leaseDurationSeconds": 15 }),
                Ok(Some("2026-11-30T10:00:00Z")),
            ),
            (
                "no renewTime",
                serde_json::json!({ "leaseDurationSeconds": 15 }),
                Ok(None),
            ),
            (
                "a renewTime this side cannot represent",
                serde_json::json!({ "renewTime": "9999-12-31T23:59:59.999999Z", "leaseDurationSeconds": 15 }),
                Err("cannot be read"),
            ),
            (
                "renewTime plus duration past the end of time",
                serde_json::json!({ "renewTime": "9999-12-30T21:59:59.000000Z", "leaseDurationSeconds": 15 }),
                Err("end of time"),
            ),
            (
                "a duration of 68 years",
                serde_json::json!({ "renewTime": "2026-11-30T10:00:00.000000Z", "leaseDurationSeconds": 2147483647 }),
                Err("leaseDurationSeconds"),
            ),
            (
                "a zero duration",
                serde_json::json!({ "renewTime": "2026-11-30T10:00:00.000000Z", "leaseDurationSeconds": 0 }),
                Err("leaseDurationSeconds"),
            ),
        ];
        for (name, spec, want) in cases {
            let got = NodeLease::from_object(&dynamic(spec)).expect("a per-node Lease");
            match (got, want) {
                (Ok((l, r)), Ok(renewed)) => {
                    let renewed = renewed.map(at);
                    assert_eq!(l.renewed, renewed, "{name}");
                    assert_eq!(r.renewed, renewed, "{name}");
                }
                (Err(e), Err(why)) => {
                    assert!(e.why.contains(why), "{name}: {e}");
                    assert_eq!(e.name, "ferrolb-node-n1", "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
