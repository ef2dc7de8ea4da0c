//! `kubectl ferrolb check FILE`: ServiceGroups and LBNodeAgents checked offline with the CRDs'
//! own rules (schema and CEL), ferrolb's range checks and overlaps between the groups given.

use ferrolb_api::ServiceGroupSpec;
use ferrolb_api::check::{GroupRef, overlapping_groups};
use serde_json::Value;

use crate::yaml::object_name;

/// The outcome of checking a set of objects.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per object: `ok kind/name` or `kind/name: field: message`.
    pub lines: Vec<String>,
    pub problems: usize,
}

/// Checks every object; groups are compared with each other in the order given (the earlier
/// one is taken as the older, as the allocator would see them when created in that order).
pub fn check(objects: &[Value]) -> Report {
    let mut report = Report::default();
    let mut groups: Vec<(String, String, ServiceGroupSpec)> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let name = object_name(o);
        let problems = ferrolb_api::offline::validate(o);
        if problems.is_empty() {
            report.lines.push(format!("ok {name}"));
            if o.get("kind").and_then(Value::as_str) == Some("ServiceGroup")
                && let Ok(spec) = serde_json::from_value::<ServiceGroupSpec>(o["spec"].clone())
            {
                let short = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                groups.push((short.to_string(), format!("{i:08}"), spec));
            }
        }
        for p in &problems {
            report.lines.push(format!("{name}: {p}"));
        }
        report.problems += problems.len();
    }
    let refs: Vec<GroupRef<'_>> = groups
        .iter()
        .map(|(name, created, spec)| GroupRef {
            name,
            created,
            spec,
        })
        .collect();
    for overlap in overlapping_groups(&refs) {
        report
            .lines
            .push(format!("ServiceGroup/{}: {overlap}", overlap.newer));
        report.problems += 1;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(name: &str, pool: &str) -> Value {
        json!({"apiVersion": "ferrolb.io/v1", "kind": "ServiceGroup", "metadata": {"name": name},
               "spec": {"local": {"v4pools": [{"subnet": "192.0.2.0/24", "pool": pool}]}}})
    }

    #[test]
    fn reports_each_object_and_overlaps_between_groups() {
        let cases: Vec<(&str, Vec<Value>, usize, &str)> = vec![
            (
                "one valid group",
                vec![group("a", "192.0.2.0/28")],
                0,
                "ok ServiceGroup/a",
            ),
            (
                "reversed range",
                vec![group("a", "192.0.2.9-192.0.2.1")],
                1,
                "ServiceGroup/a: spec.local.v4pools[0].pool: range 192.0.2.9-192.0.2.1 starts after it ends",
            ),
            (
                "range leaves its subnet (a CEL rule)",
                vec![group("a", "192.0.2.9-192.0.3.1")],
                1,
                "both ends of the range must lie inside subnet",
            ),
            (
                "two groups overlap: the later one is named",
                vec![
                    group("a", "192.0.2.0/28"),
                    group("b", "192.0.2.8-192.0.2.20"),
                ],
                1,
                "ServiceGroup/b: spec.local.v4pools[0].pool: overlaps ServiceGroup a",
            ),
        ];
        for (name, objects, problems, line) in cases {
            let r = check(&objects);
            assert_eq!(r.problems, problems, "{name}: {:?}", r.lines);
            assert!(
                r.lines.iter().any(|l| l.contains(line)),
                "{name}: {:?}",
                r.lines
            );
        }
    }
}
