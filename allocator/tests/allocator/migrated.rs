//! `kubectl ferrolb migrate` on the peers' own documented examples, applied to the real API
//! server and served by the allocator: every Service that had an address under MetalLB or
//! PureLB keeps exactly that address, from the group its old pool became, with no warning.

use std::process::Command;

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::reason;
use ferrolb_api::servicegroup::condition;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::*;

/// A Service as the old system served it.
struct Had {
    name: &'static str,
    /// Annotations the user wrote (a pool named by its old name is renamed with the group).
    annotations: &'static [(&'static str, &'static str)],
    /// `ipFamilyPolicy`, when not SingleStack IPv4.
    families: Option<(&'static str, &'static [&'static str])>,
    ingress: &'static [&'static str],
    /// The old pool's name, whose group must serve it.
    pool: &'static str,
    /// An address the group does not hand out (a subnet's non-host address): kept, and named
    /// by the group's OutOfPoolAllocations condition.
    held_back: bool,
}

struct Example {
    from: &'static str,
    file: &'static str,
    /// A namespace the example names that stands for this test's namespace.
    namespace: Option<&'static str>,
    had: &'static [Had],
}

const POOL_ANNOTATIONS: [&str; 3] = [
    "metallb.universe.tf/address-pool",
    "metallb.io/address-pool",
    "purelb.io/service-group",
];

/// Runs the plugin on a file of `cli/testdata/peers`; returns the objects it writes.
fn migrate(from: &str, file: &str) -> Vec<Value> {
    let bin = ferrolb_e2e::env::binary("kubectl-ferrolb");
    if !bin.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "{} is not built (`cargo build --workspace --bins`)",
            bin.display()
        );
        eprintln!("skipped: {} is not built", bin.display());
        return Vec::new();
    }
    let path = format!(
        "{}/../cli/testdata/peers/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(&bin)
        .args(["migrate", "--from", from, &path])
        .output()
        .expect("kubectl-ferrolb runs");
    assert!(
        out.status.success(),
        "migrate {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{file}:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("YAML is UTF-8");
    serde_saphyr::from_multiple::<Value>(&text).expect("the plugin writes YAML")
}

/// Writes a Service's status as the old system left it.
async fn preset_ingress(env: &Env, name: &str, ips: &[&str]) {
    let ingress: Vec<Value> = ips
        .iter()
        .map(|ip| json!({ "ip": ip, "ipMode": "VIP" }))
        .collect();
    let body = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
    env.services()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("status");
}

async fn serves_every_service_it_served(test: &str, ex: &Example) {
    let Some(env) = env(test).await else {
        return;
    };
    let objects = migrate(ex.from, ex.file);
    if objects.is_empty() {
        return;
    }
    // Groups are cluster-wide: each gets this test's prefix, and names of the example that stand
    // for a namespace become this test's namespace.
    let renamed = |pool: &str| env.group_name(pool);
    for o in objects.iter().filter(|o| o["kind"] == "ServiceGroup") {
        let name = o["metadata"]["name"].as_str().expect("a name");
        let mut spec = o["spec"].clone();
        let list = spec.get_mut("namespaces").and_then(Value::as_array_mut);
        if let (Some(list), Some(stand_in)) = (list, ex.namespace) {
            for n in list.iter_mut().filter(|n| *n == stand_in) {
                *n = env.name().into();
            }
        }
        env.apply_group(&renamed(name), spec).await;
    }
    for h in ex.had {
        let mut s = svc(h.name);
        for (k, v) in h.annotations {
            let v = if POOL_ANNOTATIONS.contains(k) {
                renamed(v)
            } else {
                v.to_string()
            };
            s = s.ann(k, &v);
        }
        if let Some((policy, families)) = h.families {
            s = s.policy(policy).spec("ipFamilies", json!(families));
        }
        env.apply_svc(&s).await;
        preset_ingress(&env, h.name, h.ingress).await;
    }
    let _a = env.allocator("a", false);
    for h in ex.had {
        let group = renamed(h.pool);
        let what = format!("{} adopted from {group}", h.name);
        let annotations = eventually(&what, || async {
            let a = env.annotations(h.name).await;
            a.contains_key(ann::ALLOCATED_FROM).then_some(a)
        })
        .await;
        assert_eq!(
            annotations.get(ann::ALLOCATED_FROM),
            Some(&group),
            "{}: {annotations:?}",
            h.name
        );
        assert_eq!(env.ips(h.name).await, h.ingress, "{} renumbered", h.name);
        if h.held_back {
            let message = env
                .wait_condition(&group, condition::OUT_OF_POOL_ALLOCATIONS, "True")
                .await;
            assert!(message.contains(h.ingress[0]), "{message}");
        }
    }
    // Told, and nothing went wrong: an AddressAllocated each, no warning.
    for h in ex.had {
        env.wait_event(h.name, reason::ADDRESS_ALLOCATED).await;
        let warnings: Vec<(String, String)> = env
            .events(h.name)
            .await
            .into_iter()
            .filter(|(r, _)| {
                [
                    reason::ALLOCATION_FAILED,
                    reason::SHARING_CONFLICT,
                    reason::REQUESTED_ADDRESS_UNAVAILABLE,
                    reason::ADDRESS_RELEASED,
                ]
                .contains(&r.as_str())
            })
            .collect();
        assert!(warnings.is_empty(), "{}: {warnings:?}", h.name);
    }
}

#[tokio::test]
async fn metallb_quickstart_keeps_every_address() {
    serves_every_service_it_served(
        "mig-mlb-quick",
        &Example {
            from: "metallb",
            file: "metallb-quickstart.yaml",
            namespace: None,
            had: &[
                // MetalLB hands out a /24's network address first (avoidBuggyIPs is off).
                Had {
                    name: "first",
                    annotations: &[],
                    families: None,
                    ingress: &["198.51.100.0"],
                    pool: "first-pool",
                    held_back: false,
                },
                Had {
                    name: "named",
                    annotations: &[("metallb.universe.tf/address-pool", "first-pool")],
                    families: None,
                    ingress: &["192.0.2.3"],
                    pool: "first-pool",
                    held_back: false,
                },
                Had {
                    name: "broadcast",
                    annotations: &[("metallb.io/loadBalancerIPs", "198.51.100.255")],
                    families: None,
                    ingress: &["198.51.100.255"],
                    pool: "first-pool",
                    held_back: false,
                },
                Had {
                    name: "dual",
                    annotations: &[],
                    families: Some(("PreferDualStack", &["IPv4", "IPv6"])),
                    ingress: &["198.51.100.1", "2001:db8:e799::"],
                    pool: "first-pool",
                    held_back: false,
                },
            ],
        },
    )
    .await;
}

#[tokio::test]
async fn metallb_advanced_bgp_keeps_every_address() {
    serves_every_service_it_served(
        "mig-mlb-bgp",
        &Example {
            from: "metallb",
            file: "metallb-advanced-bgp.yaml",
            namespace: None,
            had: &[
                Had {
                    name: "network",
                    annotations: &[],
                    families: None,
                    ingress: &["198.51.100.0"],
                    pool: "first-pool",
                    held_back: false,
                },
                Had {
                    name: "tenth",
                    annotations: &[],
                    families: None,
                    ingress: &["198.51.100.10"],
                    pool: "first-pool",
                    held_back: false,
                },
                Had {
                    name: "last",
                    annotations: &[],
                    families: None,
                    ingress: &["198.51.100.255"],
                    pool: "first-pool",
                    held_back: false,
                },
            ],
        },
    )
    .await;
}

#[tokio::test]
async fn metallb_pool_selection_keeps_every_address() {
    serves_every_service_it_served(
        "mig-mlb-pools",
        &Example {
            from: "metallb",
            file: "metallb-ipaddresspool.yaml",
            namespace: Some("namespace-a"),
            had: &[
                // The namespace's pool, by priority, for a Service that names none.
                Had {
                    name: "tenant",
                    annotations: &[],
                    families: None,
                    ingress: &["192.0.2.0"],
                    pool: "ns-pool",
                    held_back: false,
                },
                Had {
                    name: "paid",
                    annotations: &[("metallb.io/address-pool", "expensive")],
                    families: None,
                    ingress: &["203.0.113.64"],
                    pool: "expensive",
                    held_back: false,
                },
                Had {
                    name: "cheap",
                    annotations: &[("metallb.io/address-pool", "cheap")],
                    families: None,
                    ingress: &["198.51.100.1"],
                    pool: "cheap",
                    held_back: false,
                },
            ],
        },
    )
    .await;
}

#[tokio::test]
async fn purelb_samples_keep_every_address() {
    for (test, file, had) in [
        (
            "mig-plb-v1",
            "purelb-v1-local.yaml",
            &[
                Had {
                    name: "first",
                    annotations: &[],
                    families: None,
                    ingress: &["192.0.2.200"],
                    pool: "default",
                    held_back: false,
                },
                Had {
                    name: "named",
                    annotations: &[("purelb.io/service-group", "default")],
                    families: None,
                    ingress: &["192.0.2.201"],
                    pool: "default",
                    held_back: false,
                },
            ][..],
        ),
        (
            "mig-plb-v6",
            "purelb-v2-ipv6.yaml",
            &[Had {
                name: "anycast",
                annotations: &[],
                families: Some(("SingleStack", &["IPv6"])),
                ingress: &["2001:db8:8683::"],
                pool: "default",
                held_back: true,
            }][..],
        ),
    ] {
        serves_every_service_it_served(
            test,
            &Example {
                from: "purelb",
                file,
                namespace: None,
                had,
            },
        )
        .await;
    }
}

#[tokio::test]
async fn metallb_pool_selectors_and_purelb_tenants_keep_every_address() {
    serves_every_service_it_served(
        "mig-mlb-sel",
        &Example {
            from: "metallb",
            file: "metallb-l2-selectors.yaml",
            namespace: None,
            had: &[
                Had {
                    name: "east",
                    annotations: &[],
                    families: None,
                    ingress: &["203.0.113.87"],
                    pool: "doc-example-l2-label",
                    held_back: false,
                },
                Had {
                    name: "routed",
                    annotations: &[("metallb.io/address-pool", "routed")],
                    families: None,
                    ingress: &["192.0.2.64"],
                    pool: "routed",
                    held_back: false,
                },
            ],
        },
    )
    .await;
    serves_every_service_it_served(
        "mig-plb-tenant",
        &Example {
            from: "purelb",
            file: "purelb-v2-tenants.yaml",
            namespace: Some("team-a"),
            had: &[Had {
                name: "tenant",
                annotations: &[],
                families: None,
                ingress: &["192.0.2.10"],
                pool: "team-a-lan",
                held_back: false,
            }],
        },
    )
    .await;
}
