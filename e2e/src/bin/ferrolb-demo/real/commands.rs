//! How the demo runs and shows commands: kubectl, helm, kubectl-ferrolb, commands in node and
//! client namespaces, BIRD's control socket on a node, and bounded waits.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrolb_e2e::topology;

use super::Demo;
use crate::{shell_line, show_cmd};

impl Demo {
    /// `kubectl ARGS`, shown; an error when it fails.
    pub(super) fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        show_cmd(&format!("kubectl {}", shell_line(args)));
        let (ok, out) = self.c.kubectl(args);
        print!("{out}");
        if !ok {
            bail!("kubectl {} failed", shell_line(args));
        }
        Ok(out)
    }

    /// `kubectl ARGS`, not shown: (succeeded, output).
    pub(super) fn quiet(&self, args: &[&str]) -> (bool, String) {
        self.c.kubectl(args)
    }

    /// `kubectl apply -f - <<EOF`, shown with the YAML.
    pub(super) fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        show_cmd(&format!("kubectl apply -f - <<EOF\n{yaml}EOF"));
        let (ok, out) = self.c.cp().kubectl_with_input(&["apply", "-f", "-"], yaml);
        print!("{out}");
        if !ok {
            bail!("kubectl apply failed");
        }
        Ok(())
    }

    pub(super) fn helm_install(&self) -> anyhow::Result<()> {
        let mut lines: Vec<Vec<String>> = vec![
            [
                "install",
                "ferrolb",
                "manifests/helm/ferrolb",
                "-n",
                "ferrolb-system",
            ]
            .map(String::from)
            .to_vec(),
        ];
        // Images: the ones just built and imported into every node (nothing is pulled).
        let values = self.c.chart_image_values();
        for pair in values.chunks(3) {
            lines.push(
                pair.iter()
                    .flat_map(|v| ["--set".into(), v.clone()])
                    .collect(),
            );
        }
        // BIRD peers with the ToR on both families, with BFD.
        let bird = format!(
            r#"birdSidecar.values={{"localASN":{},"peers":[{{"address":"192.0.2.1","asn":{},"bfd":true}},{{"address":"2001:db8:1::1","asn":{},"bfd":true}}]}}"#,
            topology::NODE_ASN,
            topology::TOR_ASN,
            topology::TOR_ASN
        );
        lines.push(vec!["--set-json".into(), bird]);
        let shown: Vec<String> = lines
            .iter()
            .map(|l| shell_line(&l.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect();
        show_cmd(&format!("helm {}", shown.join(" \\\n    ")));
        let argv: Vec<&str> = lines.iter().flatten().map(String::as_str).collect();
        let (ok, out) = self.c.helm(&argv);
        print!("{out}");
        if !ok {
            bail!("helm install failed");
        }
        Ok(())
    }

    /// `kubectl ferrolb ARGS` (the kubectl-ferrolb plugin built beside this binary), shown.
    pub(super) fn ferrolb(&self, args: &[&str]) {
        show_cmd(&format!("kubectl ferrolb {}", shell_line(args)));
        print!("{}", self.ferrolb_output(args));
    }

    pub(super) fn ferrolb_output(&self, args: &[&str]) -> String {
        let out = Command::new(ferrolb_e2e::env::binary("kubectl-ferrolb"))
            .arg("--kubeconfig")
            .arg(self.c.cp().kubeconfig())
            .args(args)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => format!("cannot run kubectl-ferrolb: {e}\n"),
        }
    }

    /// Runs `argv` on the host (node and client commands name their namespace), shown with a
    /// comment when `note` is not empty.
    pub(super) fn in_ns(&self, argv: &[&str], note: &str) {
        let line = shell_line(argv);
        if note.is_empty() {
            show_cmd(&line);
        } else {
            show_cmd(&format!("{line}    # {note}"));
        }
        print!("{}", output_of(argv));
    }

    /// `birdc ARGS` against BIRD on node `i`, from the host, shown.
    pub(super) fn birdc(&self, i: usize, args: &[&str]) -> anyhow::Result<()> {
        let node = &self.c.node_names()[i];
        let (pod, uid) = self.agent_pod(node)?;
        let contract = Path::new(ferrolb_api::contracts::bird::CONTROL_SOCKET);
        let name = contract.file_name().context("the socket's file name")?;
        // The cluster keeps node i's files, the kubelet's root directory among them, in
        // <topology dir>/k8s-n<i>; the container's /run/bird is the pod's emptyDir bird-run.
        let dir = self.c.topo().dir().join(format!(
            "k8s-n{i}/kubelet/pods/{uid}/volumes/kubernetes.io~empty-dir/bird-run"
        ));
        if !dir.join(name).exists() {
            bail!("pod {pod}: no BIRD control socket in {}", dir.display());
        }
        println!(
            "# BIRD runs in the bird-sidecar container of {pod} (host network of\n\
             # {node}); its control socket {} is in the pod's emptyDir bird-run,\n\
             # under the kubelet's root directory. That full path is longer than a unix socket\n\
             # address may be, so birdc gets it relative to the directory. On a cluster of\n\
             # machines: kubectl -n ferrolb-system exec {pod} -c bird-sidecar -- birdc {}",
            contract.display(),
            shell_line(args)
        );
        let name = name.to_string_lossy();
        let mut argv = vec!["birdc", "-s", &name];
        argv.extend_from_slice(args);
        show_cmd(&format!(
            "cd {} && {}",
            shell_line(&[&dir.display().to_string()]),
            shell_line(&argv)
        ));
        print!("{}", output_in(&dir, &argv));
        Ok(())
    }

    /// The agent pod on `node`: (name, uid) of the one not being deleted.
    pub(super) fn agent_pod(&self, node: &str) -> anyhow::Result<(String, String)> {
        let selector = format!("spec.nodeName={node}");
        let (ok, out) = self.quiet(&[
            "get",
            "pods",
            "-n",
            "ferrolb-system",
            "-l",
            "app.kubernetes.io/component=agent",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        if !ok {
            bail!("listing the agent pods on {node}: {out}");
        }
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.len() == 2)
            .map(|w| (w[0].to_string(), w[1].to_string()))
            .with_context(|| format!("no agent pod on {node}: {out}"))
    }

    /// Whether the agent pod on `node` other than `not` is Ready.
    pub(super) fn new_agent_ready(&self, node: &str, not: &str) -> Result<(), String> {
        let selector = format!("spec.nodeName={node}");
        let (_, out) = self.quiet(&[
            "get",
            "pods",
            "-n",
            "ferrolb-system",
            "-l",
            "app.kubernetes.io/component=agent",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ]);
        out.lines()
            .any(|l| !l.starts_with(not) && l.ends_with(" True"))
            .then_some(())
            .ok_or(out)
    }

    /// The nodes whose LAN interface carries `addr` right now, from the kernel.
    pub(super) fn holders(&self, addr: IpAddr) -> Vec<usize> {
        let topo = self.c.topo();
        topo.nodes()
            .iter()
            .filter(|n| {
                let a = addr.to_string();
                let argv = [
                    "ip",
                    "-n",
                    n.ns_name(),
                    "-o",
                    "addr",
                    "show",
                    "dev",
                    n.lan_ifname(),
                    "to",
                    &a,
                ];
                !output_of(&argv).trim().is_empty()
            })
            .map(|n| n.index())
            .collect()
    }

    /// A Service's load-balancer addresses, once it has one per family (bounded).
    pub(super) async fn addresses(&self, svc: &str) -> anyhow::Result<Vec<IpAddr>> {
        self.wait(
            &format!("two load-balancer addresses on Service {svc}"),
            Duration::from_secs(120),
            || {
                let (_, text) = self.quiet(&[
                    "get",
                    "service",
                    svc,
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[*].ip}",
                ]);
                let ips: Vec<IpAddr> = text
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                if ips.len() == 2 { Ok(ips) } else { Err(text) }
            },
        )
        .await
    }

    /// Waits (bounded, 60 s) until `kubectl ferrolb where` finds every local address of `svc`
    /// held by exactly the node the election picks, and not by `not`.
    pub(super) async fn settled(&self, svc: &str, not: Option<&str>) {
        let ok = self
            .wait("the Leases to settle", Duration::from_secs(60), || {
                let out = self.ferrolb_output(&["where", svc, "-o", "json"]);
                let json: serde_json::Value =
                    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
                crate::settled(&json, not).then_some(()).ok_or(out)
            })
            .await;
        if let Err(e) = ok {
            println!("(not settled: {e:#})");
        }
    }

    /// Polls `f` every 500 ms until it succeeds, for at most `limit`.
    pub(super) async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(last) if Instant::now() > deadline => {
                    bail!("timed out after {limit:?} waiting for {what}; last: {last}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

/// A command's standard output followed by its standard error.
pub(super) fn output_of(argv: &[&str]) -> String {
    output_in(Path::new("."), argv)
}

/// [`output_of`] in the directory `dir`.
fn output_in(dir: &Path, argv: &[&str]) -> String {
    match Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => {
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
        }
        Err(e) => format!("cannot run {}: {e}\n", argv[0]),
    }
}
