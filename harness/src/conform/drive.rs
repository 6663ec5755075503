//! One scenario on the wall clock: GitLab queues its jobs, the runner under
//! test takes them, and from that moment (time zero, as at the start of a
//! simulation) browsers and the operator act at the scenario's (scaled) times.
//!
//! The timeline engine (`timeline`) plays it, as it does in a simulated
//! world; this is its ground on the wall clock: the runner process's signals,
//! no network faults, and browsers that wait for a real shell before typing.

use std::sync::Arc;
use std::time::Duration;

use session_server::net::TokioNet;
use tokio::sync::watch;
use tokio::time::Instant;

use super::page::{self, PageBrowser, Pages};
use super::process::{RunnerProcess, Signal};
use crate::actors::browser::Browser;
use crate::actors::gitlab::{Gitlab, JobStatus};
use crate::scenario::{browser_plans, Action, BrowserPlan, Scenario, StopMode};
use crate::timeline::{self, Ground, NotHere, Pace, Progress};
use crate::trace::{Event, Injected, Recorder, What};

/// How often the driver looks at GitLab's state.
const LOOK: Duration = Duration::from_millis(20);
/// The longest a browser waits for its terminal's first output (its shell's
/// prompt) before it types: a login shell that starts slowly is judged on what
/// it does once it is there. The wait shifts the browser's later steps.
pub const FIRST_OUTPUT: Duration = Duration::from_secs(20);

/// What the scenario needs around it.
pub struct Stage<'a> {
    pub gitlab: &'a Gitlab,
    pub recorder: &'a Recorder,
    /// `host:port` of Workhorse, for browsers.
    pub entry: String,
    /// The runner, when the harness started it (for signals and its exit).
    pub runner: Option<&'a RunnerProcess>,
    /// How long the runner may take to take the scenario's jobs.
    pub wait: Duration,
    /// Said when it does not: how to make it.
    pub hint: &'a str,
    /// How long to keep watching after everything settled.
    pub settle: Duration,
    /// Real Chromium (`--browser chromium`): the scenario's browsers are its
    /// pages when a page can play them ([`page::can_play`]).
    pub pages: Option<Arc<Pages>>,
}

/// Runs `scenario` (already in real time); the events it observed, with times
/// from the moment the runner took its jobs. `Err`: it could not run.
pub async fn drive(scenario: &Scenario, stage: &Stage<'_>) -> Result<Vec<Event>, String> {
    let zero = jobs_taken(scenario, stage).await?;
    // The steps count from when the runner took the jobs, a moment ago.
    let start = Instant::now() - stage.recorder.now().saturating_sub(zero);
    let (over_tx, over) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let pages = stage.pages.clone().filter(|_| page::can_play(scenario));
    let mut tasks = Vec::new();
    for BrowserPlan { name, user, steps } in browser_plans(scenario) {
        progress.busy(&name, true);
        let pace = WallPace {
            name: name.clone(),
            recorder: stage.recorder.clone(),
            start,
            shift: Duration::ZERO,
        };
        let (entry, progress, over) = (stage.entry.clone(), progress.clone(), over.clone());
        let recorder = stage.recorder.clone();
        tasks.push(match &pages {
            Some(pages) => {
                let browser = PageBrowser::new(&name, user, pages.clone(), recorder);
                tokio::spawn(async move {
                    timeline::browse(browser, steps, &entry, pace, &progress, over).await;
                })
            }
            None => {
                let browser = Browser::new(&name, user, TokioNet, stage.gitlab.clone(), recorder);
                tokio::spawn(async move {
                    timeline::browse(browser, steps, &entry, pace, &progress, over).await;
                })
            }
        });
    }
    let mut ground = WallGround {
        start,
        stage,
        signalled: false,
        over_at: None,
    };
    let outcome = timeline::run(scenario, &mut ground, stage.gitlab, &progress).await;
    over_tx.send_replace(true);
    for task in tasks {
        task.abort();
    }
    outcome?;
    let events = stage
        .recorder
        .events()
        .into_iter()
        .map(|mut e| {
            e.at_ms = e.at_ms.saturating_sub(zero_ms(zero));
            e
        })
        .collect();
    Ok(events)
}

/// The real world under the timeline: the wall clock, the runner process's
/// signals, and a network the harness cannot cut.
struct WallGround<'s, 'a> {
    /// The scenario's zero.
    start: Instant,
    stage: &'s Stage<'a>,
    /// The operator has stopped the runner: its exit is expected.
    signalled: bool,
    /// When the settle time ends.
    over_at: Option<Instant>,
}

impl Ground for WallGround<'_, '_> {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn check_every(&self) -> Duration {
        LOOK
    }

