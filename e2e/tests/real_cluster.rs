//! ferrolb as a user runs it: images built from the Dockerfiles, the chart installed with helm
//! onto real nodes (containerd, kubelet, kube-proxy in node namespaces), traffic from a client
//! behind the ToR through kube-proxy to real pods.

mod real;

use std::time::Duration;

use ferrolb_e2e::cluster::Cluster;
use real::*;

#[test]
fn real_nodes_run_pods_from_the_locally_built_images_on_every_node() {
    let Some(c) = Cluster::shared() else { return };
    let _use = shared_use();
    kubectl_apply(c, &app_yaml("rc-app", &c.images().app));
    let nodes = wait(
        "3 ready app pods on 3 nodes",
        Duration::from_secs(180),
        || {
            let out = c.kubectl(&[
            "get",
            "pods",
            "-n",
            "rc-app",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status} {.status.podIPs[*].ip}{\"\\n\"}{end}",
        ]);
            let lines: Vec<String> = out
                .1
                .lines()
                .filter(|l| l.contains(" True "))
                .map(str::to_string)
                .collect();
            if lines.len() == 3 {
                Ok(lines)
            } else {
                Err(out.1)
            }
        },
    );
    let mut on: Vec<&str> = nodes.iter().filter_map(|l| l.split(' ').next()).collect();
    on.sort();
    on.dedup();
    assert_eq!(on.len(), 3, "one pod per node: {nodes:?}");
    // A pod answers from another node's namespace, across the LAN, on both families.
    let topo = c.topo();
    for line in &nodes {
        for ip in line.split(' ').skip(2) {
            let url = if ip.contains(':') {
                format!("http://[{ip}]:8080/cgi-bin/index.cgi")
            } else {
                format!("http://{ip}:8080/cgi-bin/index.cgi")
            };
            let out = topo
                .run(topo.node(0).ns_name(), &["curl", "-sS", "-m", "5", &url])
                .unwrap_or_else(|e| {
                    panic!(
                        "{url}: {e}\n{}",
                        kubectl(c, &["get", "pods", "-A", "-o", "wide"])
                    )
                });
            assert!(out.contains("pod=app-"), "{url}: {out}");
        }
    }
}

#[test]
fn helm_installed_ferrolb_serves_local_addresses_through_kube_proxy_to_real_pods() {
    let Some(c) = Cluster::shared() else { return };
    let _use = shared_use();
    install_chart(c);
    let ns = "rc-local";
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "cluster", "lan", "Cluster"));
    kubectl_apply(c, &lb_service_yaml(ns, "local", "lan", "Local"));
    for svc in ["cluster", "local"] {
        for ip in wait_ingress(c, ns, svc) {
            let body = wait(
                &format!("HTTP through {svc} {ip} from the client"),
                Duration::from_secs(60),
                || {
                    get_from_client(c, &ip).and_then(|b| {
                        if b.contains("pod=app-") {
                            Ok(b)
                        } else {
                            Err(b)
                        }
                    })
                },
            );
            if svc == "local" {
                // externalTrafficPolicy Local: no SNAT, the pod sees the client itself.
                let client = if ip.contains(':') {
                    "2001:db8:2::10"
                } else {
                    "198.51.100.10"
                };
                // (busybox httpd listens on IPv6 and shows an IPv4 client v4-mapped.)
                let seen = body
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("client="))
                    .unwrap_or_default();
                assert!(
                    seen.trim_matches(['[', ']']).trim_start_matches("::ffff:") == client,
                    "{svc} {ip}: the pod saw {seen}, not the client {client}: {body}"
                );
            }
        }
    }
}

