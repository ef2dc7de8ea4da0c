//! `make demo`: ferrolb installed with helm onto a real cluster on this machine, shown step by
//! step with real output only (every command is printed before its output).
//!
//! - no argument: the real cluster (images built from the Dockerfiles, 3 nodes with containerd,
//!   kubelet and kube-proxy, an FRR ToR, a client), see [`real`];
//! - `--processes`: the earlier, faster demo with ferrolb's binaries as plain processes and a
//!   TCP responder instead of kube-proxy and pods, see [`processes`];
//! - `--down`: removes what an interrupted demo or test run left;
//! - `--respond NAME PORT`: the per-node TCP responder of `--processes` and of the tests'
//!   namespaced worlds (`ferrolb_e2e::world`).

mod processes;
mod real;

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--respond") {
        let (Some(name), Some(port)) = (args.get(2), args.get(3)) else {
            anyhow::bail!("usage: ferrolb-demo --respond NAME PORT");
        };
        return respond(name, port.parse()?).await;
    }
    if args.iter().any(|a| a == "--down") {
        ferrolb_e2e::controlplane::cleanup_leftovers();
        let removed = ferrolb_e2e::topology::cleanup_leftovers("flb")?;
        println!("removed leftovers of earlier demo and test runs: {removed:?}");
        return Ok(());
    }
    let result = if args.iter().any(|a| a == "--processes") {
        if let Some(why) = ferrolb_e2e::controlplane::ControlPlane::missing() {
            anyhow::bail!("{why}");
        }
        processes::run().await
    } else {
        if let Some(why) = ferrolb_e2e::cluster::missing() {
            anyhow::bail!("{why}");
        }
        real::run().await
    };
    if let Err(e) = &result {
        eprintln!("\nthe demo stopped: {e:#}");
    }
    result
}

/// Whether `kubectl ferrolb where <svc> -o json` shows every address held by exactly its
/// elected node (never `not`) with the allocator's announcing annotation written. Both demos
/// wait for this before showing where addresses live.
fn settled(json: &serde_json::Value, not: Option<&str>) -> bool {
    json["addresses"].as_array().is_some_and(|addrs| {
        addrs.iter().all(|a| {
            let held = a["heldBy"].as_array().map_or(0, Vec::len);
            let elected = a["elected"].as_str();
            held == 1
                && a["heldBy"][0]["node"].as_str() == elected
                && elected != not
                && a["announcing"].is_string()
        })
    })
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

fn show_cmd(cmd: &str) {
    println!("$ {cmd}");
}

/// `argv` as a shell would need it typed.
fn shell_line(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+[]".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Answers every connection with a one-line HTTP response naming the node.
async fn respond(node: &str, port: u16) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("::", port)).await?;
    let body = format!("hello from {node}\n");
    loop {
        let (mut conn, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
            let reply = format!(
                "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::shell_line;

    #[test]
    fn shell_line_quotes_only_what_a_shell_would_split_or_expand() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "plain words",
                &["kubectl", "get", "pods", "-A"],
                "kubectl get pods -A",
            ),
            (
                "a set value",
                &["--set", "image.agent.tag=test"],
                "--set image.agent.tag=test",
            ),
            (
                "JSON",
                &["--set-json", r#"a={"b":1}"#],
                r#"--set-json 'a={"b":1}'"#,
            ),
            ("a quote", &["it's"], r"'it'\''s'"),
            ("empty", &[""], "''"),
        ];
        for (name, argv, want) in cases {
            assert_eq!(shell_line(argv), *want, "{name}");
        }
    }
}
