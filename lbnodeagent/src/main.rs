//! `ferrolb-agent`: flags, logging, client, metrics endpoint; then `ferrolb_lbnodeagent::run`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ferrolb_api::contracts::PORT_AGENT;
use ferrolb_lbnodeagent::metrics::{self, Metrics};
use ferrolb_lbnodeagent::run::{GossipTuning, Holder, RunConfig, run};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Puts this node's share of the LoadBalancer addresses on its interfaces.
#[derive(Debug, Parser)]
#[command(version)]
struct Flags {
    /// This node's name, as its Node object is called.
    #[arg(long, env = "FERROLB_NODE_NAME")]
    node_name: String,
    /// Kubeconfig file; without it, the in-cluster config or the default kubeconfig.
    #[arg(long, env = "FERROLB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// `/metrics`, `/healthz`, `/readyz`. Loopback by default: the agent shares the host's
    /// network, and a wildcard address would serve them on every LoadBalancer address too. In
    /// a cluster pass the node's own address (the chart does, from the downward API:
    /// `$(HOST_IP):9471`; an IPv6 address may come with or without brackets).
    #[arg(long, env = "FERROLB_METRICS_ADDR", value_parser = ferrolb_api::listen::listen_addr,
          default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT_AGENT)))]
    metrics_addr: SocketAddr,
    /// Log lines as text or as JSON.
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Namespace of the per-node Leases and of the gossip Secret `ferrolb-gossip`.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::contracts::INSTALL_NAMESPACE)]
    namespace: String,
    /// Serve only the Services of this namespace (tests: one set of agents per tenant).
    #[arg(long, env = "FERROLB_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Gossip failure detector: phi above which a silent node is declared dead (lower: faster
    /// takeover, more false alarms on a lossy LAN).
    #[arg(long, env = "FERROLB_GOSSIP_PHI_THRESHOLD", default_value_t = GossipTuning::default().phi_threshold)]
    gossip_phi_threshold: f64,
    /// Gossip failure detector: heartbeat gaps longer than this are not sampled (e.g. 2s).
    #[arg(long, env = "FERROLB_GOSSIP_MAX_INTERVAL", value_parser = duration, default_value = "2s")]
    gossip_max_interval: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    ferrolb_api::duration::parse(text).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match flags.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let client = match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
            Client::try_from(config)?
        }
        None => Client::try_default()
            .await
            .context("no in-cluster config or kubeconfig")?,
    };
    let metrics = Arc::new(Metrics::new());
    let bound = metrics::serve(flags.metrics_addr, metrics.clone())
        .await
        .with_context(|| format!("cannot listen on {}", flags.metrics_addr))?;
    tracing::info!(%bound, "metrics, healthz and readyz listening");
    let cfg = RunConfig {
        node: flags.node_name,
        namespace: flags.namespace,
        services_in: flags.watch_namespace,
        holder: Holder::Elected(GossipTuning {
            phi_threshold: flags.gossip_phi_threshold,
            max_interval: flags.gossip_max_interval,
            ..GossipTuning::default()
        }),
        metrics,
    };
    run(client, cfg).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metrics_and_health_on_loopback_unless_told() {
        let cases: [(&str, Vec<&str>, Result<&str, &str>); 5] = [
            ("default", vec![], Ok("127.0.0.1:9471")),
            (
                "the node's IPv4 address",
                vec!["--metrics-addr", "192.0.2.10:9471"],
                Ok("192.0.2.10:9471"),
            ),
            (
                "IPv6 with brackets",
                vec!["--metrics-addr", "[2001:db8::10]:9471"],
                Ok("[2001:db8::10]:9471"),
            ),
            (
                "IPv6 as $(HOST_IP):9471 writes it",
                vec!["--metrics-addr", "2001:db8::10:9471"],
                Ok("[2001:db8::10]:9471"),
            ),
            (
                "no port",
                vec!["--metrics-addr", "192.0.2.10"],
                Err("is not address:port"),
            ),
        ];
        for (name, extra, want) in cases {
            let argv = ["ferrolb-agent", "--node-name", "n0"]
                .into_iter()
                .chain(extra);
            match (Flags::try_parse_from(argv), want) {
                (Ok(flags), Ok(want)) => {
                    assert_eq!(flags.metrics_addr.to_string(), want, "{name}")
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
