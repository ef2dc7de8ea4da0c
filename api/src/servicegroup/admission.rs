//! Which Services a ServiceGroup admits: its `namespaces` list, its namespace and Service label
//! selectors, and the tenancy of the groups with `enforceNamespaces`. One rule for a Service
//! that names the group and for one that gets it by auto-assign, used by the allocator and the
//! CLI alike.
//!
//! - A group admits a Service when its namespace is in `spec.namespaces` (empty: any), the
//!   namespace's labels match `spec.namespaceSelector` (unset: any) and the Service's own labels
//!   match `spec.serviceSelector` (unset: any).
//! - A group with `enforceNamespaces` that restricts namespaces (a list or a selector) *claims*
//!   the namespaces those admit. A namespace claimed by one or more groups is their tenant: its
//!   Services may use only those groups, by name or by auto-assign. Services of other
//!   namespaces never could (the group does not admit them).
//! - A group with `namespaceDefault` is the default of the namespaces it admits: for their
//!   Services it ranks before every other auto-assign candidate.
//!
//! A selector that cannot be evaluated (an unknown operator, In without values: the CRD refuses
//! both, an object stored before the rule may carry them) admits nobody, and says why.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::Schema;

use super::ServiceGroupSpec;

/// Labels of a Namespace or a Service.
pub type Labels = BTreeMap<String, String>;

/// The label selector operators Kubernetes knows.
pub const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// CEL: every operator is one Kubernetes knows.
pub const OPERATOR_RULE: &str = "!has(self.matchExpressions) || self.matchExpressions.all(e, \
     e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])";

/// CEL: In and NotIn carry values, Exists and DoesNotExist none.
pub const VALUES_RULE: &str = "!has(self.matchExpressions) || self.matchExpressions.all(e, \
     e.operator in ['In', 'NotIn'] ? (has(e.values) && size(e.values) > 0) : \
     (!has(e.values) || size(e.values) == 0))";

/// The Service asking, as the rule sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Who<'a> {
    pub namespace: &'a str,
    /// The namespace's labels; `None` when the caller did not read them (a namespaceSelector
    /// then cannot tell, and says so).
    pub namespace_labels: Option<&'a Labels>,
    /// The Service's own labels; `None` when the caller did not read them.
    pub labels: Option<&'a Labels>,
}

/// Why a group does not admit a Service: each names the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `spec.namespaces` leaves the namespace out.
    Namespaces { namespace: String },
    /// `spec.namespaceSelector` does not match the namespace's labels.
    NamespaceSelector { namespace: String, selector: String },
    /// `spec.serviceSelector` does not match the Service's labels.
    ServiceSelector { selector: String },
    /// A selector of the group cannot be evaluated: it admits nobody.
    InvalidSelector { field: &'static str, why: String },
    /// A selector needs labels the caller did not read.
    LabelsUnknown { field: &'static str },
    /// The namespace is a tenant of other groups with `enforceNamespaces`.
    Tenancy {
        namespace: String,
        tenants: Vec<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Namespaces { namespace } => {
                write!(f, "namespace {namespace} is not in its spec.namespaces")
            }
            Refusal::NamespaceSelector {
                namespace,
                selector,
            } => write!(
                f,
                "namespace {namespace} does not match its spec.namespaceSelector ({selector})"
            ),
            Refusal::ServiceSelector { selector } => write!(
                f,
                "the Service's labels do not match its spec.serviceSelector ({selector})"
            ),
            Refusal::InvalidSelector { field, why } => {
                write!(f, "its {field} is invalid and admits no Service: {why}")
            }
            Refusal::LabelsUnknown { field } => {
                write!(f, "its {field} needs labels that were not read")
            }
            Refusal::Tenancy { namespace, tenants } => write!(
                f,
                "namespace {namespace} is a tenant of ServiceGroup {} (enforceNamespaces) and may use only {}",
                tenants.join(", "),
                if tenants.len() == 1 { "it" } else { "those" }
            ),
        }
    }
}

impl Refusal {
    /// What the user can do about it.
    pub fn advice(&self) -> String {
        match self {
            Refusal::Namespaces { namespace } => {
                format!("add {namespace} to its spec.namespaces or use another group")
            }
            Refusal::NamespaceSelector { namespace, .. } => format!(
                "label namespace {namespace} to match, change the selector, or use another group"
            ),
            Refusal::ServiceSelector { .. } => {
                "label the Service to match, change the selector, or use another group".into()
            }
            Refusal::InvalidSelector { field, .. } => format!("fix its {field}"),
            Refusal::LabelsUnknown { .. } => "the allocator judges with the labels".into(),
            Refusal::Tenancy { .. } => {
                "use one of those groups, or turn enforceNamespaces off on them".into()
            }
        }
    }
}

/// Whether `sel` matches `labels`; `Err` says why the selector cannot be evaluated.
pub fn matches(sel: &LabelSelector, labels: &Labels) -> Result<bool, String> {
    let mut all = true;
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let bad = |why: String| Err(format!("matchExpressions[{i}]: {why}"));
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return bad(format!("{} needs at least one value", e.operator));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return bad(format!("{} takes no values", e.operator));
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            op => {
                return bad(format!(
                    "unknown operator {op:?}; use {}",
                    OPERATORS.join(", ")
                ));
            }
        };
        all &= ok;
    }
    Ok(all
        && sel
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v)))
}

