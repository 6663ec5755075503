//! `conform --repeat N` / `--soak <duration>`: the cases again and again
//! against ONE runner, the way a third party finds a leak before their users
//! do. Each round runs the selected scenarios that one runner with one
//! config can play and the endpoint-level cases; after it, once the runner
//! has settled ([`sample::settled`]), its open descriptors and RSS are read
//! from `/proc`. The end says whether they grew ([`verdict`]).
//!
//! The runner is started once (`--runner-cmd`, as [`Runner::Kept`]) or is
//! already running (`--listen`); its pid is the command's own when the
//! command is a single program, else `--runner-pid`; without one the figures
//! are unknown and the report says so.

pub mod report;
pub mod sample;
pub mod verdict;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::suite::Suite;
use super::{endpoint, Options, Progress, Runner, Sink};
use crate::report::{Case, Command, Status};
use report::SoakReport;
use sample::Sample;
use verdict::Growth;

/// How long a soak goes on.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// This many rounds.
    Rounds(usize),
    /// Rounds until this much wall time has passed (a round that started
    /// before it runs to its end).
    Wall(Duration),
}

/// A soak's own settings, beside conform's [`Options`].
#[derive(Clone, Debug)]
pub struct Plan {
    pub until: Until,
    /// The runner's pid when the harness does not know it (`--runner-pid`).
    pub runner_pid: Option<u32>,
    /// The ceiling on RSS growth, MiB ([`verdict::RSS_CEILING_MIB`]).
    pub rss_ceiling_mib: u64,
}

/// One round's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Round {
    /// From 1.
    pub round: usize,
    /// Since the soak started, when the round's figures were read.
    #[serde(with = "crate::duration::seconds")]
    pub at: Duration,
    /// The round's cases, without the wait for the runner to settle.
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
    pub passed: usize,
    pub skipped: usize,
    /// The cases that failed, with the rules they check.
    pub failed: Vec<FailedCase>,
    /// The runner's figures after the round; `None`: unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailedCase {
    pub id: String,
    pub spec: Vec<String>,
}

/// What a soak tells as it goes.
pub enum Event<'a> {
    /// A conform event; a case's index and total are within its round.
    Conform(Progress<'a>),
    /// Whose figures the rounds show, or why none.
    Watching(&'a str),
    Round(&'a Round),
}

/// Runs the soak. `Err`: it could not start (e.g. the port is taken).
pub async fn soak(
    options: &Options,
    plan: &Plan,
    events: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        !matches!(options.runner, Runner::Session(_) | Runner::Command { .. }),
        "a soak needs one runner for every round: started once (Runner::Kept) or already running"
    );
    let started = Instant::now();
    let per_round = options.scenarios.len() + if options.endpoint { endpoint::COUNT } else { 0 };
    let events = RefCell::new(events);
    // Cases reported before the current round (the runner's profile first).
    let before = Cell::new(0usize);
    let mut forward = |progress: Progress<'_>| {
        let progress = match progress {
            Progress::Case { case, index, .. } if index > before.get() => Progress::Case {
                case,
                index: index - before.get(),
                total: per_round,
            },
            other => other,
        };
        (events.borrow_mut())(Event::Conform(progress));
    };
    let mut sink = Sink {
        progress: &mut forward,
        cases: Vec::new(),
        total: 1,
    };
    let mut suite = Suite::start(options, &mut sink).await?;
    let mut watched = Watched::choose(options, plan, &suite);
    (events.borrow_mut())(Event::Watching(&watched.describe()));
    let mut rounds: Vec<Round> = Vec::new();
    // Where each round's cases start.
    let mut starts: Vec<usize> = Vec::new();
    let mut stopped_early = None;
    for number in 1.. {
        let first = suite.cases().len();
        starts.push(first);
        before.set(first);
        let round_started = Instant::now();
        for scenario in &options.scenarios {
            suite.scenario(scenario).await;
        }
        if options.endpoint {
            suite.endpoint().await;
        }
        let wall = round_started.elapsed();
        let baseline = rounds.first().and_then(|r| r.sample).map(|s| s.fds);
        let sample = watched.sample(baseline).await;
        let round = Round::of(
            number,
            &suite.cases()[first..],
            sample,
            started.elapsed(),
            wall,
        );
        (events.borrow_mut())(Event::Round(&round));
        rounds.push(round);
        if let Some(status) = suite.kept().and_then(super::process::RunnerProcess::exited) {
            stopped_early = Some(format!(
                "the runner exited ({status}) during round {number}"
            ));
            break;
        }
        let done = match plan.until {
            Until::Rounds(n) => number >= n,
            Until::Wall(wall) => started.elapsed() >= wall,
        };
        if done {
            break;
        }
    }
    suite.finish().await;
    drop(suite);
    let runner = match &options.runner {
        Runner::Kept { command, .. } => format!("`{command}`, started once for every round"),
        _ => "a runner already running with the printed config".to_string(),
    };
    let samples: Vec<Sample> = rounds.iter().filter_map(|r| r.sample).collect();
    let growth = Growth::of(&samples, plan.rss_ceiling_mib);
    let unjudged = match (&growth, watched.unknown()) {
        (Some(_), _) => None,
        (None, Some(why)) => Some(format!("fds and RSS unknown: {why}")),
        (None, None) => Some(
            "one round: no growth to judge (the first round is the baseline; run 2 or more)"
                .to_string(),
        ),
    };
    let mut cases = sink.cases;
    for (number, &start) in starts.iter().enumerate() {
        for case in cases.iter_mut().skip(start) {
            case.round = Some(number + 1);
        }
    }
    cases.extend(report::growth_cases(growth.as_ref(), unjudged.as_deref()));
    let wall = started.elapsed();
    Ok(SoakReport {
        report: super::report::report(Command::Soak, runner, None, options.scale, cases, wall),
        watched: watched.describe(),
        rounds,
        growth,
        unjudged,
        stopped_early,
    })
}

