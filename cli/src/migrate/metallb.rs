//! MetalLB (`metallb.io/v1beta1`): IPAddressPool + L2Advertisement / BGPAdvertisement.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Migration, covering_cidr, family_of, parse_entry, pool, service_group};
use ferrolb_api::pool::Family;

/// How a pool is announced, from the advertisements that name it.
#[derive(Default)]
struct Announced<'a> {
    l2: Vec<&'a Value>,
    bgp: Vec<&'a Value>,
}

pub fn migrate(objects: &[Value]) -> Migration {
    let mut m = Migration::default();
    let kind = |o: &Value| {
        o.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let pools: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == "IPAddressPool")
        .collect();
    let mut announced: BTreeMap<String, Announced<'_>> = BTreeMap::new();
    for o in objects {
        let k = kind(o);
        let (is_l2, is_bgp) = (k == "L2Advertisement", k == "BGPAdvertisement");
        if !is_l2 && !is_bgp {
            if k != "IPAddressPool" {
                m.note(&format!("{k}/{}", name(o)), no_equivalent(&k));
            }
            continue;
        }
        let named: Vec<String> = o
            .pointer("/spec/ipAddressPools")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            // An advertisement that names no pool and has no selector applies to every pool.
            .unwrap_or_else(|| pools.iter().map(|p| name(p)).collect());
        if o.pointer("/spec/ipAddressPoolSelectors").is_some() {
            m.note(
                &format!("{k}/{}", name(o)),
                "ipAddressPoolSelectors are not converted; ferrolb names groups explicitly",
            );
        }
        for p in named {
            let entry = announced.entry(p).or_default();
            if is_l2 {
                entry.l2.push(o)
            } else {
                entry.bgp.push(o)
            }
        }
    }
    for p in pools {
        convert_pool(p, announced.get(&name(p)), &mut m);
    }
    m
}

fn no_equivalent(kind: &str) -> String {
    match kind {
        "BGPPeer" => "peers are configured in the BIRD template (ferrolb-bird ConfigMap), not as objects; copy the peer's address, ASN and BFD settings there".into(),
        "BFDProfile" => "BFD timers are set in the BIRD template (ferrolb-bird ConfigMap)".into(),
        "Community" => "community aliases have no equivalent; write communities as \"ASN:value\" in spec.virtual.bgp".into(),
        other => format!("{other} has no ferrolb equivalent; skipped"),
    }
}