#[test]
fn helm_installed_ferrolb_routes_virtual_addresses_over_bgp_to_real_pods() {
    let Some(c) = Cluster::shared() else { return };
    let _use = shared_use();
    install_chart(c);
    let ns = "rc-virtual";
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, VIRTUAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "cluster", "routed", "Cluster"));
    kubectl_apply(c, &lb_service_yaml(ns, "local", "routed", "Local"));
    let nodes = c.node_names().len();
    for svc in ["cluster", "local"] {
        for ip in wait_ingress(c, ns, svc) {
            let prefix = if ip.contains(':') {
                format!("{ip}/128")
            } else {
                format!("{ip}/32")
            };
            // Every node has a ready endpoint, so every node carries the address: ECMP at the ToR.
            wait(
                &format!("the ToR's route to {prefix} over {nodes} nodes"),
                Duration::from_secs(90),
                || {
                    let hops = c.tor().route_nexthops(&prefix).map_err(|e| e.to_string())?;
                    if hops.len() == nodes {
                        Ok(())
                    } else {
                        Err(format!("{hops:?}"))
                    }
                },
            );
            let body = wait(
                &format!("HTTP through {svc} {ip} from the client"),
                Duration::from_secs(60),
                || {
                    get_from_client(c, &ip).and_then(|b| {
                        if b.contains("pod=app-") {
                            Ok(b)
                        } else {
                            Err(b)
                        }
                    })
                },
            );
            eprintln!("{svc} {ip}: {}", body.trim());
        }
    }
}

