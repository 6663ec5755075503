//! The runner `serve` hands its jobs to: this project's in-process, a command
//! the harness starts, or one already running with the printed config.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use session_server::config::Config;
use session_server::machine::os::OsMachine;
use session_server::net::TokioNet;
use session_server::rng::Rng;
use session_server::runner::{Runner, RunnerParts, StopMode};

use crate::conform::config::{self, SessionAddress};
use crate::conform::process::{RunnerProcess, STOP_GRACE};
use crate::scenario::Scenario;

/// session_timeout when the scenario sets none: the runner's default (CFG-3).
const DEFAULT_SESSION_TIMEOUT: i64 = 1800;

#[derive(Clone, Debug)]
pub enum RunnerChoice {
    /// This project's runner, in this process, on real sockets.
    InProcess,
    /// `sh -c <command>` with `{config}` replaced by the config's path.
    Command {
        command: String,
        env: Vec<(String, String)>,
    },
    /// A runner already running: the config is written here (or printed).
    Running { write_config: Option<PathBuf> },
}

/// The runner as started.
pub enum Started {
    InProcess {
        runner: Runner,
        /// Its jobs' and terminals' HOME, removed at the end.
        home: PrivateHome,
    },
    Command {
        process: RunnerProcess,
        config: ConfigPath,
    },
    Running {
        config: String,
    },
}

impl Started {
    /// The config a runner already running must be started with, if that is the choice.
    pub fn config_to_print(&self) -> Option<&str> {
        match self {
            Started::Running { config } => Some(config),
            _ => None,
        }
    }

    /// Aborts its jobs and terminals (LC-4) and stops it.
    pub async fn stop(self) {
        match self {
            Started::InProcess { runner, home } => {
                runner.stop(StopMode::Abort).await;
                drop(home);
            }
            Started::Command { process, config } => {
                let _ = process.stop(STOP_GRACE).await;
                drop(config);
            }
            Started::Running { .. } => {}
        }
    }
}

/// The config.toml of a runner that polls `coordinator`: the scenario's
/// executor and session_timeout, a session server on a free local port; a
/// docker runner's default image is `job_image`.
pub fn config_toml(
    scenario: &Scenario,
    coordinator: &str,
    job_image: Option<&str>,
) -> anyhow::Result<String> {
    let session = SessionAddress::choose(None, None)?;
    let timeout = scenario
        .runner
        .session_timeout
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_SESSION_TIMEOUT);
    Ok(config::config_toml(
        &scenario.runner,
        timeout as u64,
        coordinator,
        &session,
        job_image,
        "serve",
    ))
}

pub async fn start(options: &super::Options, coordinator: &str) -> anyhow::Result<Started> {
    let toml = config_toml(&options.scenario, coordinator, options.job_image.as_deref())?;
    match &options.runner {
        RunnerChoice::InProcess => {
            let config = Config::parse(&toml).context("the runner's config")?;
            let home = PrivateHome::create()?;
            // The demo's terminals read no dotfiles of this machine's user:
            // they would change what the pages show (and some stall a shell).
            let machine = OsMachine {
                home: Some(home.0.clone()),
                ..OsMachine::default()
            };
            let runner = Runner::start(RunnerParts::new(
                config,
                TokioNet,
                Arc::new(machine),
                Rng::from_os(),
            ))
            .await?;
            Ok(Started::InProcess { runner, home })
        }
        RunnerChoice::Command { command, env } => {
            let config = ConfigPath::temporary(&toml)?;
            let process = RunnerProcess::start(command, &config.0, env)?;
            Ok(Started::Command { process, config })
        }
        RunnerChoice::Running { write_config } => {
            if let Some(path) = write_config {
                config::write(path, &toml)?;
            }
            Ok(Started::Running { config: toml })
        }
    }
}

/// A directory of its own, removed when dropped.
pub struct PrivateHome(PathBuf);

impl PrivateHome {
    fn create() -> anyhow::Result<Self> {
        let path = unique_temp("home");
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the runner's HOME {}", path.display()))?;
        Ok(PrivateHome(path))
    }
}

impl Drop for PrivateHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config file written for a runner command, removed when dropped.
pub struct ConfigPath(PathBuf);

impl ConfigPath {
    fn temporary(toml: &str) -> anyhow::Result<Self> {
        let path = unique_temp("config.toml");
        config::write(&path, toml)?;
        Ok(ConfigPath(path))
    }
}

impl Drop for ConfigPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unique_temp(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "session-harness-serve-{}-{n}-{what}",
        std::process::id()
    ))
}
