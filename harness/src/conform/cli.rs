//! `session-harness conform`'s arguments, and the command itself: a report for
//! people on stdout, `--junit`/`--json` files, exit 1 on any failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::actors::gitlab::SessionInfo;

use super::soak::report::round_line;
use super::soak::{self, Event, Plan, Round, Until};
use super::{conform, Options, Progress, Runner};
use crate::catalogue;
use crate::report::{self, human, Outcome};
use crate::scenario::Dur;
use crate::shard::Shard;

/// Validate a runner over real sockets: the harness plays GitLab (coordinator,
/// Rails, Workhorse) and browsers; the runner polls it.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Scenario files or folders (default: all of scenarios/).
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose id (family/name) matches this glob.
    #[arg(long)]
    pub filter: Option<String>,
    /// Start the runner for each scenario with this shell command; `{config}` is
    /// replaced by the path of the config the harness wrote for it. Without it,
    /// the harness prints a config and waits for a runner started with it.
    #[arg(long, conflicts_with = "session_url")]
    pub runner_cmd: Option<String>,
    /// KEY=VALUE in the runner command's environment (repeatable).
    #[arg(long = "runner-env", value_parser = key_value, requires = "runner_cmd")]
    pub runner_env: Vec<(String, String)>,
    /// Write the runner's config.toml to this file (default: a temporary file).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Where the harness's GitLab listens (the runner's coordinator URL).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The runner's session server listen_address (default: 127.0.0.1, a free port).
    #[arg(long)]
    pub session_listen: Option<String>,
    /// The runner's advertise_address (default: its listen_address).
    #[arg(long)]
    pub session_advertise: Option<String>,
    /// Real seconds per scenario second; session_timeout 300 s becomes 3 s.
    #[arg(long, default_value_t = 0.01)]
    pub scale: f64,
    /// The least tolerance of an observed time (real processes take real time).
    #[arg(long, default_value = "500ms", value_parser = Dur::parse)]
    pub slack: Dur,
    /// How long the runner may take to ask for a scenario's jobs.
    #[arg(long, default_value = "60s", value_parser = Dur::parse)]
    pub wait_runner: Dur,
    /// Only the endpoint-level cases, against this session URL (a job request's `session.url`).
    #[arg(long, requires_all = ["authorization", "certificate"])]
    pub session_url: Option<String>,
    /// The session's token (`session.authorization`).
    #[arg(long, requires = "session_url")]
    pub authorization: Option<String>,
    /// A file with the session's certificate PEM (`session.certificate`).
    #[arg(long, requires = "session_url")]
    pub certificate: Option<PathBuf>,
    /// Skip the endpoint-level `pings` case, which waits up to 30 s for the
    /// runner's first Ping (WS-4): for quick runs.
    #[arg(long)]
    pub no_pings: bool,
    /// The image the jobs of docker scenarios run in (no services), which the
    /// runner's Docker Engine must have; without it those scenarios are skipped.
    #[arg(long)]
    pub job_image: Option<String>,
    /// The runner's Docker Engine runs containers through
    /// .ci/docker-delay-runtime (dockerd --add-runtime, as its default): the
    /// scenarios whose build container starts late or never
    /// (`container_start`) run, each job telling the engine how long to hold
    /// its container's start.
    #[arg(long, requires = "job_image")]
    pub engine_holds_starts: bool,
    /// Open terminals with a real browser, for the scenarios whose browser
    /// steps a page can perform (open through GitLab, type, close): headless
    /// Chromium's own WebSocket stack, as GitLab's frontend uses it.
    #[arg(long, value_enum)]
    pub browser: Option<BrowserKind>,
    /// Print every case and whether it would run or be skipped, and why;
    /// start nothing.
    #[arg(long)]
    pub list: bool,
    /// Also write the results as JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Only part K of N: the scenarios by id, round-robin, then the endpoint-level
    /// cases as one more part; `runner/job-request` runs in every shard. Default:
    /// GitLab CI's CI_NODE_INDEX/CI_NODE_TOTAL if set, else all.
    #[arg(long, value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Soak: N rounds of the cases against ONE runner (started once with
    /// --runner-cmd, or already running), reading its open fds and RSS after
    /// each round; fails on a case's failure or on growth.
    #[arg(long, conflicts_with_all = ["soak", "session_url"])]
    pub repeat: Option<usize>,
    /// Soak for this long (e.g. 30m): rounds as --repeat, until the time is up.
    #[arg(long, value_parser = Dur::parse, conflicts_with = "session_url")]
    pub soak: Option<Dur>,
    /// A soak's runner process, when the harness did not start it (--listen)
    /// or the command is not the runner's own binary; without it the figures
    /// are unknown.
    #[arg(long)]
    pub runner_pid: Option<u32>,
    /// A soak fails when the runner's RSS grows by more than this many MiB
    /// from the first round to the last.
    #[arg(long, default_value_t = super::soak::verdict::RSS_CEILING_MIB)]
    pub rss_ceiling: u64,
}

impl Args {
    /// The soak's plan, with --repeat or --soak.
    fn plan(&self) -> Option<Plan> {
        let until = match (self.repeat, self.soak) {
            (Some(rounds), _) => Until::Rounds(rounds.max(1)),
            (None, Some(wall)) => Until::Wall(wall.0),
            (None, None) => return None,
        };
        Some(Plan {
            until,
            runner_pid: self.runner_pid,
            rss_ceiling_mib: self.rss_ceiling,
        })
    }
}

/// The real browsers `--browser` can drive.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowserKind {
    /// Debian's `chromium` with `chromium-driver`.
    Chromium,
}