    fn signal(&mut self, mode: StopMode) {
        self.signalled = true;
        let signal = match mode {
            StopMode::Graceful => Signal::Quit,
            StopMode::Abort => Signal::Term,
        };
        match self.stage.runner {
            Some(runner) => runner.signal(signal),
            // skip::reason_attached keeps such scenarios away.
            None => tracing::warn!(
                "cannot send {} to a runner the harness did not start",
                mode.signal()
            ),
        }
    }

    /// Faults never get here (see `skip`); said so if one does.
    fn network(&mut self, _action: &Action) -> Result<(), NotHere> {
        Err(NotHere)
    }

    fn record(&self, spec: Option<&'static str>, injected: Injected) {
        let what = What::Injected {
            description: injected,
        };
        self.stage.recorder.record("scenario", spec, what);
    }

    /// A look's wait; a runner that exits by itself before the run settled
    /// ends it.
    async fn advance(&mut self) -> Result<(), String> {
        let exited = self.stage.runner.and_then(RunnerProcess::exited);
        if let Some(status) = exited.filter(|_| !self.signalled && self.over_at.is_none()) {
            return Err(format!(
                "the runner exited ({status}) in the middle of the scenario"
            ));
        }
        tokio::time::sleep(LOOK).await;
        Ok(())
    }

    fn settle(&mut self, late: Duration) {
        self.over_at = Some(Instant::now() + self.stage.settle.saturating_sub(late));
    }

    fn over(&self) -> bool {
        self.over_at.is_some_and(|at| Instant::now() >= at)
    }
}

/// Waits until the runner has taken every job; when the last one was taken,
/// on the recorder's clock.
async fn jobs_taken(scenario: &Scenario, stage: &Stage<'_>) -> Result<Duration, String> {
    let give_up = Instant::now() + stage.wait;
    loop {
        let pending = scenario
            .jobs
            .iter()
            .filter(|j| stage.gitlab.status(j.id) == Some(JobStatus::Pending))
            .count();
        if pending == 0 {
            break;
        }
        if let Some(status) = stage.runner.and_then(RunnerProcess::exited) {
            return Err(format!(
                "the runner exited ({status}) before it took the scenario's jobs"
            ));
        }
        if Instant::now() >= give_up {
            return Err(format!(
                "the runner did not ask for a job within {} s: {}",
                stage.wait.as_secs(),
                stage.hint
            ));
        }
        tokio::time::sleep(LOOK).await;
    }
    let taken = stage
        .recorder
        .events()
        .into_iter()
        .filter_map(|e| match e.what {
            What::JobTaken { .. } => Some(Duration::from_millis(e.at_ms)),
            _ => None,
        });
    Ok(taken.max().unwrap_or_else(|| stage.recorder.now()))
}

fn zero_ms(zero: Duration) -> u64 {
    u64::try_from(zero.as_millis()).unwrap_or(u64::MAX)
}

/// A browser's pace on the wall clock. A real shell may take its time to
/// start: a browser waits for its first output before typing, and the wait
/// shifts the rest of its timeline, so that what it does next keeps its
/// distance from the typing.
struct WallPace {
    name: String,
    recorder: Recorder,
    start: Instant,
    shift: Duration,
}

impl Pace for WallPace {
    async fn until(&mut self, at: Duration, typing: bool) {
        tokio::time::sleep_until(self.start + at + self.shift).await;
        if typing {
            let waited = Instant::now();
            shell_started(&self.name, &self.recorder).await;
            self.shift += waited.elapsed();
        }
    }
}

/// Waits, at most [`FIRST_OUTPUT`], until the browser's open terminal has
/// shown output; says so in the record when it never did.
async fn shell_started(name: &str, recorder: &Recorder) {
    let name = name.to_string();
    let state = || {
        let events = recorder.events();
        let opened = events.iter().rposition(
            |e| matches!(&e.what, What::Answer { browser, status: 101, .. } if *browser == name),
        );
        let output =
            |e: &Event| matches!(&e.what, What::Output { browser, .. } if *browser == name);
        opened.map(|at| events[at..].iter().any(output))
    };
    // No terminal open (refused, closed): nothing to wait for.
    if state() != Some(false) {
        return;
    }
    let give_up = Instant::now() + FIRST_OUTPUT;
    while state() == Some(false) {
        if Instant::now() >= give_up {
            recorder.record(
                "scenario",
                Some("EX-6"),
                What::Injected {
                    description: Injected::NoOutputYet {
                        browser: name.to_string(),
                        seconds: FIRST_OUTPUT.as_secs(),
                    },
                },
            );
            return;
        }
        tokio::time::sleep(LOOK).await;
    }
}
