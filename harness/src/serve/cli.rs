//! `session-harness serve`'s arguments, and the command itself: serves until
//! Ctrl-C or SIGTERM, then stops the runner (its terminals are closed).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{demo_scenario, start, Options, RunnerChoice};
use crate::conform::cli::{key_value, runtime};
use crate::scenario::load;

/// The world's GitLab on a real port with its pages: the job list, job pages
/// with the Debug button, terminal pages (xterm.js), for a real browser.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// A scenario file whose users, projects, jobs and runner to serve
    /// (default: a built-in demo with alice, bob and carol).
    pub scenario: Option<PathBuf>,
    /// Where the pages, the coordinator API and Workhorse listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Serve HTTPS (terminals over wss://) with a fresh self-signed
    /// certificate; the browser will ask you to accept it.
    #[arg(long)]
    pub tls: bool,
    /// Start this runner instead of the built-in one; `{config}` is replaced
    /// by the path of the config the harness wrote (as `conform --runner-cmd`).
    #[arg(long, conflicts_with = "external")]
    pub runner_cmd: Option<String>,
    /// KEY=VALUE in the runner command's environment (repeatable).
    #[arg(long = "runner-env", value_parser = key_value, requires = "runner_cmd")]
    pub runner_env: Vec<(String, String)>,
    /// A runner already running: print its config.toml (and write it to
    /// --write-config) and wait for it to ask for jobs.
    #[arg(long)]
    pub external: bool,
    /// With --external: also write the config here.
    #[arg(long, requires = "external")]
    pub write_config: Option<PathBuf>,
    /// With a docker runner: the image its jobs run in (no services), which
    /// its Docker Engine must have, e.g. `session-harness/busybox:test` from
    /// `.ci/docker-test-image` (as `conform --job-image`).
    #[arg(long)]
    pub job_image: Option<String>,
}

/// 0 after Ctrl-C; 2 when it could not start.
pub fn run(args: Args) -> ExitCode {
    let scenario = match &args.scenario {
        None => demo_scenario(),
        Some(path) => match load(path, path.parent().unwrap_or(path)) {
            Ok(scenario) => scenario,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let runner = match (&args.runner_cmd, args.external) {
        (Some(command), _) => RunnerChoice::Command {
            command: command.clone(),
            env: args.runner_env.clone(),
        },
        (None, true) => RunnerChoice::Running {
            write_config: args.write_config.clone(),
        },
        (None, false) => RunnerChoice::InProcess,
    };
    let options = Options {
        scenario,
        listen: args.listen.clone(),
        tls: args.tls,
        runner,
        job_image: args.job_image.clone(),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let code = runtime.block_on(async {
        let served = match start(&options).await {
            Ok(served) => served,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        };
        if let Some(config) = served.runner.config_to_print() {
            println!("Start the runner with this config.toml:\n\n{config}");
        }
        println!("GitLab (jobs, Debug, terminals): {}/", served.origin());
        for (name, role) in served.gitlab.users() {
            println!(
                "  log in as {name} ({role:?}): {}/-/login?user={name}",
                served.origin()
            );
        }
        println!("Ctrl-C stops it (and the runner, with its terminals).");
        // SIGTERM too: a runner started with --runner-cmd must not outlive `serve`.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => drop(tokio::signal::ctrl_c().await),
        }
        served.stop().await;
        ExitCode::SUCCESS
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
