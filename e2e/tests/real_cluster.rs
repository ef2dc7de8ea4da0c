//! ferrolb as a user runs it: images built from the Dockerfiles, the chart installed with helm
//! onto real nodes (containerd, kubelet, kube-proxy in node namespaces), traffic from a client
//! behind the ToR through kube-proxy to real pods.

use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::Cluster;
use ferrolb_e2e::topology;

/// Runs `kubectl` and panics with its output when it fails.
fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let (ok, out) = c.kubectl(args);
    assert!(ok, "kubectl {args:?} failed:\n{out}");
    out
}

fn kubectl_apply(c: &Cluster, yaml: &str) {
    let (ok, out) = c.cp().kubectl_with_input(&["apply", "-f", "-"], yaml);
    assert!(ok, "kubectl apply failed:\n{out}\n{yaml}");
}

/// Polls `f` every 500 ms until it returns `Some`, for at most `limit`; panics with `what` and
/// the last observation otherwise.
fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                hold_for_debugging(&format!("waiting for {what}"));
                panic!("timed out after {limit:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// With `FERROLB_HOLD_ON_FAILURE=<seconds>`, a failing test keeps its cluster that long so that
/// it can be looked at (`ip netns`, the kubeconfig in the control plane's directory).
fn hold_for_debugging(what: &str) {
    if let Some(secs) = std::env::var("FERROLB_HOLD_ON_FAILURE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        eprintln!("holding the cluster for {secs} s after a failure ({what})");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

fn app_yaml(ns: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  replicas: 3
  selector:
    matchLabels: {{ app: app }}
  template:
    metadata:
      labels: {{ app: app }}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {{ app: app }}
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        seccompProfile: {{ type: RuntimeDefault }}
      containers:
      - name: app
        image: {image}
        imagePullPolicy: Never
        ports: [{{ containerPort: 8080 }}]
        env:
        - name: POD_NAME
          valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }}
        - name: NODE_NAME
          valueFrom: {{ fieldRef: {{ fieldPath: spec.nodeName }} }}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {{ drop: [ALL] }}
        readinessProbe:
          httpGet: {{ path: /cgi-bin/index.cgi, port: 8080 }}
          periodSeconds: 2
"#
    )
}

#[test]
fn real_nodes_run_pods_from_the_locally_built_images_on_every_node() {
    let Some(c) = Cluster::shared() else { return };
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

/// `kubectl get <what> -o jsonpath=<path>`: the text, or the error output.
fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> Result<String, String> {
    let mut argv: Vec<&str> = vec!["get"];
    argv.extend_from_slice(args);
    let p = format!("jsonpath={path}");
    argv.extend_from_slice(&["-o", &p]);
    match c.kubectl(&argv) {
        (true, out) => Ok(out),
        (false, out) => Err(out),
    }
}

/// Installs the chart as the install docs say (namespace labelled for the agent's host
/// network), with the locally built images; once per test binary.
fn install_chart(c: &Cluster) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        kubectl(
            c,
            &[
                "label",
                "namespace",
                "ferrolb-system",
                "pod-security.kubernetes.io/enforce=privileged",
                "--overwrite",
            ],
        );
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/helm/ferrolb");
        let mut args: Vec<String> = vec![
            "install".into(),
            "ferrolb".into(),
            chart.into(),
            "-n".into(),
            "ferrolb-system".into(),
        ];
        for v in c.chart_image_values() {
            args.extend(["--set".into(), v]);
        }
        // BGP to the ToR, on both families, with BFD.
        args.extend([
            "--set-json".into(),
            format!(
                r#"birdSidecar.values={{"localASN":{},"peers":[{{"address":"192.0.2.1","asn":{},"bfd":true}},{{"address":"2001:db8:1::1","asn":{},"bfd":true}}]}}"#,
                topology::NODE_ASN,
                topology::TOR_ASN,
                topology::TOR_ASN
            ),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = c.helm(&argv);
        assert!(ok, "helm install failed:\n{out}");
        let nodes = c.node_names().len().to_string();
        wait(
            "the agent DaemonSet Ready on every node and both allocators Ready",
            Duration::from_secs(240),
            || {
                let agents = jsonpath(
                    c,
                    &["daemonset", "-n", "ferrolb-system", "ferrolb-agent"],
                    "{.status.numberReady}",
                )?;
                let allocators = jsonpath(
                    c,
                    &["deployment", "-n", "ferrolb-system", "ferrolb-allocator"],
                    "{.status.readyReplicas}",
                )?;
                if agents == nodes && allocators == "2" {
                    Ok(())
                } else {
                    Err(format!(
                        "agents ready {agents:?}, allocators ready {allocators:?}\n{}",
                        c.kubectl(&["get", "pods", "-A", "-o", "wide"]).1
                    ))
                }
            },
        );
    });
}

fn lb_service_yaml(ns: &str, name: &str, group: &str, policy: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    ferrolb.io/service-group: {group}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  externalTrafficPolicy: {policy}
  selector: {{ app: app }}
  ports:
  - {{ name: http, port: 80, targetPort: 8080 }}
"#
    )
}

const LOCAL_GROUP: &str = r#"apiVersion: ferrolb.io/v1
kind: ServiceGroup
metadata:
  name: lan
spec:
  local:
    v4pools:
    - { subnet: 192.0.2.0/24, pool: 192.0.2.100-192.0.2.109 }
    v6pools:
    - { subnet: "2001:db8:1::/64", pool: "2001:db8:1::100-2001:db8:1::10f" }
"#;

fn url(ip: &str) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]/cgi-bin/index.cgi")
    } else {
        format!("http://{ip}/cgi-bin/index.cgi")
    }
}