fn convert_pool(p: &Value, announced: Option<&Announced<'_>>, m: &mut Migration) {
    let name = p
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let object = format!("IPAddressPool/{name}");
    let (l2, bgp) = announced
        .map(|a| (a.l2.as_slice(), a.bgp.as_slice()))
        .unwrap_or_default();
    let is_virtual = !bgp.is_empty();
    if is_virtual && !l2.is_empty() {
        m.note(&object, "announced by both L2 and BGP; a ferrolb group is local or virtual: made it virtual (BGP). Split the addresses into two groups to keep both");
    }
    if l2.is_empty() && bgp.is_empty() {
        m.note(
            &object,
            "no advertisement names it, so MetalLB did not announce it; made it a local group",
        );
    }
    let adv = bgp.first().copied();
    let agg = |key: &str| {
        adv.and_then(|a| a.pointer(&format!("/spec/{key}")))
            .and_then(Value::as_u64)
    };
    let (mut v4pools, mut v6pools) = (Vec::new(), Vec::new());
    for entry in p
        .pointer("/spec/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = entry.as_str().unwrap_or_default();
        let Some((range, compact)) = parse_entry(text) else {
            m.note(
                &object,
                format!("address entry {text:?} is neither a range nor a CIDR; skipped"),
            );
            continue;
        };
        let subnet = covering_cidr(&range);
        let family = family_of(&range);
        let aggregation = is_virtual.then(|| {
            let default = if family == Family::V4 { 32 } else { 128 };
            let key = if family == Family::V4 {
                "aggregationLength"
            } else {
                "aggregationLengthV6"
            };
            let n = agg(key).unwrap_or(default).max(u64::from(subnet.prefix()));
            format!("/{n}")
        });
        if !is_virtual {
            m.note(&object, format!("subnet {subnet} is the smallest CIDR around {compact}; set it to the nodes' LAN subnet (ferrolb announces a local address only on nodes that have its subnet)"));
        }
        let entry = pool(subnet, &compact, aggregation.as_deref());
        if family == Family::V4 {
            v4pools.push(entry)
        } else {
            v6pools.push(entry)
        }
    }
    if v4pools.is_empty() && v6pools.is_empty() {
        m.note(&object, "no usable addresses; no ServiceGroup written");
        return;
    }
    let mut body = json!({ "v4pools": v4pools, "v6pools": v6pools });
    if let Some(a) = adv {
        let mut bgp_attrs = json!({});
        if let Some(c) = a.pointer("/spec/communities").and_then(Value::as_array) {
            let (plain, named): (Vec<&Value>, Vec<&Value>) = c.iter().partition(|v| {
                v.as_str()
                    .is_some_and(|s| s.chars().all(|ch| ch.is_ascii_digit() || ch == ':'))
            });
            let (standard, large): (Vec<&Value>, Vec<&Value>) = plain
                .into_iter()
                .partition(|v| v.as_str().is_some_and(|s| s.matches(':').count() == 1));
            bgp_attrs["communities"] = json!(standard);
            bgp_attrs["largeCommunities"] = json!(large);
            if !named.is_empty() {
                let named: Vec<&str> = named.iter().filter_map(|v| v.as_str()).collect();
                m.note(&object, format!("communities given by Community alias ({}) are not resolved; write them as numbers", named.join(", ")));
            }
        }
        if let Some(lp) = a.pointer("/spec/localPref").and_then(Value::as_u64) {
            bgp_attrs["localPreference"] = lp.into();
        }
        for key in ["peers", "nodeSelectors"] {
            if a.pointer(&format!("/spec/{key}")).is_some() {
                m.note(&object, format!("BGPAdvertisement {key} have no per-group equivalent; use the BIRD template or an LBNodeAgent nodeSelector"));
            }
        }
        body["bgp"] = bgp_attrs;
    }
    for a in l2 {
        if a.pointer("/spec/nodeSelectors").is_some() || a.pointer("/spec/interfaces").is_some() {
            m.note(&object, "L2Advertisement nodeSelectors/interfaces are per node in ferrolb: set LBNodeAgent spec.nodeSelector and spec.localInterface");
        }
    }
    let mut extra = json!({});
    // MetalLB auto-assigns unless told not to; a ferrolb group only when told to (or named
    // "default"), so the value is always written.
    let auto = p.pointer("/spec/autoAssign").and_then(Value::as_bool);
    extra["autoAssign"] = auto.unwrap_or(true).into();
    if let Some(priority) = p
        .pointer("/spec/serviceAllocation/priority")
        .and_then(Value::as_i64)
    {
        extra["priority"] = priority.into();
    }
    if let Some(avoid) = p.pointer("/spec/avoidBuggyIPs").and_then(Value::as_bool) {
        extra["avoidBuggyIPs"] = avoid.into();
    }
    if let Some(ns) = p.pointer("/spec/serviceAllocation/namespaces") {
        extra["namespaces"] = ns.clone();
    }
    for key in ["namespaceSelectors", "serviceSelectors"] {
        if p.pointer(&format!("/spec/serviceAllocation/{key}"))
            .is_some()
        {
            m.note(&object, format!("serviceAllocation.{key} has no equivalent; Services name their group with the ferrolb.io/service-group annotation (metallb.io/address-pool is read too)"));
        }
    }
    let kind = if is_virtual { "virtual" } else { "local" };
    m.objects.push(service_group(&name, kind, body, extra));
}
