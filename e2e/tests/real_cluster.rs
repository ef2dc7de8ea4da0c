//! ferrolb as a user runs it: images built from the Dockerfiles, the chart installed with helm
//! onto real nodes (containerd, kubelet, kube-proxy in node namespaces), traffic from a client
//! behind the ToR through kube-proxy to real pods.

mod real;

use std::time::Duration;

use ferrolb_e2e::cluster::Cluster;
use k8s_openapi::jiff::Timestamp;
use real::*;

#[test]
fn real_nodes_run_pods_from_the_locally_built_images_on_every_node() {
    let Some(c) = Cluster::shared() else { return };
    let _logs = LogsOnFailure(c);
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
    let _logs = LogsOnFailure(c);
    let _use = shared_use();
    install_chart(c);
    let ns = "rc-local";
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "cluster", "lan", "Cluster"));
    kubectl_apply(c, &lb_service_yaml(ns, "local", "lan", "Local"));
    for svc in ["cluster", "local"] {
        for ip in wait_ingress(c, ns, svc) {
            let body = page_through(c, &format!("{svc} {ip}"), &ip);
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
    let _logs = LogsOnFailure(c);
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
            let prefix = host_prefix(&ip);
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
            let body = page_through(c, &format!("{svc} {ip}"), &ip);
            eprintln!("{svc} {ip}: {}", body.trim());
        }
    }
}

/// What a request loop saw against each address during one disruption.
struct Seen {
    local: Vec<Sample>,
    routed: Vec<Sample>,
}

/// Runs `disrupt` under request loops against both addresses (sampling the local one's holders),
/// lets things settle for 5 s, and reports what the loops saw; never two holders at once.
fn during(
    c: &'static Cluster,
    what: &str,
    local: &str,
    routed: &str,
    disrupt: impl FnOnce(),
) -> Seen {
    let probe_local = Probe::start(c, local.to_string(), Also::Holders);
    let probe_routed = Probe::start(c, routed.to_string(), Also::TorRoute);
    disrupt();
    std::thread::sleep(Duration::from_secs(5));
    let seen = Seen {
        local: probe_local.finish(),
        routed: probe_routed.finish(),
    };
    assert_never_two_holders(what, &seen.local);
    let (lf, lgap) = outage(&seen.local);
    let (rf, rgap) = outage(&seen.routed);
    eprintln!(
        "{what}: local {local}: {lf} of {} failed, longest gap {lgap:?}; virtual {routed}: {rf} of {} \
         failed, longest gap {rgap:?}\n{}{}",
        seen.local.len(),
        seen.routed.len(),
        failures(&seen.local),
        failures(&seen.routed)
    );
    for (name, samples) in [("local", &seen.local), ("virtual", &seen.routed)] {
        assert!(
            samples.last().is_some_and(|s| s.ok),
            "{what}: {name} served at the end"
        );
    }
    seen
}

fn single_holder(c: &Cluster, ip: &str) -> String {
    wait(
        &format!("one holder of {ip}"),
        Duration::from_secs(30),
        || match holders_of(c, ip).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        },
    )
}

fn node_ready_is(c: &Cluster, node: &str, want: bool) {
    wait(
        &format!("{node} Ready={want}"),
        Duration::from_secs(120),
        || {
            let ready = jsonpath(
                c,
                &["node", node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )?;
            if (ready == "True") == want {
                Ok(())
            } else {
                Err(ready)
            }
        },
    );
}

fn first_v4(ips: &[String]) -> String {
    ips.iter()
        .find(|ip| !ip.contains(':'))
        .cloned()
        .expect("an IPv4 address")
}

/// The chart installed and the app in `ns` behind a local and a routed LoadBalancer Service
/// (`local`, `routed`); returns their addresses once the IPv4 one of each answers.
fn local_and_routed(c: &Cluster, ns: &str) -> (Vec<String>, Vec<String>) {
    install_chart(c);
    kubectl_apply(c, &app_yaml(ns, &c.images().app));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, VIRTUAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "local", "lan", "Cluster"));
    kubectl_apply(c, &lb_service_yaml(ns, "routed", "routed", "Cluster"));
    let local = wait_ingress(c, ns, "local");
    let routed = wait_ingress(c, ns, "routed");
    for ip in [first_v4(&local), first_v4(&routed)] {
        wait(&format!("{ip} answering"), Duration::from_secs(90), || {
            get_from_client(c, &ip)
        });
    }
    (local, routed)
}

