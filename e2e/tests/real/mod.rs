//! What the real-cluster tests share: kubectl and helm with the cluster's admin kubeconfig,
//! the test app, ServiceGroups and Services, the chart install, request loops from the client.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::Cluster;
use ferrolb_e2e::topology;

/// Runs `kubectl` and panics with its output when it fails.
pub fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let (ok, out) = c.kubectl(args);
    if !ok {
        let pods = c.kubectl(&["get", "pods", "-A", "-o", "wide"]).1
            + &c.pod_logs("ferrolb-system", "ferrolb-allocator", 60);
        hold_for_debugging(&format!("kubectl {args:?}"));
        panic!("kubectl {args:?} failed:\n{out}\npods:\n{pods}");
    }
    out
}

pub fn kubectl_apply(c: &Cluster, yaml: &str) {
    let (ok, out) = c.cp().kubectl_with_input(&["apply", "-f", "-"], yaml);
    assert!(ok, "kubectl apply failed:\n{out}\n{yaml}");
}

/// Polls `f` every 500 ms until it returns `Some`, for at most `limit`; panics with `what` and
/// the last observation otherwise.
pub fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
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

/// Held for a test's length: when the test fails, ferrolb's pods' last log lines (what they
/// decided around the failure: CI keeps no cluster to look at), then [`hold_for_debugging`].
pub struct LogsOnFailure(pub &'static Cluster);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pods in ["ferrolb-agent", "ferrolb-allocator"] {
                eprintln!(
                    "--- the last lines of {pods} pods:\n{}",
                    self.0.pod_logs("ferrolb-system", pods, 150)
                );
            }
            hold_for_debugging("the test failed");
        }
    }
}

/// With `FERROLB_HOLD_ON_FAILURE=<seconds>`, a failing test keeps its cluster that long so that
/// it can be looked at (`ip netns`, the kubeconfig in the control plane's directory).
pub fn hold_for_debugging(what: &str) {
    if let Some(secs) = std::env::var("FERROLB_HOLD_ON_FAILURE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        eprintln!("holding the cluster for {secs} s after a failure ({what})");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

pub fn app_yaml(ns: &str, image: &str) -> String {
    app_yaml_on(ns, image, 3, None)
}

/// The app with `replicas` pods, spread over the nodes or all on `node`.
pub fn app_yaml_on(ns: &str, image: &str, replicas: u32, node: Option<&str>) -> String {
    let node_selector = node
        .map(|n| format!("\n      nodeSelector: {{ kubernetes.io/hostname: {n} }}"))
        .unwrap_or_default();
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
  replicas: {replicas}
  selector:
    matchLabels: {{ app: app }}
  template:
    metadata:
      labels: {{ app: app }}
    spec:{node_selector}
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

/// `kubectl get <what> -o jsonpath=<path>`: the text, or the error output.
pub fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> Result<String, String> {
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
pub fn install_chart(c: &Cluster) {
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
        wait_ferrolb_ready(c);
    });
}

pub fn lb_service_yaml(ns: &str, name: &str, group: &str, policy: &str) -> String {
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

pub const LOCAL_GROUP: &str = r#"apiVersion: ferrolb.io/v1
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

pub fn url(ip: &str) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]/cgi-bin/index.cgi")
    } else {
        format!("http://{ip}/cgi-bin/index.cgi")
    }
}

/// The Service's load-balancer addresses, once it has one per family.
pub fn wait_ingress(c: &Cluster, ns: &str, name: &str) -> Vec<String> {
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
pub fn get_from_client(c: &Cluster, ip: &str) -> Result<String, String> {
    let topo = c.topo();
    let client = topo.client_ns().expect("the cluster has a client");
    topo.run(client, &["curl", "-sS", "-m", "3", &url(ip)])
        .map_err(|e| e.to_string())
}

pub const VIRTUAL_GROUP: &str = r#"apiVersion: ferrolb.io/v1
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

/// One request of a [`Probe`]: when it was sent, whether it got the app's page.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub ok: bool,
    /// How long the request took, and curl's error when it failed.
    pub took: Duration,
    pub error: Option<String>,
    /// Nodes whose LAN interface held the address at that moment (local addresses only).
    pub holders: Vec<String>,
    /// The ToR's next hops for the address changed between just before and just after the
    /// request (routed addresses only): the ToR may have re-hashed the connection to another
    /// node.
    pub rehashed: bool,
}

/// What a [`Probe`] samples besides the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Also {
    /// Which nodes hold the address on their LAN interface (a local address).
    Holders,
    /// The ToR's next hops for the address, before and after each request (a routed address).
    TorRoute,
}

