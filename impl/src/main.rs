//! `session-server run --config config.toml`: the runner side for real.
//!
//! The same file is the `session-server-faulty` binary of the package
//! `impl/faulty`, whose library is this crate's with its test-only faults
//! compiled in (see ARCHITECTURE.md, "Faults and models never ship").

// Under its own name there; `session_server` below names whichever library this is.
#[cfg(feature = "fault-injection")]
extern crate session_server_faulty as session_server;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use session_server::config::Config;
use session_server::machine::os::OsMachine;
use session_server::net::TokioNet;
use session_server::rng::Rng;
use session_server::runner::{Runner, RunnerParts, StopMode};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(version, about = "The runner side of GitLab interactive web terminals")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask the coordinator for jobs, run them, and serve their terminals.
    Run {
        /// A GitLab Runner style config.toml.
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Check a config.toml and print what it means.
    Verify {
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { config } => {
            let config = Config::from_file(&config)?;
            println!("{config:#?}");
            Ok(())
        }
        Command::Run { config } => {
            let config = Config::from_file(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(config))
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let parts = RunnerParts::new(
        config,
        TokioNet,
        Arc::new(OsMachine::default()),
        Rng::from_os(),
    );
    let runner = Runner::start(parts).await?;
    if let Some(addr) = runner.session_address() {
        tracing::info!(%addr, "session server bound");
    }
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut quit = signal(SignalKind::quit()).context("installing the SIGQUIT handler")?;
    let mode = tokio::select! {
        biased;
        _ = interrupt.recv() => StopMode::Abort,
        _ = terminate.recv() => StopMode::Abort,
        _ = quit.recv() => StopMode::Graceful,
    };
    tracing::info!(?mode, "stopping");
    runner.stop(mode).await;
    tracing::info!("stopped");
    Ok(())
}
