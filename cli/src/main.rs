//! kubectl-ferrolb: a kubectl plugin for ferrolb.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrolb_cli::{check, fetch, locate, migrate, nodes, pools, yaml};

#[derive(Parser)]
#[command(
    name = "kubectl-ferrolb",
    version,
    about = "ferrolb: where addresses live, pools, checks and migration"
)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the API server (the commands that read the cluster).
#[derive(Args)]
struct Connection {
    /// Kubeconfig file; without it KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, global = true, env = "FERROLB_KUBECONFIG")]
    kubeconfig: Option<String>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace ferrolb is installed in (where the agents' per-node Leases are).
    #[arg(long, global = true, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::contracts::INSTALL_NAMESPACE)]
    ferrolb_namespace: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Where each address of a Service is: the holder node and interface (local) or the nodes
    /// carrying it (virtual), and why every other node is not a candidate.
    Where {
        /// The Service's name, or an address (`203.0.113.7`): then every Service, in any
        /// namespace, that shows it.
        service: String,
        /// The Service's namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Per ServiceGroup and family: pools, allocated of capacity, conditions.
    Pools,
    /// Per node: agent alive, local interfaces and subnets, eligible, what it holds.
    Nodes,
    /// Check ServiceGroup and LBNodeAgent YAML offline with the same rules as the API server
    /// and the allocator.
    Check {
        /// Files to check (`-` for standard input).
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Convert MetalLB or PureLB objects to ferrolb objects (YAML on stdout, notes on stderr).
    Migrate {
        #[arg(long, value_enum)]
        from: From,
        /// File to convert (`-` for standard input).
        file: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum From {
    Metallb,
    Purelb,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ferrolb_ns = cli.conn.ferrolb_namespace.clone();
    match cli.command {
        Command::Where { service, namespace } => {
            read_cluster(&cli.conn, |client, conn| async move {
                let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
                let cluster = fetch::cluster(&client, &ferrolb_ns).await?;
                if let Ok(address) = service.parse() {
                    let reports: Vec<_> = fetch::services_with_address(&client, address)
                        .await?
                        .iter()
                        .map(|svc| locate::explain(&cluster, svc))
                        .collect();
                    return Ok(match conn {
                        Output::Json => json(&reports),
                        Output::Text => reports
                            .iter()
                            .map(locate::render)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    });
                }
                let svc = fetch::service(&client, &ns, &service).await?;
                let report = locate::explain(&cluster, &svc);
                Ok(match conn {
                    Output::Json => json(&report),
                    Output::Text => locate::render(&report),
                })
            })
        }
        Command::Pools => read_cluster(&cli.conn, |client, conn| async move {
            let report = pools::report(&fetch::cluster(&client, &ferrolb_ns).await?);
            Ok(match conn {
                Output::Json => json(&report),
                Output::Text => pools::render(&report),
            })
        }),
        Command::Nodes => read_cluster(&cli.conn, |client, conn| async move {
            let rows = nodes::report(&fetch::cluster(&client, &ferrolb_ns).await?);
            Ok(match conn {
                Output::Json => json(&rows),
                Output::Text => nodes::render(&rows),
            })
        }),
        Command::Check { files } => {
            let mut objects = Vec::new();
            for f in &files {
                match yaml::read(f).and_then(|t| yaml::documents(f, &t)) {
                    Ok(docs) => objects.extend(docs),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let report = check::check(&objects);
            for line in &report.lines {
                println!("{line}");
            }
            if report.problems > 0 {
                eprintln!("{} problem(s) found", report.problems);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Migrate { from, file } => {
            let objects = match yaml::read(&file).and_then(|t| yaml::documents(&file, &t)) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let source = match from {
                From::Metallb => migrate::Source::MetalLb,
                From::Purelb => migrate::Source::PureLb,
            };
            let m = migrate::migrate(source, &objects);
            print!("{}", yaml::to_stream(&m.objects));
            for note in &m.notes {
                eprintln!("note: {note}");
            }
            ExitCode::SUCCESS
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("reports always serialize") + "\n"
}

/// Runs a read-only command against the cluster and prints what it returns.
fn read_cluster<F, Fut>(conn: &Connection, f: F) -> ExitCode
where
    F: FnOnce(kube::Client, Output) -> Fut,
    Fut: std::future::Future<Output = fetch::Result<String>>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let client = fetch::client(conn.kubeconfig.as_deref(), conn.context.as_deref()).await?;
        f(client, conn.output).await
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
