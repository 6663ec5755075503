//! `session-harness`: run the scenario catalogue, list it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use session_harness::{catalogue, report, run};

#[derive(Parser)]
#[command(
    version,
    about = "Simulation and conformance harness for GitLab Runner interactive web terminals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios in simulation against the built-in runner.
    Run {
        /// Scenario files or folders (default: all of scenarios/).
        paths: Vec<PathBuf>,
        /// Only scenarios whose id (family/name) matches this glob.
        #[arg(long)]
        filter: Option<String>,
        /// Run with this seed instead of each scenario's own (no snapshot comparison).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Write snapshots instead of comparing them (then read them before committing).
        #[arg(long)]
        update: bool,
    },
    /// Print the catalogue: each scenario with its SPEC ids and what a user sees.
    List {
        paths: Vec<PathBuf>,
        #[arg(long)]
        filter: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
    Junit,
}

fn main() -> ExitCode {
    // RUST_LOG=debug shows what the runner under test logs, for debugging a scenario.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = Cli::parse();
    let root = catalogue::root();
    let (paths, filter) = match &cli.command {
        Command::Run { paths, filter, .. } | Command::List { paths, filter } => (paths, filter),
    };
    let scenarios = match catalogue::discover(&root, paths) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let scenarios = match filter {
        None => scenarios,
        Some(glob) => match globset::Glob::new(glob) {
            Ok(g) => {
                let matcher = g.compile_matcher();
                scenarios
                    .into_iter()
                    .filter(|s| matcher.is_match(&s.id))
                    .collect()
            }
            Err(e) => {
                eprintln!("error: --filter {glob:?}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if scenarios.is_empty() {
        eprintln!("error: no scenario matches");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::List { .. } => {
            for s in &scenarios {
                println!(
                    "{:<44} {}\n    {}\n    user sees: {}",
                    s.id,
                    s.spec.join(" "),
                    s.title,
                    s.user_sees
                );
            }
            println!("{} scenarios", scenarios.len());
            ExitCode::SUCCESS
        }
        Command::Run {
            seed,
            format,
            update,
            ..
        } => {
            let started = Instant::now();
            let mut results = Vec::new();
            for (i, scenario) in scenarios.iter().enumerate() {
                let result = run::run(&root, scenario, seed, update);
                if matches!(format, Format::Human) {
                    print!("{}", report::human(&result, i + 1, scenarios.len()));
                }
                results.push(result);
            }
            match format {
                Format::Human => print!("{}", report::summary(&results, started.elapsed())),
                Format::Json => println!("{}", report::json(&results)),
                Format::Junit => print!("{}", report::junit("session-harness", &results)),
            }
            if results.iter().all(|r| r.passed()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