/// The Service's load-balancer addresses, once it has one per family.
fn wait_ingress(c: &Cluster, ns: &str, name: &str) -> Vec<String> {
    wait(
        &format!("two load-balancer addresses on {ns}/{name}"),
        Duration::from_secs(120),
        || {
            let ips = jsonpath(
                c,
                &["service", "-n", ns, name],
                "{.status.loadBalancer.ingress[*].ip}",
            )?;
            let ips: Vec<String> = ips.split_whitespace().map(str::to_string).collect();
            if ips.len() == 2 {
                Ok(ips)
            } else {
                Err(format!(
                    "{ips:?}\n{}",
                    c.kubectl(&["describe", "service", "-n", ns, name]).1
                ))
            }
        },
    )
}

/// One HTTP GET from the client behind the ToR.
fn get_from_client(c: &Cluster, ip: &str) -> Result<String, String> {
    let topo = c.topo();
    let client = topo.client_ns().expect("the cluster has a client");
    topo.run(client, &["curl", "-sS", "-m", "3", &url(ip)])
        .map_err(|e| e.to_string())
}

#[test]
fn helm_installed_ferrolb_serves_local_addresses_through_kube_proxy_to_real_pods() {
    let Some(c) = Cluster::shared() else { return };
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

const VIRTUAL_GROUP: &str = r#"apiVersion: ferrolb.io/v1
kind: ServiceGroup
metadata:
  name: routed
spec:
  virtual:
    v4pools:
    - { subnet: 203.0.113.0/24, pool: 203.0.113.10-203.0.113.19, aggregation: /32 }
    v6pools:
    - { subnet: "2001:db8:5::/64", pool: "2001:db8:5::10-2001:db8:5::1f", aggregation: /128 }
"#;

#[test]
fn helm_installed_ferrolb_routes_virtual_addresses_over_bgp_to_real_pods() {
    let Some(c) = Cluster::shared() else { return };
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

/// One request of a [`Probe`]: when it was sent, whether it got the app's page.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    ok: bool,
    /// Nodes whose LAN interface held the address at that moment (local addresses only).
    holders: Vec<String>,
}

/// A bounded request loop from the client against one address, sampling also which node
/// namespaces hold the address on their LAN interface.
struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Probe {
    fn start(c: &'static Cluster, ip: String, sample_holders: bool) -> Probe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            // Bounded: at most 10 minutes of requests, whatever the caller does.
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(600)
            {
                let at = started.elapsed();
                let ok = get_from_client(c, &ip).is_ok_and(|b| b.contains("pod=app-"));
                let holders = if sample_holders {
                    holders_of(c, &ip)
                } else {
                    Vec::new()
                };
                samples.push(Sample { at, ok, holders });
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        Probe {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .expect("finished once")
            .join()
            .expect("the probe thread does not panic")
    }
}

/// Node namespaces whose LAN interface holds `ip`.
fn holders_of(c: &Cluster, ip: &str) -> Vec<String> {
    let topo = c.topo();
    topo.nodes()
        .iter()
        .filter(|n| {
            topo.run(
                n.ns_name(),
                &["ip", "-o", "addr", "show", "dev", "eth0", "to", ip],
            )
            .is_ok_and(|o| !o.trim().is_empty())
        })
        .map(|n| n.ns_name().to_string())
        .collect()
}

/// (failed requests, longest time without an answered request).
fn outage(samples: &[Sample]) -> (usize, Duration) {
    let failed = samples.iter().filter(|s| !s.ok).count();
    let mut longest = Duration::ZERO;
    let mut last_ok: Option<Duration> = None;
    let mut first_fail: Option<Duration> = None;
    for s in samples {
        if s.ok {
            if let Some(f) = first_fail.take() {
                longest = longest.max(s.at - last_ok.unwrap_or(f));
            }
            last_ok = Some(s.at);
        } else if first_fail.is_none() {
            first_fail = Some(s.at);
        }
    }
    if let Some(f) = first_fail {
        let end = samples.last().map_or(f, |s| s.at);
        longest = longest.max(end - last_ok.unwrap_or(f));
    }
    (failed, longest)
}

fn assert_never_two_holders(what: &str, samples: &[Sample]) {
    if let Some(s) = samples.iter().find(|s| s.holders.len() > 1) {
        panic!("{what}: held by {:?} at once, {:?} in", s.holders, s.at);
    }
}

/// The agent pod on `node`.
fn agent_pod_on(c: &Cluster, node: &str) -> String {
    jsonpath(
        c,
        &[
            "pods",
            "-n",
            "ferrolb-system",
            "-l",
            "app.kubernetes.io/component=agent",
            "--field-selector",
            &format!("spec.nodeName={node}"),
        ],
        "{.items[0].metadata.name}",
    )
    .expect("the agent pod is listed")
}

fn wait_agents_ready(c: &Cluster) {
    let nodes = c.node_names().len().to_string();
    wait(
        "every agent pod updated and Ready",
        Duration::from_secs(300),
        || {
            let ready = jsonpath(
                c,
                &["daemonset", "-n", "ferrolb-system", "ferrolb-agent"],
                "{.status.numberReady} {.status.updatedNumberScheduled}",
            )?;
            if ready == format!("{nodes} {nodes}") {
                Ok(())
            } else {
                Err(ready)
            }
        },
    );
}

#[test]
fn failures_as_they_happen_in_clusters_move_addresses_without_two_holders() {
    let Some(c) = Cluster::shared() else { return };
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
    assert_eq!(rf, 0, "virtual address failed during the rollout");
    assert!(lgap < Duration::from_secs(30), "gap {lgap:?}");
}
