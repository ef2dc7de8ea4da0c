//! The ServiceGroup rules CEL cannot express: range order, pools overlapping within a group and
//! between groups. The allocator reports these as conditions; `kubectl ferrolb check` offline.
//! And an LBNodeAgent's settings parsed within their bounds: the agent runs with exactly what
//! this check accepts, and ignores (with an Event) an object it refuses.

use std::fmt;
use std::time::Duration;

use kube::core::Selector;

use crate::duration::parse_within;
use crate::lbnodeagent::{LBNodeAgentSpec, SELECTOR_OPERATORS, bounds};
use crate::pool::{AddrRange, Family, parse_cidr};
use crate::servicegroup::{Pool, ServiceGroupSpec};
use ipnetwork::IpNetwork;

/// One problem, with the field it is about (`spec.local.v4pools[0].pool`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A pool of a group with the path of its field, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPool {
    pub field: String,
    pub family: Family,
    pub range: AddrRange,
    pub subnet: IpNetwork,
}

/// Parses every pool of a group. Pools that do not parse, or whose range is reversed, are left
/// out of the result and reported as problems (CEL refuses most of them; reversed ranges only
/// this check catches).
pub fn parse_pools(spec: &ServiceGroupSpec) -> (Vec<ParsedPool>, Vec<Problem>) {
    let kind = match (&spec.local, &spec.virtual_) {
        (Some(_), _) => "local",
        _ => "virtual",
    };
    let (v4, v6) = spec.pools();
    let mut pools = Vec::new();
    let mut problems = Vec::new();
    for (list, family, name) in [(v4, Family::V4, "v4pools"), (v6, Family::V6, "v6pools")] {
        for (i, pool) in list.iter().enumerate() {
            let field = format!("spec.{kind}.{name}[{i}]");
            match parse_pool(pool, family, &field) {
                Ok(p) => pools.push(p),
                Err(p) => problems.push(p),
            }
        }
    }
    (pools, problems)
}

fn parse_pool(pool: &Pool, family: Family, field: &str) -> Result<ParsedPool, Problem> {
    let problem = |sub: &str, message: String| Problem {
        field: format!("{field}.{sub}"),
        message,
    };
    let subnet = parse_cidr(&pool.subnet).map_err(|e| problem("subnet", e.to_string()))?;
    if Family::of(subnet.ip()) != family {
        return Err(problem(
            "subnet",
            format!("{} is not an {family} subnet", pool.subnet),
        ));
    }
    let range = AddrRange::parse(&pool.pool).map_err(|e| problem("pool", e.to_string()))?;
    if range.family() != family {
        return Err(problem(
            "pool",
            format!("{} is not an {family} pool", pool.pool),
        ));
    }
    if !range.is_ordered() {
        return Err(problem(
            "pool",
            format!(
                "range {} starts after it ends; write it as {}-{}",
                pool.pool, range.end, range.start
            ),
        ));
    }
    let whole = AddrRange::of_network(subnet);
    if !whole.contains(range.start) || !whole.contains(range.end) {
        return Err(problem(
            "pool",
            format!("{} does not lie inside subnet {}", pool.pool, pool.subnet),
        ));
    }
    Ok(ParsedPool {
        field: field.to_string(),
        family,
        range,
        subnet,
    })
}

/// Every problem of one group on its own: unparsable or reversed pools, pools that overlap
/// each other.
pub fn check_group(spec: &ServiceGroupSpec) -> Vec<Problem> {
    let (pools, mut problems) = parse_pools(spec);
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if a.range.overlaps(&b.range) {
                problems.push(Problem {
                    field: format!("{}.pool", b.field),
                    message: format!("overlaps {}.pool ({})", a.field, a.range),
                });
            }
        }
    }
    problems
}

/// A group as the overlap check needs it: name, age order, spec.
pub struct GroupRef<'a> {
    pub name: &'a str,
    /// Creation time as sortable text (RFC 3339) or any order key; older sorts first.
    pub created: &'a str,
    pub spec: &'a ServiceGroupSpec,
}

