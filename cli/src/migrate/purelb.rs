//! PureLB ServiceGroup and LBNodeAgent, `purelb.io/v1` and `purelb.io/v2`.

use serde_json::{Value, json};

use super::{Migration, is_v4, name_of, parse_entry, pool, service_group};
use ferrolb_api::pool::non_host_addresses;
use ipnetwork::IpNetwork;

pub fn migrate(objects: &[Value]) -> Migration {
    let mut m = Migration::default();
    for o in objects {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = &name_of(o);
        let v2 = o.get("apiVersion").and_then(Value::as_str) == Some("purelb.io/v2");
        let object = format!("{kind}/{name}");
        match kind {
            "ServiceGroup" => service_group_of(o, name, v2, &object, &mut m),
            "LBNodeAgent" => agent_of(o, name, v2, &object, &mut m),
            _ => m.note(&object, "not a PureLB kind; skipped"),
        }
    }
    m
}

fn service_group_of(o: &Value, name: &str, v2: bool, object: &str, m: &mut Migration) {
    let spec = o.get("spec").cloned().unwrap_or_default();
    if spec.get("netbox").is_some() {
        m.note(
            object,
            "netbox IPAM has no equivalent; copy its prefixes into a ServiceGroup by hand",
        );
        return;
    }
    let (section, explicit_virtual) = match (spec.get("local"), spec.get("remote")) {
        (_, Some(r)) => (r.clone(), true),
        (Some(l), None) => (l.clone(), false),
        (None, None) => {
            m.note(object, "neither local nor remote; skipped");
            return;
        }
    };
    // v1 single-stack fields, v1 `v4pool`/`v6pool`, v2 `v4Pool`/`v6Pool` and `v4Pools`/`v6Pools`.
    let mut entries: Vec<Value> = Vec::new();
    if section.get("pool").is_some() {
        entries.push(section.clone());
    }
    for key in ["v4pool", "v6pool", "v4Pool", "v6Pool"] {
        if let Some(p) = section.get(key) {
            entries.push(p.clone());
        }
    }
    for key in ["v4pools", "v6pools", "v4Pools", "v6Pools"] {
        entries.extend(
            section
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    // In v1 a "local" group whose nodes lack the subnet falls through to kube-lb0; an explicit
    // aggregation only means something there, so it marks a routed group.
    let aggregated = entries.iter().any(|e| {
        e.get("aggregation")
            .and_then(Value::as_str)
            .is_some_and(|a| a != "default")
    });
    let is_virtual = explicit_virtual || (!v2 && aggregated);
    if !v2 && !is_virtual {
        m.note(object, "PureLB v1 announces a 'local' group on kube-lb0 when no node has its subnet; made it local. If its addresses are routed (BGP), change spec.local to spec.virtual");
    } else if !v2 {
        m.note(
            object,
            "has an aggregation, which PureLB v1 applies only on kube-lb0: made it virtual",
        );
    }
    let (mut v4pools, mut v6pools) = (Vec::new(), Vec::new());
    for e in entries {
        let text = e.get("pool").and_then(Value::as_str).unwrap_or_default();
        let subnet = e
            .get("subnet")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpNetwork>().ok());
        let (Some((range, compact, rewritten)), Some(subnet)) = (parse_entry(text), subnet) else {
            m.note(
                object,
                format!("pool {text:?} or its subnet does not parse; skipped"),
            );
            continue;
        };
        if let Some(note) = rewritten {
            m.note(object, note);
        }
        // PureLB takes the subnet's network (its own samples write host bits); ferrolb wants
        // the network written as such.
        let subnet = IpNetwork::new(subnet.network(), subnet.prefix())
            .expect("the network of a valid CIDR is valid");
        let held_back: Vec<String> = non_host_addresses(subnet)
            .into_iter()
            .filter(|a| range.contains(*a))
            .map(|a| a.to_string())
            .collect();
        if !held_back.is_empty() {
            m.note(object, format!("pool {compact} includes {}, which is not a host address of subnet {subnet} (network, broadcast or Subnet-Router anycast); ferrolb does not hand it out, and a Service that has it keeps it but should move (ferrolb.io/addresses)", held_back.join(" and ")));
        }
        let aggregation = if is_virtual {
            Some(
                e.get("aggregation")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
            )
        } else {
            if e.get("aggregation")
                .and_then(Value::as_str)
                .is_some_and(|a| a != "default")
            {
                m.note(
                    object,
                    "aggregation dropped: it applies to virtual groups only",
                );
            }
            None
        };
        let entry = pool(subnet, &compact, aggregation.as_deref());
        if is_v4(range.start) {
            v4pools.push(entry)
        } else {
            v6pools.push(entry)
        }
    }
    if section.get("skipIPv6DAD").is_some() {
        m.note(
            object,
            "skipIPv6DAD is always on in ferrolb (nodad; the election prevents duplicates)",
        );
    }
    let kind = if is_virtual { "virtual" } else { "local" };
    // PureLB v2 spreads allocations over the pools with `balancePools`: the same in ferrolb.
    let balanced = [&section, &spec]
        .iter()
        .any(|s| s.get("balancePools").and_then(Value::as_bool) == Some(true));
    let mut extra = json!({});
    if balanced {
        extra["balancePools"] = true.into();
    }
    // PureLB v2 tenancy: the same three fields. PureLB's namespaces without enforceNamespaces
    // only pick the default of those namespaces; ferrolb's always bound who may use the group.
    if let Some(ns) = spec
        .get("namespaces")
        .and_then(Value::as_array)
        .filter(|n| !n.is_empty())
    {
        extra["namespaces"] = Value::Array(ns.clone());
        let enforced = spec.get("enforceNamespaces").and_then(Value::as_bool) == Some(true);
        if !enforced {
            m.note(object, "namespaces is carried, but in ferrolb it bounds which Services may use the group (PureLB's bounds only with enforceNamespaces): a Service of another namespace that names this group would lose it; add its namespace to the list");
        }
    }
    for key in ["enforceNamespaces", "namespaceDefault"] {
        if let Some(true) = spec.get(key).and_then(Value::as_bool) {
            extra[key] = true.into();
        }
    }
    let mut pools = json!({ "v4pools": v4pools, "v6pools": v6pools });
    if section.get("multiPool").and_then(Value::as_bool) == Some(true) {
        if is_virtual {
            m.note(object, "multiPool applies to local groups only: each Service of this virtual group gets one address per family, and one that had several keeps the first");
        } else {
            pools["multiPool"] = true.into();
            let mut seen = std::collections::BTreeSet::new();
            let shared: Vec<String> = v4pools_and_v6pools(&pools)
                .filter_map(|p| p["subnet"].as_str().map(str::to_string))
                .filter(|s| !seen.insert(s.clone()))
                .collect();
            if !shared.is_empty() {
                m.note(object, format!("multiPool is carried, but ferrolb gives one address per subnet, not per range: pools share subnet {}, so a Service that had an address in each keeps the first there", shared.join(", ")));
            }
        }
    }
    // PureLB serves a Service that names no group from the group named "default"; so does
    // ferrolb, and written out it stays so under another name.
    if name == "default" {
        extra["autoAssign"] = true.into();
    }
    m.objects.push(service_group(name, kind, pools, extra));
}

/// Every pool of a group's pools section, IPv4 first.
fn v4pools_and_v6pools(pools: &Value) -> impl Iterator<Item = &Value> {
    ["v4pools", "v6pools"]
        .into_iter()
        .filter_map(|k| pools.get(k).and_then(Value::as_array))
        .flatten()
}

fn agent_of(o: &Value, name: &str, v2: bool, object: &str, m: &mut Migration) {
    let local = o.pointer("/spec/local").cloned().unwrap_or_default();
    let (local_key, virtual_key) = if v2 {
        ("localInterface", "dummyInterface")
    } else {
        ("localint", "extlbint")
    };
    let mut spec = json!({});
    if let Some(v) = local.get(local_key).and_then(Value::as_str) {
        spec["localInterface"] = v.into();
    }
    if let Some(v) = local.get(virtual_key).and_then(Value::as_str) {
        spec["virtualInterface"] = v.into();
    }
    let mut gratuitous = json!({});
    if let Some(send) = local.get("sendgarp").and_then(Value::as_bool) {
        gratuitous["enabled"] = send.into();
    }
    if let Some(g) = local.get("garpConfig") {
        for key in ["enabled", "count", "interval", "initialDelay"] {
            if let Some(v) = g.get(key) {
                gratuitous[key] = v.clone();
            }
        }
        if g.get("verifyBeforeSend").is_some() {
            m.note(object, "verifyBeforeSend: ferrolb always checks it still holds the address before each gratuitous packet");
        }
    }
    if gratuitous.as_object().is_some_and(|g| !g.is_empty()) {
        spec["gratuitous"] = gratuitous;
    }
    for key in ["addressConfig", "subnets"] {
        if local.get(key).is_some() {
            m.note(object, format!("{key} has no equivalent (ferrolb sets lifetimes with spec.localAddressLifetime and finds subnets on the local interface)"));
        }
    }
    if o.pointer("/metadata/namespace").is_some() {
        m.note(
            object,
            "ferrolb's LBNodeAgent is cluster-scoped: the namespace was dropped",
        );
    }
    m.objects.push(json!({
        "apiVersion": "ferrolb.io/v1",
        "kind": "LBNodeAgent",
        "metadata": { "name": name },
        "spec": spec,
    }));
}