#[test]
fn failures_as_they_happen_in_clusters_move_addresses_without_two_holders() {
    let Some(c) = Cluster::shared() else { return };
    let _use = exclusive_use();
    install_chart(c);
    let ns = "rc-fail";
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, VIRTUAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "local", "lan", "Cluster"));
    kubectl_apply(c, &lb_service_yaml(ns, "routed", "routed", "Cluster"));
    let local: Vec<String> = wait_ingress(c, ns, "local");
    let routed: Vec<String> = wait_ingress(c, ns, "routed");
    let local_v4 = local
        .iter()
        .find(|ip| !ip.contains(':'))
        .cloned()
        .expect("v4");
    let routed_v4 = routed
        .iter()
        .find(|ip| !ip.contains(':'))
        .cloned()
        .expect("v4");
    for ip in [&local_v4, &routed_v4] {
        wait(&format!("{ip} answering"), Duration::from_secs(90), || {
            get_from_client(c, ip)
        });
    }
    let holder = wait(
        "one holder of the local address",
        Duration::from_secs(30),
        || match holders_of(c, &local_v4).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    );

    // 1. The holder's agent pod is deleted; the DaemonSet makes a new one.
    let probe = Probe::start(c, local_v4.clone(), true);
    kubectl(
        c,
        &[
            "delete",
            "pod",
            "-n",
            "ferrolb-system",
            &agent_pod_on(c, &holder),
        ],
    );
    wait_agents_ready(c);
    std::thread::sleep(Duration::from_secs(5));
    let samples = probe.finish();
    assert_never_two_holders("agent pod deleted", &samples);
    let (failed, gap) = outage(&samples);
    eprintln!(
        "agent pod of the holder deleted: {failed} of {} requests to {local_v4} failed, longest gap {gap:?}",
        samples.len()
    );
    assert!(
        samples.last().is_some_and(|s| s.ok),
        "served again at the end"
    );
    assert!(gap < Duration::from_secs(30), "gap {gap:?}");

    // 2. A rolling restart of every agent: virtual addresses never fail (each node withdraws
    //    its routes before its agent goes), local ones move with a bounded gap.
    let probe_local = Probe::start(c, local_v4.clone(), true);
    let probe_routed = Probe::start(c, routed_v4.clone(), false);
    kubectl(
        c,
        &[
            "rollout",
            "restart",
            "daemonset",
            "-n",
            "ferrolb-system",
            "ferrolb-agent",
        ],
    );
    wait("the rollout to start", Duration::from_secs(30), || {
        let s = jsonpath(
            c,
            &["daemonset", "-n", "ferrolb-system", "ferrolb-agent"],
            "{.status.updatedNumberScheduled}",
        )?;
        if s != c.node_names().len().to_string() {
            Ok(())
        } else {
            Err(s)
        }
    });
    wait_agents_ready(c);
    std::thread::sleep(Duration::from_secs(5));
    let local_samples = probe_local.finish();
    let routed_samples = probe_routed.finish();
    assert_never_two_holders("rolling restart", &local_samples);
    let (lf, lgap) = outage(&local_samples);
    let (rf, rgap) = outage(&routed_samples);
    eprintln!(
        "rolling restart: local {local_v4}: {lf} of {} failed, longest gap {lgap:?}; \
         virtual {routed_v4}: {rf} of {} failed, longest gap {rgap:?}",
        local_samples.len(),
        routed_samples.len()
    );
    assert_eq!(
        rf,
        0,
        "requests to the virtual address failed during the rollout:\n{}",
        failures(&routed_samples)
    );
    assert!(lgap < Duration::from_secs(30), "gap {lgap:?}");

    // 3. The holder is cordoned and drained (its app pod evicted; DaemonSet pods stay).
    let holder = wait(
        "one holder of the local address",
        Duration::from_secs(30),
        || match holders_of(c, &local_v4).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    );
    let probe_local = Probe::start(c, local_v4.clone(), true);
    let probe_routed = Probe::start(c, routed_v4.clone(), false);
    kubectl(
        c,
        &[
            "drain",
            &holder,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ],
    );
    std::thread::sleep(Duration::from_secs(5));
    let local_samples = probe_local.finish();
    let routed_samples = probe_routed.finish();
    kubectl(c, &["uncordon", &holder]);
    assert_never_two_holders("drain", &local_samples);
    let (lf, lgap) = outage(&local_samples);
    let (rf, rgap) = outage(&routed_samples);
    eprintln!(
        "drain of the holder {holder}: local {local_v4}: {lf} of {} failed, longest gap {lgap:?}; \
         virtual {routed_v4}: {rf} of {} failed, longest gap {rgap:?}",
        local_samples.len(),
        routed_samples.len()
    );
    assert!(
        local_samples.last().is_some_and(|s| s.ok),
        "served after the drain"
    );
    assert!(
        routed_samples.last().is_some_and(|s| s.ok),
        "served after the drain"
    );

    // 4. The holder's kubelet and containerd stop (its containers, the agent among them, go on
    //    running, as when a node's runtime dies): the node goes NotReady, its pods unready.
    let holder = wait(
        "one holder of the local address",
        Duration::from_secs(30),
        || match holders_of(c, &local_v4).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    );
    let index = c
        .node_names()
        .iter()
        .position(|n| *n == holder)
        .expect("the holder is a node");
    let probe_local = Probe::start(c, local_v4.clone(), true);
    let probe_routed = Probe::start(c, routed_v4.clone(), false);
    c.stop_node_daemons(index);
    wait(
        &format!("{holder} NotReady"),
        Duration::from_secs(120),
        || {
            let ready = jsonpath(
                c,
                &["node", &holder],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )?;
            if ready != "True" { Ok(()) } else { Err(ready) }
        },
    );
    std::thread::sleep(Duration::from_secs(10));
    let local_samples = probe_local.finish();
    let routed_samples = probe_routed.finish();
    c.start_node_daemons(index)
        .expect("the node's daemons start again");
    assert_never_two_holders("node runtime stopped", &local_samples);
    let (lf, lgap) = outage(&local_samples);
    let (rf, rgap) = outage(&routed_samples);
    eprintln!(
        "kubelet and containerd of the holder {holder} stopped until NotReady: local {local_v4}: \
         {lf} of {} failed, longest gap {lgap:?}; virtual {routed_v4}: {rf} of {} failed, longest gap {rgap:?}",
        local_samples.len(),
        routed_samples.len()
    );
    assert!(
        local_samples.last().is_some_and(|s| s.ok),
        "served while NotReady"
    );
    assert!(
        routed_samples.last().is_some_and(|s| s.ok),
        "served while NotReady"
    );
    wait(
        &format!("{holder} Ready again"),
        Duration::from_secs(120),
        || {
            let ready = jsonpath(
                c,
                &["node", &holder],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )?;
            if ready == "True" { Ok(()) } else { Err(ready) }
        },
    );
}