/// Pairs of groups whose pools overlap: `(newer, older, the newer's field, the older's range)`.
/// The newer of the two (by creation, then name) is the one not to use.
pub fn overlapping_groups(groups: &[GroupRef<'_>]) -> Vec<Overlap> {
    let mut sorted: Vec<&GroupRef<'_>> = groups.iter().collect();
    sorted.sort_by(|a, b| (a.created, a.name).cmp(&(b.created, b.name)));
    let parsed: Vec<Vec<ParsedPool>> = sorted.iter().map(|g| parse_pools(g.spec).0).collect();
    let mut out = Vec::new();
    for (i, newer) in sorted.iter().enumerate() {
        for (j, older) in sorted[..i].iter().enumerate() {
            for a in &parsed[i] {
                if let Some(b) = parsed[j].iter().find(|b| a.range.overlaps(&b.range)) {
                    out.push(Overlap {
                        newer: newer.name.to_string(),
                        older: older.name.to_string(),
                        field: format!("{}.pool", a.field),
                        older_range: b.range,
                    });
                }
            }
        }
    }
    out
}

/// Two groups claim the same addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub newer: String,
    pub older: String,
    pub field: String,
    pub older_range: AddrRange,
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: overlaps ServiceGroup {} ({}); {} is not used until this is fixed",
            self.field, self.older, self.older_range, self.newer
        )
    }
}

/// An LBNodeAgent's durations, parsed and within [`bounds`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentDurations {
    /// `localAddressLifetime`, whole seconds.
    pub local_address_lifetime: u32,
    pub conflict_probe: Duration,
    pub gossip_settle: Duration,
    pub drain: Duration,
    pub gratuitous_interval: Duration,
    pub gratuitous_initial_delay: Duration,
}

/// `localAddressLifetime` is whole seconds from 3 s; at most what the CRD's pattern allows.
const LIFETIME_MAX_SECS: u64 = 999_999;

/// Every duration of `spec` within its bounds, or a problem per field that is not.
pub fn agent_durations(spec: &LBNodeAgentSpec) -> Result<AgentDurations, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut field = |name: &str, text: &str, (min, max): bounds::Bounds| {
        parse_within(text, min, max)
            .map_err(|e| {
                problems.push(Problem {
                    field: name.into(),
                    message: e.to_string(),
                })
            })
            .unwrap_or_default()
    };
    let conflict_probe = field(
        "spec.conflictProbe",
        &spec.conflict_probe,
        bounds::CONFLICT_PROBE,
    );
    let gossip_settle = field(
        "spec.gossipSettle",
        &spec.gossip_settle,
        bounds::GOSSIP_SETTLE,
    );
    let drain = field("spec.drain", &spec.drain, bounds::DRAIN);
    let gratuitous_interval = field(
        "spec.gratuitous.interval",
        &spec.gratuitous.interval,
        bounds::GRATUITOUS_INTERVAL,
    );
    let gratuitous_initial_delay = field(
        "spec.gratuitous.initialDelay",
        &spec.gratuitous.initial_delay,
        bounds::GRATUITOUS_INITIAL_DELAY,
    );
    let lifetime = &spec.local_address_lifetime;
    let local_address_lifetime = match crate::duration::parse(lifetime) {
        Ok(d) if d.subsec_nanos() == 0 && (3..=LIFETIME_MAX_SECS).contains(&d.as_secs()) => {
            u32::try_from(d.as_secs()).unwrap_or_default()
        }
        _ => {
            problems.push(Problem {
                field: "spec.localAddressLifetime".into(),
                message: format!(
                    "{lifetime:?} is not whole seconds from 3s to {LIFETIME_MAX_SECS}s"
                ),
            });
            0
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(AgentDurations {
        local_address_lifetime,
        conflict_probe,
        gossip_settle,
        drain,
        gratuitous_interval,
        gratuitous_initial_delay,
    })
}

/// The nodeSelector as a selector (`None`: every node), or why it cannot be one: an operator
/// other than In, NotIn, Exists, DoesNotExist, or values where they do not belong.
pub fn agent_selector(spec: &LBNodeAgentSpec) -> Result<Option<Selector>, Problem> {
    let Some(selector) = &spec.node_selector else {
        return Ok(None);
    };
    let problem = |i: usize, message: String| Problem {
        field: format!("spec.nodeSelector.matchExpressions[{i}]"),
        message,
    };
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if values == 0 => {
                return Err(problem(i, format!("{} needs values", e.operator)));
            }
            "Exists" | "DoesNotExist" if values > 0 => {
                return Err(problem(i, format!("{} takes no values", e.operator)));
            }
            op if !SELECTOR_OPERATORS.contains(&op) => {
                return Err(problem(
                    i,
                    format!(
                        "unknown operator {op:?}; use one of {}",
                        SELECTOR_OPERATORS.join(", ")
                    ),
                ));
            }
            _ => {}
        }
    }
    Selector::try_from(selector.clone())
        .map(Some)
        .map_err(|e| Problem {
            field: "spec.nodeSelector".into(),
            message: e.to_string(),
        })
}

