//! kubectl-ferrolb: a kubectl plugin for ferrolb.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferrolb_cli::{check, migrate, yaml};

#[derive(Parser)]
#[command(
    name = "kubectl-ferrolb",
    version,
    about = "ferrolb: where addresses live, pools, checks and migration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    match Cli::parse().command {
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
