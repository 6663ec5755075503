//! One scenario on the wall clock: GitLab queues its jobs, the runner under
//! test takes them, and from that moment (time zero, as at the start of a
//! simulation) browsers and the operator act at the scenario's (scaled) times.
//!
//! `world::simulate` paces the same steps by turmoil's clock; this paces them by
//! the wall clock, with the same browsers (`world::browser`) and GitLab.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use session_server::net::TokioNet;
use tokio::sync::watch;
use tokio::time::Instant;

use super::page::{self, PageBrowser, Pages};
use super::process::{RunnerProcess, Signal};
use crate::scenario::{
    browser_plans, Action, BrowserPlan, BrowserStep, Open, Scenario, Step, StopMode,
};
use crate::trace::{Event, Injected, Recorder, What};
use crate::world;
use crate::world::browser::Browser;
use crate::world::gitlab::{Gitlab, JobStatus};

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
    let busy = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let pages = stage.pages.clone().filter(|_| page::can_play(scenario));
    for BrowserPlan { name, user, steps } in browser_plans(scenario) {
        busy.fetch_add(1, Ordering::SeqCst);
        let timeline = Timeline {
            recorder: stage.recorder.clone(),
            steps,
            entry: stage.entry.clone(),
            start,
            busy: busy.clone(),
            over: over.clone(),
            shift: Duration::ZERO,
        };
        let task = match &pages {
            Some(pages) => {
                let browser = PageBrowser::new(&name, user, pages.clone(), stage.recorder.clone());
                tokio::spawn(browse_page(browser, timeline))
            }
            None => {
                let browser = Browser::new(
                    &name,
                    user,
                    TokioNet,
                    stage.gitlab.clone(),
                    stage.recorder.clone(),
                );
                tokio::spawn(browse(browser, timeline))
            }
        };
        tasks.push(task);
    }

    let last_step = scenario.last_step();
    let end = start + scenario.end.map(|e| e.0).unwrap_or(last_step);
    let mut operator: Vec<&Step> = scenario
        .steps
        .iter()
        .filter(|s| s.browser().is_none())
        .collect();
    operator.reverse();
    let mut signalled = false;
    let outcome = loop {
        let now = Instant::now();
        while let Some(step) = operator.last().filter(|s| start + s.at.0 <= now) {
            signalled |= matches!(step.action, Action::Signal { .. });
            act(step, stage);
            operator.pop();
        }
        let settled =
            now >= start + last_step && stage.gitlab.all_done() && busy.load(Ordering::SeqCst) == 0;
        if settled || now >= end {
            break Ok(());
        }
        if let Some(status) = stage.runner.and_then(RunnerProcess::exited) {
            if !signalled {
                break Err(format!(
                    "the runner exited ({status}) in the middle of the scenario"
                ));
            }
        }
        tokio::time::sleep(LOOK).await;
    };
    tokio::time::sleep(stage.settle).await;
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

/// One browser's steps and what paces them.
struct Timeline {
    recorder: Recorder,
    steps: Vec<Step>,
    entry: String,
    start: Instant,
    busy: Arc<AtomicUsize>,
    over: watch::Receiver<bool>,
    /// Time spent waiting for a slow shell before typing: it shifts the rest
    /// of this browser's timeline, so that what it does next keeps its
    /// distance from the typing.
    shift: Duration,
}

impl Timeline {
    /// Sleeps until `name`'s next step is due (waiting for its shell before
    /// typing) and yields it.
    async fn next(&mut self, name: &str) -> Option<Step> {
        if self.steps.is_empty() {
            return None;
        }
        let step = self.steps.remove(0);
        tokio::time::sleep_until(self.start + step.at.0 + self.shift).await;
        if matches!(step.action, Action::Type { .. }) {
            let waited = Instant::now();
            shell_started(name, &self.recorder).await;
            self.shift += waited.elapsed();
        }
        Some(step)
    }

    /// After the last step: until `closed` (the connection ended) or the run is over.
    async fn finish(mut self, closed: impl std::future::Future<Output = ()>) {
        tokio::select! {
            biased;
            _ = closed => {}
            _ = self.over.wait_for(|o| *o) => {}
        }
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A socket browser's timeline, then waiting for its connection to end (or the run).
async fn browse(mut browser: Browser<TokioNet>, mut timeline: Timeline) {
    while let Some(step) = timeline.next(&browser.name.clone()).await {
        world::act(&mut browser, &step, &timeline.entry).await;
    }
    timeline.finish(browser.closed()).await;
}

/// The same with a page of real Chromium; [`page::can_play`] let through
/// only the steps a page takes (opens through GitLab, typing, closing).
async fn browse_page(mut browser: PageBrowser, mut timeline: Timeline) {
    while let Some(step) = timeline.next(&browser.name.clone()).await {
        match step.action.browser_step() {
            Some((_, BrowserStep::Open(Open { job, .. }))) => {
                browser.open(*job, &timeline.entry).await
            }
            Some((_, BrowserStep::Type { text, repeat })) => {
                browser.type_text(&text.repeat(repeat)).await
            }
            Some((_, BrowserStep::Close)) => browser.close().await,
            // page::can_play let no other browser step through.
            Some((_, BrowserStep::Fetch { .. } | BrowserStep::Vanish)) | None => {}
        }
    }
    timeline.finish(browser.closed()).await;
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

/// An operator's or GitLab's step. Faults never get here (see `skip`), and
/// a browser's steps are its own.
fn act(step: &Step, stage: &Stage<'_>) {
    let record = |spec, description| {
        stage
            .recorder
            .record("scenario", spec, What::Injected { description })
    };
    if step.action.is_network_fault() {
        let action = step.action.name().to_string();
        return record(None, Injected::NotForReal { action });
    }
    let Some((spec, injected)) = Injected::of_step(&step.action) else {
        return; // a browser's step
    };
    match &step.action {
        Action::Signal { mode } => {
            let signal = match mode {
                StopMode::Graceful => Signal::Quit,
                StopMode::Abort => Signal::Term,
            };
            match stage.runner {
                Some(runner) => runner.signal(signal),
                // skip::reason_attached keeps such scenarios away.
                None => tracing::warn!(
                    "cannot send {} to a runner the harness did not start",
                    mode.signal()
                ),
            }
        }
        action => stage.gitlab.act(action),
    }
    record(spec, injected);
}