#[test]
fn failures_as_they_happen_in_clusters_move_addresses_without_two_holders() {
    let Some(c) = Cluster::shared() else { return };
    let _logs = LogsOnFailure(c);
    let _use = exclusive_use();
    let (local, routed) = local_and_routed(c, "rc-fail");
    let (local, routed) = (first_v4(&local), first_v4(&routed));

    // 1. The holder's agent pod is deleted; the DaemonSet makes a new one.
    let holder = single_holder(c, &local);
    let seen = during(c, "the holder's agent pod deleted", &local, &routed, || {
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
    });
    assert!(outage(&seen.local).1 < Duration::from_secs(30));

    // 2. A rolling restart of every agent: virtual addresses never fail (each node withdraws
    //    its routes before its agent goes), local ones move with a bounded gap.
    let seen = during(c, "rolling restart of the agents", &local, &routed, || {
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
        kubectl(
            c,
            &[
                "rollout",
                "status",
                "daemonset",
                "-n",
                "ferrolb-system",
                "ferrolb-agent",
                "--timeout=300s",
            ],
        );
        wait_agents_ready(c);
    });
    // A connection the ToR re-hashes to another node mid-flow when its next-hop set changes is
    // reset by that node (it has no state for it): a property of the router's ECMP hashing
    // (non-resilient), not of ferrolb. Such a reset is excused only when the ToR's next hops did
    // change during that request; any other failure (a timeout, a refusal: the address unrouted
    // or unserved; a reset with the route unchanged) is ferrolb's.
    let ours: Vec<&Sample> = seen
        .routed
        .iter()
        .filter(|s| !s.ok)
        .filter(|s| !(s.rehashed && s.error.as_deref().unwrap_or_default().contains("(56)")))
        .collect();
    let resets = outage(&seen.routed).0 - ours.len();
    eprintln!("rollout: {resets} connection(s) reset while the ToR's next hops changed");
    assert!(
        ours.is_empty(),
        "requests to the virtual address failed during the rollout:\n{}",
        failures(&seen.routed)
    );
    assert!(outage(&seen.local).1 < Duration::from_secs(30));

    // 3. The holder is cordoned and drained (its app pod evicted, and an allocator replica if
    //    one runs there: its PodDisruptionBudget lets one go; DaemonSet pods stay).
    let holder = single_holder(c, &local);
    let _uncordon = Restore::Uncordon(c, holder.clone());
    during(
        c,
        &format!("drain of the holder {holder}"),
        &local,
        &routed,
        || {
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
        },
    );
    kubectl(c, &["uncordon", &holder]);

    // 4. The holder's kubelet and containerd stop (its containers, the agent among them, go on
    //    running, as when a node's runtime dies): the node goes NotReady, its pods unready.
    let holder = single_holder(c, &local);
    let index = c
        .node_names()
        .iter()
        .position(|n| *n == holder)
        .expect("the holder is a node");
    let _restart = Restore::Daemons(c, index);
    during(
        c,
        &format!("kubelet and containerd of the holder {holder} stopped until NotReady"),
        &local,
        &routed,
        || {
            c.stop_node_daemons(index);
            node_ready_is(c, &holder, false);
            std::thread::sleep(Duration::from_secs(5));
        },
    );
    c.start_node_daemons(index)
        .expect("the node's daemons start again");
    node_ready_is(c, &holder, true);
}

/// Puts a disrupted node back when dropped, also when the test failed half-way, so the tests
/// that share the cluster afterwards find every node Ready and schedulable.
enum Restore<'a> {
    Uncordon(&'a Cluster, String),
    Daemons(&'a Cluster, usize),
    ApiServer(&'a Cluster),
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        match self {
            Restore::Uncordon(c, node) => {
                let (ok, out) = c.kubectl(&["uncordon", node]);
                if !ok {
                    eprintln!("uncordon {node}: {out}");
                }
            }
            Restore::Daemons(c, i) => {
                if let Err(e) = c.start_node_daemons(*i) {
                    eprintln!("restarting node {i}'s kubelet and containerd: {e:#}");
                }
            }
            Restore::ApiServer(c) => {
                if let Err(e) = start_apiserver(c) {
                    eprintln!("starting the API server again: {e:#}");
                }
            }
        }
    }
}

#[test]
fn with_external_traffic_policy_local_only_the_node_with_the_endpoint_holds_or_carries() {
    let Some(c) = Cluster::shared() else { return };
    let _logs = LogsOnFailure(c);
    let _use = shared_use();
    install_chart(c);
    let ns = "rc-one";
    let node = c.node_names()[2].clone();
    kubectl_apply(c, &app_yaml_on(ns, &c.images().app, 1, Some(&node)));
    kubectl_apply(c, LOCAL_GROUP);
    kubectl_apply(c, VIRTUAL_GROUP);
    kubectl_apply(c, &lb_service_yaml(ns, "local", "lan", "Local"));
    kubectl_apply(c, &lb_service_yaml(ns, "routed", "routed", "Local"));
    let local = first_v4(&wait_ingress(c, ns, "local"));
    let routed = first_v4(&wait_ingress(c, ns, "routed"));
    let holder = single_holder(c, &local);
    assert_eq!(holder, node, "the local address is on the endpoint's node");
    let prefix = host_prefix(&routed);
    let lan = c.topo().node(2).lan_v4();
    wait(
        &format!("the ToR's route to {prefix} via {node} only"),
        Duration::from_secs(90),
        || {
            let hops = c.tor().route_nexthops(&prefix).map_err(|e| e.to_string())?;
            if hops == [std::net::IpAddr::from(lan)] {
                Ok(())
            } else {
                Err(format!("{hops:?}"))
            }
        },
    );
    for ip in [&local, &routed] {
        let body = page_through(c, ip, ip);
        assert!(body.contains(&format!("node={node}")), "{ip}: {body}");
        assert!(
            body.contains("198.51.100.10"),
            "{ip}: the pod sees the client: {body}"
        );
    }
}

/// Starts the shared cluster's API server again (see [`ControlPlane::stop_apiserver`]); returns
/// once it is ready.
///
/// [`ControlPlane::stop_apiserver`]: ferrolb_e2e::controlplane::ControlPlane::stop_apiserver
fn start_apiserver(c: &Cluster) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(c.cp().start_apiserver())
}