/// A `KEY=VALUE` argument (`--runner-env`).
pub(crate) fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{text:?}: use KEY=VALUE"))
}

/// The async runtime of a command that serves real sockets (`conform`,
/// `serve`); exit 2, said why, when it cannot start.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::from(2)
        })
}

/// Runs `conform`: 0 when nothing failed, 1 on any failure, 2 when it could not run.
pub fn run(args: Args) -> ExitCode {
    let options = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        print!("{}", super::catalogue(&options));
        return ExitCode::SUCCESS;
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    if let Some(plan) = args.plan() {
        return run_soak(&args, &options, &plan, runtime);
    }
    let report = runtime.block_on(conform(&options, &mut print));
    conclude(&args, report, runtime)
}

/// The soak: conform's lines for the profile and for failures, a line per
/// round, the verdict; exit 1 on a failure or growth.
fn run_soak(
    args: &Args,
    options: &Options,
    plan: &Plan,
    runtime: tokio::runtime::Runtime,
) -> ExitCode {
    let mut first: Option<Round> = None;
    let mut show = |event: Event<'_>| match event {
        Event::Conform(Progress::Case { case, index, total }) => {
            if case.failed() {
                print!("{}", human(case, index, total));
            }
        }
        Event::Conform(progress) => print(progress),
        Event::Watching(what) => println!("soak: {}; watching {what}", describe(&plan.until)),
        Event::Round(round) => {
            println!("{}", round_line(round, first.as_ref()));
            first.get_or_insert_with(|| round.clone());
        }
    };
    let report = runtime.block_on(soak::soak(options, plan, &mut show));
    conclude(args, report, runtime)
}

/// The end of a run or a soak: the summary, `--junit`/`--json`, the exit
/// code (2 when it could not run).
fn conclude(
    args: &Args,
    outcome: anyhow::Result<impl Outcome>,
    runtime: tokio::runtime::Runtime,
) -> ExitCode {
    // The runtime's tasks (connections of a runner already running) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(outcome) => report::conclude(&outcome, args.json.as_deref(), args.junit.as_deref()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn describe(until: &Until) -> String {
    match until {
        Until::Rounds(n) => format!("{n} rounds"),
        Until::Wall(wall) => format!("rounds for {:.0}s", wall.as_secs_f64()),
    }
}

fn print(progress: Progress<'_>) {
    match progress {
        Progress::Waiting {
            config,
            path,
            coordinator,
        } => println!(
            "Waiting for a runner: start it with this config.toml (written to {}); \
             the harness's GitLab is {coordinator}.\n\n{config}\n",
            path.display()
        ),
        Progress::Profile(profile) => println!("runner profile: {}", profile.line()),
        Progress::Case { case, index, total } => print!("{}", human(case, index, total)),
    }
}

fn options(args: &Args) -> anyhow::Result<Options> {
    anyhow::ensure!(
        args.scale > 0.0 && args.scale.is_finite(),
        "--scale {}: a factor above 0, e.g. 0.01",
        args.scale
    );
    let runner = match (&args.runner_cmd, &args.session_url) {
        // A soak keeps one runner for every round.
        (Some(command), _) if args.plan().is_some() => Runner::Kept {
            command: command.clone(),
            env: args.runner_env.clone(),
        },
        (Some(command), _) => Runner::Command {
            command: command.clone(),
            env: args.runner_env.clone(),
        },
        (None, Some(url)) => {
            let path = args.certificate.clone().unwrap_or_default();
            // Listing needs no session: only that there is one.
            let certificate = match args.list {
                true => String::new(),
                false => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("--certificate {}: {e}", path.display()))?,
            };
            Runner::Session(SessionInfo {
                url: url.trim_end_matches('/').to_string(),
                certificate,
                authorization: args.authorization.clone().unwrap_or_default(),
            })
        }
        (None, None) => Runner::Running,
    };
    let scenarios = match runner {
        Runner::Session(_) => Vec::new(),
        _ => scenarios(args)?,
    };
    // The endpoint-level cases are the last part of the run, after the scenarios.
    let shard = Shard::resolve(args.shard).map_err(anyhow::Error::msg)?;
    let endpoint = shard.has(scenarios.len() as u64);
    let scenarios = shard.select(scenarios);
    Ok(Options {
        runner,
        scenarios,
        listen: args.listen.clone(),
        session_listen: args.session_listen.clone(),
        session_advertise: args.session_advertise.clone(),
        config_path: args.write_config.clone(),
        scale: args.scale,
        slack: args.slack.0,
        wait_runner: args.wait_runner.0,
        pings: !args.no_pings,
        endpoint,
        job_image: args.job_image.clone(),
        engine_holds_starts: args.engine_holds_starts,
        browser: match args.browser {
            Some(BrowserKind::Chromium) if !args.list => {
                Some(crate::chromium::Programs::find().map_err(anyhow::Error::msg)?)
            }
            _ => None,
        },
    })
}

fn scenarios(args: &Args) -> anyhow::Result<Vec<crate::scenario::Scenario>> {
    let root = catalogue::root();
    let all = catalogue::discover(&root, &args.paths).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    let Some(glob) = &args.filter else {
        return Ok(all);
    };
    let matcher = globset::Glob::new(glob)
        .map_err(|e| anyhow::anyhow!("--filter {glob:?}: {e}"))?
        .compile_matcher();
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|s| matcher.is_match(&s.id))
        .collect();
    anyhow::ensure!(!chosen.is_empty(), "no scenario matches --filter {glob:?}");
    Ok(chosen)
}