/// `virtualInterface` as the CRD's rule says: a Linux interface name, at most 15 characters.
pub fn virtual_interface_problem(spec: &LBNodeAgentSpec) -> Option<Problem> {
    let name = &spec.virtual_interface;
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'.' | b'_' | b'-')));
    (!ok).then(|| Problem {
        field: "spec.virtualInterface".into(),
        message: format!(
            "{name:?} is not an interface name (letters, digits, '.', '_', '-'; at most 15)"
        ),
    })
}

/// Every problem of an LBNodeAgent that its own parse finds (the regex of `localInterface` is
/// compiled by the agent; CEL and `kubectl ferrolb check` test it with `matches`).
pub fn check_agent(spec: &LBNodeAgentSpec) -> Vec<Problem> {
    let mut problems: Vec<Problem> = virtual_interface_problem(spec).into_iter().collect();
    problems.extend(agent_durations(spec).err().unwrap_or_default());
    problems.extend(agent_selector(spec).err());
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servicegroup::{LocalSpec, VirtualSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn with_expression(operator: &str, values: Option<Vec<String>>) -> LBNodeAgentSpec {
        LBNodeAgentSpec {
            node_selector: Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: operator.into(),
                    values,
                }]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn agent_settings_parse_within_bounds_or_name_the_field() {
        let spec = |f: fn(&mut LBNodeAgentSpec)| {
            let mut s = LBNodeAgentSpec::default();
            f(&mut s);
            s
        };
        let cases: Vec<(&str, LBNodeAgentSpec, Vec<&str>)> = vec![
            ("defaults", LBNodeAgentSpec::default(), vec![]),
            (
                "drain of u64::MAX seconds",
                spec(|s| s.drain = "18446744073709551615s".into()),
                vec!["spec.drain: \"18446744073709551615s\" is more than the most allowed, 5m"],
            ),
            (
                "conflict probe too often",
                spec(|s| s.conflict_probe = "10ms".into()),
                vec!["spec.conflictProbe: \"10ms\" is less than the least allowed, 100ms"],
            ),
            (
                "settle in words",
                spec(|s| s.gossip_settle = "soon".into()),
                vec!["spec.gossipSettle: \"soon\" is not a duration"],
            ),
            (
                "lifetime in ms",
                spec(|s| s.local_address_lifetime = "3500ms".into()),
                vec!["spec.localAddressLifetime"],
            ),
            (
                "two at once",
                spec(|s| {
                    s.gratuitous.interval = "2m".into();
                    s.gratuitous.initial_delay = "1h".into();
                }),
                vec!["spec.gratuitous.interval", "spec.gratuitous.initialDelay"],
            ),
            (
                "unknown operator",
                with_expression("Equals", Some(vec!["a".into()])),
                vec!["spec.nodeSelector.matchExpressions[0]: unknown operator \"Equals\""],
            ),
            (
                "In without values",
                with_expression("In", None),
                vec!["spec.nodeSelector.matchExpressions[0]: In needs values"],
            ),
            (
                "Exists with values",
                with_expression("Exists", Some(vec!["a".into()])),
                vec!["spec.nodeSelector.matchExpressions[0]: Exists takes no values"],
            ),
            (
                "DoesNotExist",
                with_expression("DoesNotExist", None),
                vec![],
            ),
            (
                "virtual interface too long",
                spec(|s| s.virtual_interface = "kube-lb0-is-too-long".into()),
                vec!["spec.virtualInterface"],
            ),
            (
                "virtual interface with a slash",
                spec(|s| s.virtual_interface = "kube/lb0".into()),
                vec!["spec.virtualInterface"],
            ),
        ];
        for (name, spec, want) in cases {
            let got: Vec<String> = check_agent(&spec).iter().map(ToString::to_string).collect();
            assert_eq!(got.len(), want.len(), "{name}: {got:?}");
            for (g, w) in got.iter().zip(&want) {
                assert!(g.starts_with(w), "{name}: {g:?} does not start with {w:?}");
            }
        }
        let d = agent_durations(&LBNodeAgentSpec::default()).expect("defaults parse");
        assert_eq!(
            (d.local_address_lifetime, d.drain, d.conflict_probe),
            (5, Duration::from_secs(5), Duration::from_secs(1))
        );
    }

    fn pool(subnet: &str, pool: &str) -> Pool {
        Pool {
            subnet: subnet.into(),
            pool: pool.into(),
            aggregation: None,
        }
    }

    fn local(v4: Vec<Pool>, v6: Vec<Pool>) -> ServiceGroupSpec {
        ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: v4,
                v6pools: v6,
                ..Default::default()
            }),
            auto_assign: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn flags_what_cel_cannot() {
        let cases: Vec<(&str, ServiceGroupSpec, Vec<&str>)> = vec![
            (
                "valid dual-stack group",
                local(
                    vec![pool("192.0.2.0/24", "192.0.2.100-192.0.2.150")],
                    vec![pool("2001:db8:1::/64", "2001:db8:1::/120")],
                ),
                vec![],
            ),
            (
                "reversed range",
                local(
                    vec![pool("192.0.2.0/24", "192.0.2.150-192.0.2.100")],
                    vec![],
                ),
                vec!["spec.local.v4pools[0].pool"],
            ),
            (
                "reversed v6 range",
                local(
                    vec![],
                    vec![pool("2001:db8:1::/64", "2001:db8:1::9-2001:db8:1::1")],
                ),
                vec!["spec.local.v6pools[0].pool"],
            ),
            (
                "two pools of one group overlap",
                local(
                    vec![
                        pool("192.0.2.0/24", "192.0.2.0/28"),
                        pool("192.0.2.0/24", "192.0.2.10-192.0.2.20"),
                    ],
                    vec![],
                ),
                vec!["spec.local.v4pools[1].pool"],
            ),
            (
                "v6 subnet in v4pools",
                local(vec![pool("2001:db8::/64", "2001:db8::/120")], vec![]),
                vec!["spec.local.v4pools[0].subnet"],
            ),
            (
                "range outside subnet",
                local(vec![pool("192.0.2.0/24", "192.0.2.250-192.0.3.5")], vec![]),
                vec!["spec.local.v4pools[0].pool"],
            ),
            (
                "comma list",
                local(vec![pool("192.0.2.0/24", "192.0.2.1,192.0.2.2")], vec![]),
                vec!["spec.local.v4pools[0].pool"],
            ),
        ];
        for (name, spec, want) in cases {
            let got: Vec<String> = check_group(&spec).into_iter().map(|p| p.field).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_newer_of_two_overlapping_groups_is_flagged() {
        let a = local(vec![pool("192.0.2.0/24", "192.0.2.0/26")], vec![]);
        let b = ServiceGroupSpec {
            virtual_: Some(VirtualSpec {
                v4pools: vec![pool("192.0.2.0/24", "192.0.2.60-192.0.2.70")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = local(vec![pool("192.0.2.0/24", "192.0.2.128/26")], vec![]);
        let groups = [
            GroupRef {
                name: "b",
                created: "2026-01-02T00:00:00Z",
                spec: &b,
            },
            GroupRef {
                name: "a",
                created: "2026-01-01T00:00:00Z",
                spec: &a,
            },
            GroupRef {
                name: "c",
                created: "2026-01-03T00:00:00Z",
                spec: &c,
            },
        ];
        let got = overlapping_groups(&groups);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].newer, "b");
        assert_eq!(got[0].older, "a");
        assert_eq!(got[0].field, "spec.virtual.v4pools[0].pool");
        assert!(got[0].to_string().contains("overlaps ServiceGroup a"));
    }
}