/// A selector as kubectl writes one: `team=b,env in (x,y),gpu,!legacy`; `everything` when
/// empty.
pub fn selector_text(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "everything".into()
    } else {
        parts.join(",")
    }
}

/// `field`'s selector against `labels`: admitted, or the refusal `nomatch` makes.
fn judge(
    sel: Option<&LabelSelector>,
    labels: Option<&Labels>,
    field: &'static str,
    nomatch: impl FnOnce(String) -> Refusal,
) -> Result<(), Refusal> {
    let Some(sel) = sel else { return Ok(()) };
    let Some(labels) = labels else {
        // An invalid selector is told as such even when the labels are unknown.
        return match matches(sel, &Labels::new()) {
            Err(why) => Err(Refusal::InvalidSelector { field, why }),
            Ok(_) => Err(Refusal::LabelsUnknown { field }),
        };
    };
    match matches(sel, labels) {
        Ok(true) => Ok(()),
        Ok(false) => Err(nomatch(selector_text(sel))),
        Err(why) => Err(Refusal::InvalidSelector { field, why }),
    }
}

/// The namespace half of the rule: `spec.namespaces` and `spec.namespaceSelector`.
pub fn admits_namespace(spec: &ServiceGroupSpec, who: &Who) -> Result<(), Refusal> {
    if !spec.namespaces.is_empty() && !spec.namespaces.iter().any(|n| n == who.namespace) {
        return Err(Refusal::Namespaces {
            namespace: who.namespace.to_string(),
        });
    }
    judge(
        spec.namespace_selector.as_ref(),
        who.namespace_labels,
        "spec.namespaceSelector",
        |selector| Refusal::NamespaceSelector {
            namespace: who.namespace.to_string(),
            selector,
        },
    )
}

/// Whether a group with `enforceNamespaces` claims the Service's namespace as its tenant: it
/// restricts namespaces and they admit this one. One without a restriction claims none.
pub fn claims(spec: &ServiceGroupSpec, who: &Who) -> bool {
    spec.enforce_namespaces
        && (!spec.namespaces.is_empty() || spec.namespace_selector.is_some())
        && admits_namespace(spec, who).is_ok()
}

/// The groups whose tenant the Service's namespace is (empty: it is no group's tenant), by name.
pub fn tenancy<'g>(
    who: &Who,
    groups: impl IntoIterator<Item = (&'g str, &'g ServiceGroupSpec)>,
) -> Vec<&'g str> {
    let mut out: Vec<&str> = groups
        .into_iter()
        .filter(|(_, spec)| claims(spec, who))
        .map(|(name, _)| name)
        .collect();
    out.sort_unstable();
    out
}

/// Whether the group `name` admits the Service, `tenants` being its namespace's [`tenancy`]:
/// the namespace rules, then the Service selector, then the tenancy.
pub fn admission(
    who: &Who,
    name: &str,
    spec: &ServiceGroupSpec,
    tenants: &[&str],
) -> Result<(), Refusal> {
    admits_namespace(spec, who)?;
    judge(
        spec.service_selector.as_ref(),
        who.labels,
        "spec.serviceSelector",
        |selector| Refusal::ServiceSelector { selector },
    )?;
    if !tenants.is_empty() && !tenants.contains(&name) {
        return Err(Refusal::Tenancy {
            namespace: who.namespace.to_string(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        });
    }
    Ok(())
}

/// Whether the group is the default of the Service's namespace: `namespaceDefault` and its
/// namespace rules admit it.
pub fn is_namespace_default(spec: &ServiceGroupSpec, who: &Who) -> bool {
    spec.namespace_default && admits_namespace(spec, who).is_ok()
}

/// Upper bounds on a label selector's lists and strings (k8s-openapi's schema has none), so
/// that its CEL rules fit the API server's cost budget. Label keys are at most 253 + 1 + 63
/// characters, values 63.
pub(crate) fn bounded_selector(schema: &mut Schema) {
    let set = |schema: &mut Schema, path: &[&str], key: &str, value: u64| {
        let mut node = schema.as_object_mut();
        for step in path {
            node = node
                .and_then(|o| o.get_mut(*step))
                .and_then(|v| v.as_object_mut());
        }
        if let Some(node) = node {
            node.insert(key.into(), value.into());
        }
    };
    let item = ["properties", "matchExpressions", "items", "properties"];
    let at = |tail: &[&'static str]| [&item[..], tail].concat();
    set(schema, &["properties", "matchExpressions"], "maxItems", 32);
    set(schema, &at(&["key"]), "maxLength", 317);
    set(schema, &at(&["operator"]), "maxLength", 16);
    set(schema, &at(&["values"]), "maxItems", 64);
    set(schema, &at(&["values", "items"]), "maxLength", 63);
    set(schema, &["properties", "matchLabels"], "maxProperties", 32);
    let labels = ["properties", "matchLabels", "additionalProperties"];
    set(schema, &labels, "maxLength", 63);
}

#[cfg(test)]
mod tests;
