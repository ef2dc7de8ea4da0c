//! ferrolb as a user runs it: images built from the Dockerfiles, the chart installed with helm
//! onto real nodes (containerd, kubelet, kube-proxy in node namespaces), traffic from a client
//! behind the ToR through kube-proxy to real pods.

use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::Cluster;

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
