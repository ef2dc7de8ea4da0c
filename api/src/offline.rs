//! Offline validation of a ferrolb object with the rules the API server applies (the CRD's
//! structural schema and its CEL rules, via kube-cel) plus the checks CEL cannot express.
//! Used by `kubectl ferrolb check` and by tests; the API server stays the authority.

use serde_json::Value;

use crate::check::{Problem, check_agent, check_group};
use crate::lbnodeagent::LBNodeAgentSpec;
use crate::servicegroup::ServiceGroupSpec;

/// Validates `object` (a whole ServiceGroup or LBNodeAgent as JSON) against ferrolb's CRDs.
/// Returns every problem found, each naming its field.
pub fn validate(object: &Value) -> Vec<Problem> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((_, crd)) = crate::crds()
        .into_iter()
        .find(|(_, c)| c.spec.names.kind == kind)
    else {
        return vec![Problem {
            field: "kind".into(),
            message: format!("{kind:?} is not a ferrolb kind (ServiceGroup or LBNodeAgent)"),
        }];
    };
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("a schema always serializes"))
        .expect("ferrolb CRDs always carry a schema");
    let object = &prune_nulls(&schema, object);
    let mut problems = Vec::new();
    structural(&schema, object, "", &mut problems, true);
    if !problems.is_empty() {
        // The API server stops at structural errors too; CEL on a malformed object says little.
        return problems;
    }
    let defaulted = kube_cel::apply_defaults(&schema, object);
    for e in kube_cel::Validator::new().validate(&schema, &defaulted, None) {
        problems.push(Problem {
            field: e.field_path.clone(),
            message: e.message.clone(),
        });
    }
    if problems.is_empty() {
        // What the allocator's and the agent's own parse refuse beyond CEL.
        let spec = defaulted["spec"].clone();
        let parsed = match kind {
            "ServiceGroup" => {
                serde_json::from_value::<ServiceGroupSpec>(spec).map(|s| check_group(&s))
            }
            _ => serde_json::from_value::<LBNodeAgentSpec>(spec).map(|s| check_agent(&s)),
        };
        match parsed {
            Ok(found) => problems.extend(found),
            Err(e) => problems.push(Problem {
                field: "spec".into(),
                message: e.to_string(),
            }),
        }
    }
    problems
}

/// `object` without its null fields, as the API server sees it: it drops a null where the
/// schema does not say `nullable` before defaulting and validation (a templating tool writes
/// `field: null` for a value left unset), and CEL's `has()` is false for a nullable field that
/// is null. Only a required nullable field keeps its null.
fn prune_nulls(schema: &Value, value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|s| s.is_object());
            let required = |k: &str| {
                schema
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)))
            };
            let pruned = map
                .iter()
                .filter_map(|(k, v)| {
                    let sub = props.and_then(|p| p.get(k)).or(extra);
                    let nullable = sub
                        .and_then(|s| s.get("nullable"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    match sub {
                        Some(_) if v.is_null() && !(nullable && required(k)) => None,
                        Some(sub) => Some((k.clone(), prune_nulls(sub, v))),
                        None => Some((k.clone(), v.clone())),
                    }
                })
                .collect();
            Value::Object(pruned)
        }
        Value::Array(items) => match schema.get("items") {
            Some(sub) => Value::Array(items.iter().map(|v| prune_nulls(sub, v)).collect()),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

/// The structural part of OpenAPI validation the API server does before CEL: types, unknown
/// fields, required fields, list and string sizes, integer bounds.
fn structural(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>, root: bool) {
    let field = |p: &str| {
        if p.is_empty() {
            "<root>".to_string()
        } else {
            p.to_string()
        }
    };
    if value.is_null() {
        if !schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            out.push(Problem {
                field: field(path),
                message: "must not be null".into(),
            });
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(Problem {
            field: field(path),
            message: format!("must be of type {ty}"),
        });
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let open = schema.get("x-kubernetes-preserve-unknown-fields").is_some()
                || schema.get("additionalProperties").is_some();
            for (k, v) in map {
                // apiVersion, kind and metadata are the API server's own business.
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => structural(sub, v, &join(k), out, false),
                    None if open => {
                        if let Some(sub) =
                            schema.get("additionalProperties").filter(|s| s.is_object())
                        {
                            structural(sub, v, &join(k), out, false);
                        }
                    }
                    None => out.push(Problem {
                        field: join(k),
                        message: "unknown field".into(),
                    }),
                }
            }
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = req.as_str().filter(|r| !map.contains_key(*r)) {
                    out.push(Problem {
                        field: join(r),
                        message: "required value".into(),
                    });
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                out.push(Problem {
                    field: field(path),
                    message: format!("must have at most {max} items"),
                });
            }
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    structural(sub, v, &format!("{path}[{i}]"), out, false);
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push(Problem {
                    field: field(path),
                    message: format!("may not be longer than {max}"),
                });
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push(Problem {
                    field: field(path),
                    message: format!("should be at least {min} chars long"),
                });
            }
        }
        Value::Number(n) => {
            if let (Some(max), Some(v)) =
                (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
                && v > max
            {
                out.push(Problem {
                    field: field(path),
                    message: format!("must be at most {max}"),
                });
            }
            if let (Some(min), Some(v)) =
                (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && v < min
            {
                out.push(Problem {
                    field: field(path),
                    message: format!("must be at least {min}"),
                });
            }
        }
        _ => {}
    }
}
