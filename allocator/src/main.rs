//! `ferrolb-allocator`: flags, logging, client, metrics endpoint; then `ferrolb_allocator::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{ArgAction, Parser, ValueEnum};
use ferrolb_allocator::decide::Settings;
use ferrolb_allocator::metrics::{self, Metrics};
use ferrolb_allocator::observe::Scope;
use ferrolb_allocator::{RunConfig, run};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Assigns addresses from ServiceGroup pools to LoadBalancer Services.
#[derive(Debug, Parser)]
#[command(version)]
struct Flags {
    /// Kubeconfig file; without it, the in-cluster config or the default kubeconfig.
    #[arg(long, env = "FERROLB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Also serve Services that have no loadBalancerClass.
    #[arg(long, env = "FERROLB_HANDLE_UNCLASSED", default_value_t = true, action = ArgAction::Set)]
    handle_unclassed: bool,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:9470")]
    metrics_addr: SocketAddr,
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Elect a leader among replicas on the ferrolb-allocator Lease; only the leader writes.
    #[arg(long, env = "FERROLB_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Namespace ferrolb is installed in: the leader Lease and the agents' per-node Leases.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::contracts::INSTALL_NAMESPACE)]
    lease_namespace: String,
    /// This replica's name in the leader Lease (default: POD_NAME, else the hostname).
    #[arg(long, env = "FERROLB_IDENTITY")]
    identity: Option<String>,
    /// Serve only the Services of this namespace (tests; one allocator per tenant).
    #[arg(long, env = "FERROLB_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Serve only the ServiceGroups matching this label selector.
    #[arg(long, env = "FERROLB_GROUP_SELECTOR")]
    group_selector: Option<String>,
}

fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ferrolb-allocator".into())
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
            Client::try_from(
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?,
            )?
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
        settings: Settings {
            handle_unclassed: flags.handle_unclassed,
        },
        leader_elect: flags.leader_elect,
        lease_namespace: flags.lease_namespace,
        identity: flags.identity.unwrap_or_else(identity),
        scope: Scope {
            namespace: flags.watch_namespace,
            group_selector: flags.group_selector,
        },
    };
    run(client, cfg, metrics).await?;
    Ok(())
}
