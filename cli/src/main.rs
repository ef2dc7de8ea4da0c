//! kubectl-ferrolb: a kubectl plugin for ferrolb.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrolb_cli::output::{Format, render};
use ferrolb_cli::version::{ClientVersion, VersionReport};
use ferrolb_cli::{check, fetch, locate, migrate, nodes, pools, status, yaml};

#[derive(Parser)]
#[command(
    name = "kubectl-ferrolb",
    version,
    about = "ferrolb: status, where addresses live, pools, nodes, version, checks and migration"
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
    /// Namespace ferrolb is installed in (the agents' per-node Leases, its Deployment and
    /// DaemonSet).
    #[arg(long, global = true, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::contracts::INSTALL_NAMESPACE)]
    ferrolb_namespace: String,
    /// Output format of where, pools, nodes, status and version: the same facts as a table,
    /// JSON or YAML.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Format,
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
    /// Problems first (ServiceGroups not Ready or full, Services without an address or whose
    /// address no node announces, agents not renewing their Lease), then a summary. Exit code:
    /// 0 no problems, 1 problems found, 2 the cluster could not be read.
    Status,
    /// This plugin's version, the API server's, and the allocator's and agent's images.
    Version {
        /// Only this plugin's version; do not contact the cluster.
        #[arg(long)]
        client: bool,
    },
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
        /// Exit with status 1 when anything could not be carried over as it was (the notes).
        #[arg(long)]
        strict: bool,
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
            read_cluster(&cli.conn, |client, format| async move {
                let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
                let cluster = fetch::cluster(&client, &ferrolb_ns).await?;
                if let Ok(address) = service.parse() {
                    let reports: Vec<_> = fetch::services_with_address(&client, address)
                        .await?
                        .iter()
                        .map(|svc| locate::explain(&cluster, svc))
                        .collect();
                    return Ok(render(format, &reports, |r| {
                        r.iter().map(locate::render).collect::<Vec<_>>().join("\n")
                    }));
                }
                let svc = fetch::service(&client, &ns, &service).await?;
                let report = locate::explain(&cluster, &svc);
                Ok(render(format, &report, locate::render))
            })
        }
        Command::Pools => read_cluster(&cli.conn, |client, format| async move {
            let report = pools::report(&fetch::cluster(&client, &ferrolb_ns).await?);
            Ok(render(format, &report, pools::render))
        }),
        Command::Nodes => read_cluster(&cli.conn, |client, format| async move {
            let rows = nodes::report(&fetch::cluster(&client, &ferrolb_ns).await?);
            Ok(render(format, &rows, |r| nodes::render(r)))
        }),
        Command::Status => status_command(&cli.conn),
        Command::Version { client } => version_command(&cli.conn, client),
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
        Command::Migrate { from, file, strict } => {
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
            if strict && !m.notes.is_empty() {
                eprintln!(
                    "{} note(s): not everything was carried over as it was (--strict)",
                    m.notes.len()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

/// Runs `f` with a client of the cluster on a runtime of its own.
fn with_client<F, Fut, T>(conn: &Connection, f: F) -> Result<T, String>
where
    F: FnOnce(kube::Client, Format) -> Fut,
    Fut: std::future::Future<Output = fetch::Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let client = fetch::client(conn.kubeconfig.as_deref(), conn.context.as_deref()).await?;
        f(client, conn.output).await
    })
    .map_err(|e| e.to_string())
}

/// `status`: 0 when healthy, 1 with problems, 2 when the cluster could not be read.
fn status_command(conn: &Connection) -> ExitCode {
    let ferrolb_ns = conn.ferrolb_namespace.clone();
    let result = with_client(conn, |client, _| async move {
        let cluster = fetch::cluster(&client, &ferrolb_ns).await?;
        let services = fetch::our_services(&client).await?;
        let failures = fetch::allocation_failures(&client).await?;
        Ok(status::report(&cluster, &services, &failures))
    });
    match result {
        Ok(report) => {
            print!("{}", render(conn.output, &report, status::render));
            if report.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// How long `version` waits for the cluster before it says it could not be reached.
const VERSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `version`: 0 with `--client` or when the cluster answered; 1 when it could not be reached.
fn version_command(conn: &Connection, client_only: bool) -> ExitCode {
    let mut report = VersionReport {
        client: ClientVersion::this_binary(),
        server: None,
        components: Vec::new(),
        errors: Vec::new(),
    };
    let mut reached = true;
    if !client_only {
        let ferrolb_ns = conn.ferrolb_namespace.clone();
        let result = with_client(conn, |client, _| async move {
            let timeout = |what: &str| fetch::Error::Timeout {
                what: what.to_string(),
                after: VERSION_TIMEOUT,
            };
            let server = tokio::time::timeout(VERSION_TIMEOUT, fetch::server_version(&client))
                .await
                .map_err(|_| timeout("reading the API server's version"))??;
            // The server answered: what cannot be read of the install is reported, not fatal.
            let components = tokio::time::timeout(
                VERSION_TIMEOUT,
                fetch::installed_components(&client, &ferrolb_ns),
            )
            .await
            .map_err(|_| timeout("listing ferrolb's workloads"))
            .and_then(|r| r);
            Ok((server, components))
        });
        match result {
            Ok((server, components)) => {
                report.server = Some(server);
                match components {
                    Ok(c) if c.is_empty() => report.errors.push(format!(
                        "no allocator Deployment or agent DaemonSet in {} (label {}): is ferrolb installed there? (--ferrolb-namespace)",
                        conn.ferrolb_namespace,
                        ferrolb_cli::version::COMPONENT_LABEL
                    )),
                    Ok(c) => report.components = c,
                    Err(e) => report.errors.push(format!("cannot read ferrolb's workloads: {e}")),
                }
            }
            Err(e) => {
                reached = false;
                report
                    .errors
                    .push(format!("the cluster could not be reached: {e}"));
            }
        }
    }
    print!(
        "{}",
        render(conn.output, &report, ferrolb_cli::version::render)
    );
    if conn.output == Format::Table {
        for e in &report.errors {
            eprintln!("{e}");
        }
    }
    if reached {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs a read-only command against the cluster and prints what it returns.
fn read_cluster<F, Fut>(conn: &Connection, f: F) -> ExitCode
where
    F: FnOnce(kube::Client, Format) -> Fut,
    Fut: std::future::Future<Output = fetch::Result<String>>,
{
    match with_client(conn, f) {
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