/// `ip` as a host prefix (`/32`, `/128`): the test groups aggregate routed addresses to that.
pub fn host_prefix(ip: &str) -> String {
    if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

/// A bounded request loop from the client against one address, sampling also which node
/// namespaces hold the address on their LAN interface.
pub struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Probe {
    pub fn start(c: &'static Cluster, ip: String, also: Also) -> Probe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            // Bounded: at most 10 minutes of requests, whatever the caller does.
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(600)
            {
                let route = || {
                    (also == Also::TorRoute)
                        .then(|| ferrolb_e2e::routing::nexthops(c.tor(), &host_prefix(&ip)))
                };
                let before = route();
                let at = started.elapsed();
                let result = get_from_client(c, &ip);
                let took = started.elapsed() - at;
                let rehashed = before != route();
                let ok = result.as_ref().is_ok_and(|b| b.contains("pod=app-"));
                let error = (!ok).then(|| match result {
                    Ok(body) => format!("unexpected answer: {body}"),
                    Err(e) => e.lines().last().unwrap_or_default().to_string(),
                });
                let holders = if also == Also::Holders {
                    holders_of(c, &ip)
                } else {
                    Vec::new()
                };
                samples.push(Sample {
                    at,
                    ok,
                    took,
                    error,
                    holders,
                    rehashed,
                });
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        Probe {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .expect("finished once")
            .join()
            .expect("the probe thread does not panic")
    }
}

/// Node namespaces whose LAN interface holds `ip`. The nodes are read one after another, not
/// at one instant, and under load the reads span a handover (the old holder read before it
/// lets go, the new one after it takes over: a fresh-clone run saw "two holders" where the
/// agents' logs had 95 ms between the removal and the add). So a node read earlier counts only
/// if it still holds the address when read again after the last one that does: then both held
/// it at that moment.
pub fn holders_of(c: &Cluster, ip: &str) -> Vec<String> {
    let topo = c.topo();
    let holds = |ns: &str| {
        topo.run(ns, &["ip", "-o", "addr", "show", "dev", "eth0", "to", ip])
            .is_ok_and(|o| !o.trim().is_empty())
    };
    let mut seen: Vec<String> = topo
        .nodes()
        .iter()
        .map(|n| n.ns_name().to_string())
        .filter(|ns| holds(ns))
        .collect();
    if let Some(last) = seen.pop() {
        seen.retain(|ns| holds(ns));
        seen.push(last);
    }
    seen
}

/// (failed requests, longest time without an answered request).
pub fn outage(samples: &[Sample]) -> (usize, Duration) {
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

/// The failed requests, one line each: when, how long, why.
pub fn failures(samples: &[Sample]) -> String {
    samples
        .iter()
        .filter(|s| !s.ok)
        .map(|s| {
            format!(
                "  at {:.2} s, after {:.2} s: {}{}",
                s.at.as_secs_f64(),
                s.took.as_secs_f64(),
                s.error.as_deref().unwrap_or_default(),
                if s.rehashed {
                    " (the ToR's next hops changed meanwhile)"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn assert_never_two_holders(what: &str, samples: &[Sample]) {
    if let Some(s) = samples.iter().find(|s| s.holders.len() > 1) {
        panic!("{what}: held by {:?} at once, {:?} in", s.holders, s.at);
    }
}

/// The agent pod on `node`.
pub fn agent_pod_on(c: &Cluster, node: &str) -> String {
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

pub fn wait_agents_ready(c: &Cluster) {
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

/// Tests that break the shared cluster (drain a node, stop its runtime) hold it alone; the
/// others share it. Each leaves the cluster as it found it (nodes Ready and schedulable).
static USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn shared_use() -> std::sync::RwLockReadGuard<'static, ()> {
    USE.read().unwrap_or_else(|p| p.into_inner())
}

pub fn exclusive_use() -> std::sync::RwLockWriteGuard<'static, ()> {
    USE.write().unwrap_or_else(|p| p.into_inner())
}

/// Waits until the agent DaemonSet is Ready on every node and both allocators are Ready.
pub fn wait_ferrolb_ready(c: &Cluster) {
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
}

/// The app's page through `ip` from the client (bounded wait: 60 s).
pub fn page_through(c: &Cluster, what: &str, ip: &str) -> String {
    wait(
        &format!("HTTP through {what} from the client"),
        Duration::from_secs(60),
        || {
            get_from_client(c, ip).and_then(|b| {
                if b.contains("pod=app-") {
                    Ok(b)
                } else {
                    Err(b)
                }
            })
        },
    )
}