impl Round {
    fn of(
        round: usize,
        cases: &[Case],
        sample: Option<Sample>,
        at: Duration,
        wall: Duration,
    ) -> Round {
        let count = |wanted: &[Status]| cases.iter().filter(|c| wanted.contains(&c.status)).count();
        Round {
            round,
            at,
            wall,
            passed: count(&[Status::Passed, Status::PassedNonStrict]),
            skipped: count(&[Status::Skipped]),
            failed: cases
                .iter()
                .filter(|c| c.failed())
                .map(|c| FailedCase {
                    id: c.id.clone(),
                    spec: c.spec.clone(),
                })
                .collect(),
            sample,
        }
    }
}

/// The process whose figures a soak reads, or why there is none.
enum Watched {
    Process { pid: u32, name: Option<String> },
    Unknown(String),
}

impl Watched {
    fn choose(options: &Options, plan: &Plan, suite: &Suite<'_, '_>) -> Watched {
        let pid = match (plan.runner_pid, suite.kept(), &options.runner) {
            (Some(pid), _, _) => pid,
            (None, Some(kept), _) => match kept.pid() {
                Some(pid) => pid,
                None => {
                    return Watched::Unknown(
                        "the runner command is not a single program (a shell runs it, and the \
                         runner is one of its children): make the command the runner's own \
                         binary, or give its pid with --runner-pid"
                            .into(),
                    )
                }
            },
            (None, None, _) => {
                return Watched::Unknown(
                    "the runner was already running and its pid is not known: give it with \
                     --runner-pid (on the runner's machine)"
                        .into(),
                )
            }
        };
        match sample::read(pid) {
            Ok(_) => Watched::Process { pid, name: None },
            Err(e) => Watched::Unknown(format!("cannot read /proc/{pid}: {e}")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Watched::Process {
                pid,
                name: Some(name),
            } => format!("pid {pid} ({name})"),
            Watched::Process { pid, name: None } => format!("pid {pid}"),
            Watched::Unknown(why) => format!("fds and RSS unknown: {why}"),
        }
    }

    fn unknown(&self) -> Option<&str> {
        match self {
            Watched::Unknown(why) => Some(why),
            Watched::Process { .. } => None,
        }
    }

    /// The figures once the runner settled; a process that cannot be read
    /// any more (it exited) makes them unknown from then on.
    async fn sample(&mut self, baseline: Option<u64>) -> Option<Sample> {
        let Watched::Process { pid, name } = self else {
            return None;
        };
        let pid = *pid;
        // Its name once it runs (a command is `sh` until it `exec`s).
        if name.is_none() {
            *name = sample::name(pid);
        }
        match sample::settled(pid, baseline).await {
            Ok(sample) => Some(sample),
            Err(e) => {
                *self = Watched::Unknown(format!("cannot read /proc/{pid} any more: {e}"));
                None
            }
        }
    }
}
