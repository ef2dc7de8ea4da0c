//! MetalLB (`metallb.io/v1beta1`): IPAddressPool + L2Advertisement / BGPAdvertisement.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Migration, block_edges, family_of, host_safe_cidr, name_of, parse_entry, pool, service_group,
};
use ferrolb_api::pool::Family;
use ferrolb_api::servicegroup::admission::{Labels, matches};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

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
                m.note(&format!("{k}/{}", name_of(o)), no_equivalent(&k));
            }
            continue;
        }
        let named = pools_of(o, &pools, &format!("{k}/{}", name_of(o)), &mut m);
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
        convert_pool(p, announced.get(&name_of(p)), &mut m);
    }
    m
}

/// The pools an advertisement applies to, as MetalLB decides: those it names and those its
/// `ipAddressPoolSelectors` match (by the pools' labels); every pool when it has neither.
fn pools_of(adv: &Value, pools: &[&Value], object: &str, m: &mut Migration) -> Vec<String> {
    let listed = adv
        .pointer("/spec/ipAddressPools")
        .and_then(Value::as_array);
    let selectors = adv
        .pointer("/spec/ipAddressPoolSelectors")
        .and_then(Value::as_array);
    if listed.is_none_or(Vec::is_empty) && selectors.is_none_or(Vec::is_empty) {
        return pools.iter().map(|p| name_of(p)).collect();
    }
    let mut out: Vec<String> = listed
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    for (i, sel) in selectors.into_iter().flatten().enumerate() {
        let parsed = serde_json::from_value::<LabelSelector>(sel.clone())
            .map_err(|e| e.to_string())
            .and_then(|sel| {
                Ok(pools
                    .iter()
                    .map(|p| {
                        let labels: Labels = p
                            .pointer("/metadata/labels")
                            .and_then(|l| serde_json::from_value(l.clone()).ok())
                            .unwrap_or_default();
                        matches(&sel, &labels).map(|yes| yes.then(|| name_of(p)))
                    })
                    .collect::<Result<Vec<_>, String>>()?
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>())
            });
        match parsed {
            Ok(matched) => out.extend(matched),
            Err(why) => m.note(
                object,
                format!(
                    "ipAddressPoolSelectors[{i}] cannot be evaluated ({why}); it selects no pool"
                ),
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The BGPAdvertisement whose attributes a pool's group carries when several announce it: the
/// most specific aggregation (it keeps per-address routing and reserves the fewest block edges),
/// the first of those. The others are noted with what differs.
fn carried_bgp<'a>(bgp: &[&'a Value], object: &str, m: &mut Migration) -> Option<&'a Value> {
    let len = |a: &Value, key: &str, default: u64| {
        a.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let lengths = |a: &Value| {
        (
            len(a, "aggregationLength", 32),
            len(a, "aggregationLengthV6", 128),
        )
    };
    let chosen = *bgp.iter().rev().max_by_key(|a| lengths(a))?;
    let attrs = |a: &Value| {
        [
            "aggregationLength",
            "aggregationLengthV6",
            "communities",
            "localPref",
        ]
        .iter()
        .filter_map(|k| a.pointer(&format!("/spec/{k}")).map(|v| format!("{k} {v}")))
        .collect::<Vec<_>>()
    };
    for other in bgp.iter().filter(|a| !std::ptr::eq(**a, chosen)) {
        if attrs(other) != attrs(chosen) {
            m.note(object, format!("BGPAdvertisement/{} announces it too ({}); a ferrolb group announces its addresses with one set of attributes, so it carries BGPAdvertisement/{}'s (the most specific aggregation); add the other announcement with an export filter in the BIRD template", name_of(other), attrs(other).join(", "), name_of(chosen)));
        }
    }
    Some(chosen)
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
    let name = name_of(p);
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
    let adv = carried_bgp(bgp, &object, m);
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
        let Some((range, compact, rewritten)) = parse_entry(text) else {
            m.note(
                &object,
                format!("address entry {text:?} is neither a range nor a CIDR; skipped"),
            );
            continue;
        };
        if let Some(note) = rewritten {
            m.note(&object, note);
        }
        let subnet = host_safe_cidr(&range);
        let family = family_of(&range);
        let aggregation = is_virtual.then(|| {
            let default = if family == Family::V4 { 32 } else { 128 };
            let key = if family == Family::V4 {
                "aggregationLength"
            } else {
                "aggregationLengthV6"
            };
            let asked = agg(key).unwrap_or(default).min(u64::from(family.bits()));
            let n = asked.max(u64::from(subnet.prefix()));
            if n != asked {
                m.note(&object, format!("{key} {asked} is shorter than the subnet {subnet} written for {compact}; aggregation /{n} (a virtual group's blocks lie inside its subnet)"));
            }
            let n = u8::try_from(n).expect("at most the family's bits");
            let (edges, first) = block_edges(&range, n);
            if edges > 0 {
                let first: Vec<String> = first.iter().map(ToString::to_string).collect();
                m.note(&object, format!("aggregation /{n} reserves {edges} address(es) of {compact} (first {}): the edges of each /{n} block, which a kernel takes for the block's network or broadcast address on kube-lb0; MetalLB could hand them out, so move a Service that has one (ferrolb.io/addresses) before switching, or use a longer aggregation", first.join(", ")));
            }
            format!("/{n}")
        });
        if !is_virtual {
            m.note(&object, format!("subnet {subnet} is the smallest CIDR around {compact} that keeps its non-host addresses (IPv4 network and broadcast, IPv6 Subnet-Router anycast) outside it; set it to the nodes' LAN subnet (ferrolb announces a local address only on nodes that have its subnet)"));
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
    // MetalLB takes a list of selectors (any may match); a group has one of each.
    for (key, field) in [
        ("namespaceSelectors", "namespaceSelector"),
        ("serviceSelectors", "serviceSelector"),
    ] {
        let selectors = p
            .pointer(&format!("/spec/serviceAllocation/{key}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match selectors.as_slice() {
            [] => {}
            [one] => extra[field] = one.clone(),
            [first, ..] => {
                extra[field] = first.clone();
                m.note(&object, format!("serviceAllocation.{key} has {} selectors; a ServiceGroup has one {field}: the first is carried, so Services that only the others select lose this pool (split the pool into one group per selector)", selectors.len()));
            }
        }
    }
    let kind = if is_virtual { "virtual" } else { "local" };
    m.objects.push(service_group(&name, kind, body, extra));
}
