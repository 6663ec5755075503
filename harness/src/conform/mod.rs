//! `session-harness conform`: holds a third party's runner to the contract over
//! real sockets, the way h2spec holds an HTTP/2 server to its RFC.
//!
//! The harness plays GitLab for real: the coordinator API, Rails' authorization
//! and Workhorse are the simulation's own actors (`actors::{gitlab, workhorse}`) on
//! real sockets, and browsers (`actors::browser`) drive terminals over real TCP
//! and TLS. The runner under test polls the harness with a config.toml the
//! harness writes; it is either started by the harness for each scenario
//! (`--runner-cmd`) or already running with the printed config. Scenarios run in
//! real time with their durations scaled ([`scale`]); those that need what only
//! the simulation has are skipped with the reason ([`skip`]). Verdicts are on
//! what is observable (answers, output, closes, job state and log, times within
//! the scaled tolerance), allowing the reference's missing close frames (WS-6),
//! never on traces. Then the endpoint-level cases ([`endpoint`]) run on a
//! session of a job of their own; with only a session (`--session-url`), only
//! they run.
//!
//! Extension point: [`Runner::Command`] takes the command and its environment,
//! e.g. `session-server-faulty` (the impl with its test-only faults) and
//! `SESSION_SERVER_FAULTS=no-lock`, which must then fail exactly the cases
//! those faults break.

mod cause;
pub(crate) mod cli;
pub mod config;
mod drive;
pub mod endpoint;
pub mod front;
mod list;
pub mod page;
pub mod process;
pub mod report;
pub mod scale;
mod services;
pub mod skip;
pub mod soak;
mod suite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::actors::gitlab::SessionInfo;

pub use cli::{run, Args};
pub use list::catalogue;

use crate::report::{Case, Command, Report};
use crate::scenario::Scenario;

/// What to test and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub runner: Runner,
    /// The scenarios to run (none with [`Runner::Session`]).
    pub scenarios: Vec<Scenario>,
    /// Where the harness's GitLab listens (port 0: any free port).
    pub listen: String,
    /// The runner's session server in its config; `None`: 127.0.0.1 on a free port.
    pub session_listen: Option<String>,
    /// What the runner advertises; `None`: its listen address.
    pub session_advertise: Option<String>,
    /// Where the config goes; `None`: a temporary file.
    pub config_path: Option<PathBuf>,
    /// Real seconds per scenario second (adjusted per scenario: see [`scale`]).
    pub scale: f64,
    /// The least tolerance of an observed time: real processes take real time.
    pub slack: Duration,
    /// How long the runner may take to ask for a scenario's jobs.
    pub wait_runner: Duration,
    /// Run the endpoint-level `pings` case (it waits up to 30 s).
    pub pings: bool,
    /// Run the endpoint-level cases (a shard may leave them to another).
    pub endpoint: bool,
    /// Docker scenarios: the image their jobs run in, which the runner's
    /// Docker Engine has; `None`: they are skipped.
    pub job_image: Option<String>,
    /// The runner's Docker Engine runs containers through
    /// `.ci/docker-delay-runtime`, which holds a container's start as its
    /// `SESSION_HARNESS_CONTAINER_START` variable says: the scenarios with a
    /// `container_start` run, their jobs carrying it; `false`: skipped.
    pub engine_holds_starts: bool,
    /// Real Chromium as the browsers of the scenarios a page can play
    /// (`--browser chromium`, [`page`]); `None`: the harness's socket browsers.
    pub browser: Option<crate::chromium::Programs>,
}

/// The runner under test.
#[derive(Clone, Debug)]
pub enum Runner {
    /// Started for each scenario with `sh -c`; `{config}` in the command is the
    /// config's path. Stopped with SIGTERM after it.
    Command {
        command: String,
        env: Vec<(String, String)>,
    },
    /// Started once with `sh -c` and the config the harness writes (one
    /// config for every case, as with [`Runner::Running`]), kept for the
    /// whole run and stopped with SIGTERM at its end: a soak's one runner.
    Kept {
        command: String,
        env: Vec<(String, String)>,
    },
    /// Already running with the config the harness prints.
    Running,
    /// Only a session, as a job request carries it: the endpoint-level cases.
    Session(SessionInfo),
}

/// What a run tells as it goes.
pub enum Progress<'a> {
    /// Start the runner with this config now (a runner already running).
    Waiting {
        config: &'a str,
        path: &'a Path,
        coordinator: &'a str,
    },
    /// What the runner said about itself in its first job request.
    Profile(&'a crate::actors::gitlab::profile::Profile),
    Case {
        case: &'a Case,
        index: usize,
        total: usize,
    },
}

/// Runs every case. `Err`: the run could not start (e.g. the port is taken).
pub async fn conform(
    options: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let endpoints = if options.endpoint { endpoint::COUNT } else { 0 };
    let (runner, total) = match &options.runner {
        Runner::Command { command, .. } => (
            format!("`{command}`, started for each scenario"),
            1 + options.scenarios.len() + endpoints,
        ),
        Runner::Kept { command, .. } => (
            format!("`{command}`, started once for every case"),
            1 + options.scenarios.len() + endpoints,
        ),
        Runner::Running => (
            "a runner already running with the printed config".to_string(),
            1 + options.scenarios.len() + endpoints,
        ),
        Runner::Session(session) => {
            // The id is half of what opens a terminal: it stays out of reports.
            let at = session.url.rsplit_once('/').map_or("", |(base, _)| base);
            (format!("the session at {at}/…"), endpoints)
        }
    };
    let mut sink = Sink {
        progress,
        cases: Vec::new(),
        total,
    };
    let settings = endpoint::Settings {
        pings: options.pings,
        slack: options.slack,
    };
    let profile = match &options.runner {
        Runner::Session(_) if !options.endpoint => None,
        Runner::Session(session) => {
            let target =
                endpoint::Target::new(session.clone(), settings).map_err(anyhow::Error::msg)?;
            endpoint::run(&target, &mut |case| sink.case(case)).await;
            None
        }
        Runner::Command { .. } | Runner::Kept { .. } | Runner::Running => {
            let mut suite = suite::Suite::start(options, &mut sink).await?;
            for scenario in &options.scenarios {
                suite.scenario(scenario).await;
            }
            if options.endpoint {
                suite.endpoint().await;
            }
            suite.finish().await;
            suite.profile.take()
        }
    };
    Ok(report::report(
        Command::Conform,
        runner,
        profile,
        options.scale,
        sink.cases,
        started.elapsed(),
    ))
}

/// Where results go as they come.
struct Sink<'p> {
    progress: &'p mut dyn FnMut(Progress<'_>),
    cases: Vec<Case>,
    total: usize,
}

impl Sink<'_> {
    fn case(&mut self, case: Case) {
        (self.progress)(Progress::Case {
            case: &case,
            index: self.cases.len() + 1,
            total: self.total,
        });
        self.cases.push(case);
    }
}
