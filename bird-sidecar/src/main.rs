//! `bird-sidecar`: flags, logging, metrics server and signals around [`ferrolb_bird_sidecar::run`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ferrolb_api::contracts::{PORT_BIRD_SIDECAR, bird};
use ferrolb_bird_sidecar::apply::BirdPaths;
use ferrolb_bird_sidecar::apply::events::Events;
use ferrolb_bird_sidecar::metrics::{self, Metrics};
use ferrolb_bird_sidecar::observe::files::Files;
use ferrolb_bird_sidecar::observe::kube::ClusterView;
use ferrolb_bird_sidecar::run::{Settings, Source, run, stall_limit};
use ferrolb_bird_sidecar::supervise::Backoff;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Renders BIRD 2's config for this node, validates and reloads it, supervises BIRD, drains
/// it on SIGTERM and exports its sessions as metrics.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// This node's name (Node.metadata.name).
    #[arg(long, env = "FERROLB_NODE_NAME")]
    node_name: String,
    /// Kubeconfig file; in-cluster config when absent. Ignored with --groups.
    #[arg(long, env = "FERROLB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// bird.conf template (minijinja); the built-in default when absent.
    #[arg(long, env = "FERROLB_BIRD_TEMPLATE")]
    template: Option<PathBuf>,
    /// Values YAML: peers, BFD, OSPF.
    #[arg(long, env = "FERROLB_BIRD_VALUES")]
    values: Option<PathBuf>,
    /// Offline: ServiceGroup YAML documents instead of watching a cluster.
    #[arg(long, env = "FERROLB_BIRD_GROUPS")]
    groups: Option<PathBuf>,
    /// Offline: the node's addresses (in a cluster: its Node's InternalIPs).
    #[arg(
        long = "node-address",
        env = "FERROLB_NODE_ADDRESSES",
        value_delimiter = ','
    )]
    node_addresses: Vec<IpAddr>,
    #[arg(long, env = "FERROLB_BIRD_CONFIG", default_value = bird::CONFIG_PATH)]
    config_path: PathBuf,
    #[arg(long, env = "FERROLB_BIRD_SOCKET", default_value = bird::CONTROL_SOCKET)]
    socket: PathBuf,
    #[arg(long, env = "FERROLB_BIRD_BINARY", default_value = "bird")]
    bird_binary: PathBuf,
    #[arg(long, env = "FERROLB_BIRDC_BINARY", default_value = "birdc")]
    birdc_binary: PathBuf,
    /// Drain on SIGTERM (the LBNodeAgent's `drain` wins in a cluster): graceful-shutdown
    /// community at once, routes withdrawn after half of it.
    #[arg(long, env = "FERROLB_DRAIN", default_value = "5s", value_parser = duration)]
    drain: Duration,
    /// How often files are re-read and BIRD's sessions polled.
    #[arg(long, env = "FERROLB_POLL_INTERVAL", default_value = "2s", value_parser = duration)]
    poll_interval: Duration,
    /// How long one `bird -p` or `birdc` call may take; a call that takes longer is killed
    /// and counts as failed.
    #[arg(long, env = "FERROLB_BIRDC_TIMEOUT", default_value = "10s", value_parser = duration)]
    birdc_timeout: Duration,
    /// `/metrics`, `/healthz`, `/readyz`. Loopback by default: the sidecar shares the host's
    /// network, and a wildcard address would serve them on every LoadBalancer address too. In
    /// a cluster pass the node's own address (the chart does, from the downward API).
    #[arg(long, env = "FERROLB_METRICS_ADDR", value_parser = ferrolb_api::listen::listen_addr,
          default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT_BIRD_SIDECAR)))]
    metrics_addr: SocketAddr,
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn duration(s: &str) -> Result<Duration, String> {
    ferrolb_api::duration::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let metrics = Arc::new(Metrics::new());
    let listener = metrics::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let (source, events) = if args.groups.is_some() {
        (Source::Offline, Events::none())
    } else {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
            }
            None => kube::Config::incluster().context("in-cluster config")?,
        };
        let client = kube::Client::try_from(config)?;
        let view = ClusterView::start(client.clone(), &args.node_name).await;
        let node = view
            .node_reference()
            .unwrap_or_else(|| Events::node_reference(&args.node_name));
        (Source::Cluster(view), Events::for_node(client, node))
    };

    let settings = Settings {
        node_name: args.node_name,
        node_addresses: args.node_addresses,
        files: Files {
            template: args.template,
            values: args.values,
            groups: args.groups,
        },
        paths: BirdPaths {
            bird: args.bird_binary,
            birdc: args.birdc_binary,
            config: args.config_path,
            socket: args.socket,
        },
        drain: args.drain,
        poll: args.poll_interval,
        backoff: Backoff::default(),
        stop_grace: Duration::from_secs(5),
        birdc_timeout: args.birdc_timeout,
        stall_limit: stall_limit(args.poll_interval, args.birdc_timeout),
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
    };
    run(settings, source, metrics, events, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metrics_and_health_on_loopback_unless_told() {
        let cases = [
            ("default", vec![], "127.0.0.1:9472"),
            (
                "the node's address",
                vec!["--metrics-addr", "192.0.2.10:9472"],
                "192.0.2.10:9472",
            ),
            (
                "an IPv6 node's address from the downward API",
                vec!["--metrics-addr", "2001:db8:1::a:9472"],
                "[2001:db8:1::a]:9472",
            ),
        ];
        for (name, extra, want) in cases {
            let argv = ["bird-sidecar", "--node-name", "n0"]
                .into_iter()
                .chain(extra);
            let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(args.metrics_addr.to_string(), want, "{name}");
        }
    }
}