/// The allocator Lease's holder and renewTime, when a running allocator pod holds it.
fn allocator_lease(c: &Cluster) -> Result<(String, Timestamp), String> {
    let lease = jsonpath(
        c,
        &["lease", "-n", "ferrolb-system", "ferrolb-allocator"],
        "{.spec.holderIdentity} {.spec.renewTime}",
    )?;
    let (holder, renewed) = lease.split_once(' ').ok_or(lease.clone())?;
    let renewed: Timestamp = renewed.parse().map_err(|e| format!("{lease}: {e}"))?;
    let phase = jsonpath(
        c,
        &["pod", "-n", "ferrolb-system", holder],
        "{.status.phase}",
    )?;
    if phase != "Running" {
        return Err(format!("the holder {holder} is {phase}"));
    }
    Ok((holder.to_string(), renewed))
}

/// Per allocator pod, `name=restarts`.
fn allocator_restarts(c: &Cluster) -> String {
    jsonpath(
        c,
        &[
            "pods",
            "-n",
            "ferrolb-system",
            "-l",
            "app.kubernetes.io/component=allocator",
        ],
        "{range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}",
    )
    .unwrap_or_else(|e| e)
}

#[test]
fn a_minute_without_the_api_server_loses_no_request_and_the_allocator_leads_again_within_seconds() {
    let Some(c) = Cluster::shared() else { return };
    let _logs = LogsOnFailure(c);
    let _use = exclusive_use();
    let ns = "rc-apiserver";
    let (local_ips, routed_ips) = local_and_routed(c, ns);
    let (local, routed) = (first_v4(&local_ips), first_v4(&routed_ips));
    let holder = single_holder(c, &local);
    let (leader, _) = wait("the allocator leading", Duration::from_secs(60), || {
        allocator_lease(c)
    });
    let restarts = allocator_restarts(c);
    eprintln!("before: {local} held by {holder}; allocator leader {leader}; restarts {restarts}");

    // The API server is gone for 60 s (connections refused, every watch broken), then back;
    // the request loops run through the outage, the return and the minute after it.
    let _restart = Restore::ApiServer(c);
    let away = Duration::from_secs(60);
    let stopped = Timestamp::now();
    // Bound for leading again: a replica that kept its identity renews on its next try (retry
    // period 2 s); a follower takes over on its first read (the Lease unchanged for longer than
    // its 15 s duration); either needs a connection first. 10 s.
    let lead_bound = Duration::from_secs(10);
    // Bound for a new Service's address, from the return: the allocator leads (above) and its
    // Service watch is back: after a broken watch it waits at most 4 s (`WatchBackoff::MAX`),
    // twice on a return (the watch resumes, then the API server says its resourceVersion expired
    // and it lists again); then one pass. 20 s.
    let address_bound = Duration::from_secs(20);
    let mut timings = None;
    let secs = |d: Duration| d.as_secs_f64();
    let seen = during(
        c,
        "the API server stopped for 60 s",
        &local,
        &routed,
        || {
            c.cp().stop_apiserver();
            // A real controller-manager elects a leader: it loses its Lease within its 10 s
            // renew deadline and exits, to be started again after the return (below). One that
            // lived through the outage would mark every node NotReady on the return, for
            // heartbeats it could not see.
            c.cp().kill("kube-controller-manager");
            std::thread::sleep(away);
            start_apiserver(c).expect("the API server starts again");
            let (back, back_wall) = (std::time::Instant::now(), Timestamp::now());
            // ... and its supervisor starts it again.
            c.cp()
                .restart_controller_manager()
                .expect("the controller-manager starts again");
            // The allocator leads again: a running allocator pod renewed the Lease after the return.
            let (leader_after, _) = wait(
                "a running allocator renewing its Lease after the return",
                lead_bound,
                || {
                    let (holder, renewed) = allocator_lease(c)?;
                    if renewed > back_wall {
                        Ok((holder, renewed))
                    } else {
                        Err(format!("{holder} last renewed at {renewed}"))
                    }
                },
            );
            let leading = back.elapsed();
            kubectl_apply(c, &lb_service_yaml(ns, "after", "lan", "Cluster"));
            let created = back.elapsed();
            wait(
                "an address for a Service created after the return",
                address_bound.saturating_sub(created),
                || {
                    let ips = jsonpath(
                        c,
                        &["service", "-n", ns, "after"],
                        "{.status.loadBalancer.ingress[*].ip}",
                    )?;
                    if ips.split_whitespace().count() == 2 {
                        Ok(())
                    } else {
                        Err(ips)
                    }
                },
            );
            let addressed = back.elapsed();
            // Every node stays Ready through the node lifecycle controller's grace period after
            // the return (50 s: kubelets post heartbeats it must see by then), loops running.
            let mut not_ready = Vec::new();
            while back.elapsed() < Duration::from_secs(60) {
                for node in c.node_names() {
                    let ready = jsonpath(
                        c,
                        &["node", &node],
                        "{.status.conditions[?(@.type==\"Ready\")].status}",
                    )
                    .unwrap_or_else(|e| e);
                    if ready != "True" {
                        not_ready.push(format!("{node} {ready} at {:.1} s", secs(back.elapsed())));
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            timings = Some((leader_after, leading, created, addressed, not_ready));
        },
    );
    let (leader_after, leading, created, addressed, not_ready) =
        timings.expect("the API server came back");
    eprintln!(
        "after the return: allocator {leader_after} leading in {:.1} s (bound {lead_bound:?}); a \
         Service created {:.1} s after the return had its addresses {:.1} s after it (bound \
         {address_bound:?}); allocator restarts {} (before: {restarts})",
        secs(leading),
        secs(created),
        secs(addressed),
        allocator_restarts(c),
    );
    assert!(
        not_ready.is_empty(),
        "nodes NotReady after the return: {not_ready:?}"
    );
    // Agents serve on what they last saw: not one request may fail, during the outage, the
    // return (every watch re-lists) or while the nodes' status catches up.
    for (name, samples) in [("local", &seen.local), ("virtual", &seen.routed)] {
        assert!(
            outage(samples).0 == 0,
            "requests to the {name} address failed with the API server away or back:\n{}",
            failures(samples)
        );
    }
    eprintln!(
        "the API server away {} s: {} requests to {local} and {} to {routed} over {:.0} s, none \
         failed",
        away.as_secs(),
        seen.local.len(),
        seen.routed.len(),
        secs(seen.local.last().map_or(Duration::ZERO, |s| s.at)),
    );

    // Nothing was left behind: every node schedulable and untainted, no address renumbered,
    // the local address on the node that held it.
    for node in c.node_names() {
        let taints = jsonpath(
            c,
            &["node", &node],
            "{.spec.unschedulable} {.spec.taints[*].key}",
        )
        .unwrap_or_default();
        assert!(
            taints.trim().is_empty(),
            "{node} left unschedulable or tainted by the outage: {taints}"
        );
    }
    assert_eq!(wait_ingress(c, ns, "local"), local_ips, "local renumbered");
    assert_eq!(
        wait_ingress(c, ns, "routed"),
        routed_ips,
        "virtual renumbered"
    );
    assert_eq!(single_holder(c, &local), holder, "{local} moved");
    // Nor did the allocator tell a story of the outage that did not happen: its Lease watch was
    // broken, not every node dead; and a replica restarted in the outage meets the Leases as
    // last written before it, not renewed yet.
    let told = jsonpath(
        c,
        &[
            "events",
            "-n",
            ns,
            "--field-selector",
            "involvedObject.name=local",
        ],
        "{range .items[*]}{.reason}|{.lastTimestamp}|{.eventTime}|{.series.lastObservedTime}|{.message}{\"\\n\"}{end}",
    )
    .unwrap_or_default();
    let false_news: Vec<&str> = told
        .lines()
        .filter(|l| l.starts_with("NoCandidate|") || l.contains("no longer announced"))
        .filter(|l| {
            l.split('|')
                .skip(1)
                .take(3)
                .filter_map(|t| t.parse::<Timestamp>().ok())
                .any(|t| t >= stopped)
        })
        .collect();
    assert!(
        false_news.is_empty(),
        "the allocator {leader_after} took the outage for dead nodes:\n{}",
        false_news.join("\n")
    );
}
