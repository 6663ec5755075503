//! What the invariants of SPEC's statuses, timings and closes read from a run:
//! the facts of a trace, gathered once. Each field says which trace events it
//! comes from, so that typed events (issue 10) can replace the parsing here.

use std::time::Duration;

use crate::scenario::Shape;
use crate::scenario::{
    Action, ContainerStart, Executor, Open, Scenario, Step, StopMode, Token, Via,
};
use crate::trace::{Carries, Close, Event, Injected, Link, What};

/// One job as the scenario sets it up and the trace shows it.
pub struct JobFacts {
    pub id: u64,
    pub docker: bool,
    /// JobTaken: GitLab handed the job out; the runner starts it no earlier.
    pub taken: u64,
    /// JobState: when and how it ended.
    pub ended: Option<(u64, String)>,
    /// The scenario's timings: prepare (EX-3), container start (DK-1; `None`: never), script.
    pub prepare: Duration,
    pub container_start: Option<Duration>,
    pub script: Duration,
    /// CFG-3: `session_timeout`, zero or negative meaning 1800 s.
    pub session_timeout: Duration,
    /// The job's deadline, counted from its start.
    pub timeout: Duration,
    /// JobLog: the job's log lines and when GitLab got them.
    pub log: Vec<(u64, String)>,
}

impl JobFacts {
    /// The earliest moment the script can have ended: the runner starts the job
    /// no earlier than GitLab handed it out, and each phase takes at least its time.
    pub fn earliest_script_end(&self) -> u64 {
        let start = self.container_start.unwrap_or(self.timeout);
        self.taken + millis((self.prepare + start + self.script).min(self.timeout))
    }

    /// The earliest moment the runner can end a terminal's wait by timing out
    /// (LC-1): `min(session_timeout, time left)` after the script's end.
    pub fn earliest_timeout(&self) -> u64 {
        let start = self.container_start.unwrap_or(self.timeout);
        let after_script = self.prepare + start + self.script + self.session_timeout;
        self.taken + millis(after_script.min(self.timeout))
    }

    /// The wait LC-1 requires when it is not near the deadline: the
    /// session_timeout, clear of the time left by more than the runner's own
    /// overheads; `None` where the deadline may decide.
    pub fn clear_wait(&self) -> Option<Duration> {
        let start = self.container_start?;
        let used = self.prepare + start + self.script + Duration::from_secs(5);
        (used + self.session_timeout <= self.timeout).then_some(self.session_timeout)
    }
}

/// How a run was stopped: GitLab cancelled the job, or the operator
/// signalled the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Cancel,
    Signal(StopMode),
}

/// A request straight at the runner's session URL (Open with a direct target,
/// paired with its open step for the token, and its Answer).
pub struct Request {
    pub browser: String,
    pub job: u64,
    /// The step's token shape.
    pub token: Token,
    /// The step's request shape when it is not an upgrade (EX-2, WS-8).
    pub shape: Option<Shape>,
    pub opened: u64,
    /// When and with which status it was answered (0: no HTTP answer).
    pub answer: Option<(u64, u16)>,
}

impl Request {
    pub fn own_token(&self) -> bool {
        self.token == Token::Own
    }
}

/// A close the runner decided, as seen by a direct browser (Closed) or by
/// Workhorse ("runner closed the terminal: <code> <reason>").
pub struct RunnerClose {
    pub at: u64,
    pub job: u64,
    pub who: String,
    pub code: u16,
    pub reason: String,
}

/// A direct connection the runner upgraded: from its 101 to its close, as seen
/// by the browser (Answer 101, Closed or a drop), with the Pings it got.
pub struct DirectConnection {
    pub browser: String,
    pub since: u64,
    pub until: Option<u64>,
    /// The observed end is the real one: a close frame, or the browser's own drop
    /// (not a connection that died unnoticed).
    pub end_exact: bool,
    pub pings: usize,
}

pub struct Facts<'a> {
    pub events: &'a [Event],
    pub jobs: Vec<JobFacts>,
    pub requests: Vec<Request>,
    pub closes: Vec<RunnerClose>,
    pub connections: Vec<DirectConnection>,
    /// Cancel and signal steps: when, and which.
    pub stops: Vec<(u64, Stop)>,
    /// A partition or held link between GitLab and the runner, or a crash:
    /// what the harness sees of the runner may then be late or missing.
    pub runner_obscured: bool,
    /// When the first of those began.
    pub obscured_from: Option<u64>,
}

impl<'a> Facts<'a> {
    pub fn of(scenario: &'a Scenario, events: &'a [Event]) -> Self {
        let stops = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Cancel { .. } => Some((millis(s.at.0), Stop::Cancel)),
                Action::Signal { mode } => Some((millis(s.at.0), Stop::Signal(*mode))),
                _ => None,
            })
            .collect();
        let obscured_from = scenario
            .steps
            .iter()
            .filter(|s| match &s.action {
                Action::Crash { .. } | Action::Bounce { .. } => true,
                Action::Partition(link) | Action::Hold(link) => link.touches_runner(),
                _ => false,
            })
            .map(|s| millis(s.at.0))
            .min();
        Facts {
            events,
            jobs: jobs(scenario, events),
            requests: requests(scenario, events),
            closes: closes(events),
            connections: connections(events),
            stops,
            runner_obscured: obscured_from.is_some(),
            obscured_from,
        }
    }

    pub fn job(&self, id: u64) -> Option<&JobFacts> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// Whether a cancel or signal came at or before `at`.
    pub fn stopped_by(&self, at: u64) -> bool {
        self.stops.iter().any(|(when, _)| *when <= at)
    }
}

fn jobs(scenario: &Scenario, events: &[Event]) -> Vec<JobFacts> {
    let session_timeout = match scenario.runner.session_timeout {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => Duration::from_secs(1800),
    };
    scenario
        .jobs
        .iter()
        .filter_map(|job| {
            let taken = events.iter().find_map(|e| match &e.what {
                What::JobTaken { job: j, .. } if *j == job.id => Some(e.at_ms),
                _ => None,
            })?;
            let ended = events.iter().find_map(|e| match &e.what {
                What::JobState { job: j, state, .. } if *j == job.id => {
                    Some((e.at_ms, state.clone()))
                }
                _ => None,
            });
            let log = events
                .iter()
                .filter_map(|e| match &e.what {
                    What::JobLog { job: j, line } if *j == job.id => Some((e.at_ms, line.clone())),
                    _ => None,
                })
                .collect();
            let timeout = job.timeout();
            let container_start = match job.container_start {
                Some(ContainerStart::Never) => None,
                Some(ContainerStart::After(start)) => Some(start.0),
                None => Some(Duration::ZERO),
            };
            Some(JobFacts {
                id: job.id,
                docker: scenario.runner.executor == Executor::Docker,
                taken,
                ended,
                prepare: job.prepare.map(|d| d.0).unwrap_or_default(),
                container_start,
                script: super::job::ScriptFacts::of(&job.script).seconds,
                session_timeout,
                timeout,
                log,
            })
        })
        .collect()
}

/// Direct requests, each paired with its step: a browser's k-th attempt to
/// open (an Open event, or the note that GitLab knew no session) is its k-th
/// open step.
fn requests(scenario: &Scenario, events: &[Event]) -> Vec<Request> {
    let mut steps: Vec<(&Step, &Open)> = scenario
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Open(open) => Some((s, open)),
            _ => None,
        })
        .collect();
    steps.sort_by_key(|(s, _)| s.at);
    let mut next: std::collections::BTreeMap<String, usize> = Default::default();
    let mut step_of = |browser: &str| {
        let seen = next.entry(browser.to_string()).or_default();
        let open = steps
            .iter()
            .filter(|(_, open)| open.browser == browser)
            .nth(*seen);
        *seen += 1;
        open.map(|(_, open)| *open)
    };
    let mut requests: Vec<Request> = Vec::new();
    let mut waiting: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } => {
                let open = step_of(browser);
                waiting.remove(browser.as_str());
                if let Some(job) = target.direct_job() {
                    waiting.insert(browser, requests.len());
                    requests.push(Request {
                        browser: browser.clone(),
                        job,
                        token: match open.map(|o| &o.via) {
                            Some(Via::Direct { token, .. }) => *token,
                            Some(Via::Gitlab) | None => Token::Own,
                        },
                        shape: open.and_then(|o| o.request),
                        opened: e.at_ms,
                        answer: None,
                    });
                }
            }
            What::Injected {
                description: Injected::NoSession { .. },
            } => {
                step_of(&e.actor);
            }
            What::Answer {
                browser, status, ..
            } => {
                if let Some(i) = waiting.remove(browser.as_str()) {
                    requests[i].answer = Some((e.at_ms, *status));
                }
            }
            _ => {}
        }
    }
    requests
}

fn closes(events: &[Event]) -> Vec<RunnerClose> {
    let mut direct: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut closes = Vec::new();
    for e in events {
        let (job, who, code, reason) = match &e.what {
            What::Open {
                browser, target, ..
            } => {
                match target.direct_job() {
                    Some(job) => direct.insert(browser, job),
                    None => direct.remove(browser.as_str()),
                };
                continue;
            }
            What::Closed {
                browser,
                close: Close::Frame { code, reason },
                ..
            } => match direct.get(browser.as_str()) {
                Some(job) => (*job, browser.clone(), *code, reason),
                None => continue,
            },
            What::RunnerLink {
                job,
                event:
                    Link::RunnerClosed {
                        carries: Carries::Terminal,
                        code: Some(code),
                        reason,
                        ..
                    },
            } => (*job, "workhorse".to_string(), *code, reason),
            _ => continue,
        };
        closes.push(RunnerClose {
            at: e.at_ms,
            job,
            who,
            code,
            reason: reason.trim().to_string(),
        });
    }
    closes
}

fn connections(events: &[Event]) -> Vec<DirectConnection> {
    let mut direct: std::collections::BTreeSet<&str> = Default::default();
    let mut connections: Vec<DirectConnection> = Vec::new();
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } => {
                if target.direct_job().is_some() {
                    direct.insert(browser);
                } else {
                    direct.remove(browser.as_str());
                }
            }
            What::Answer {
                browser,
                status: 101,
                ..
            } if direct.contains(browser.as_str()) => connections.push(DirectConnection {
                browser: browser.clone(),
                since: e.at_ms,
                until: None,
                end_exact: false,
                pings: 0,
            }),
            _ => {}
        }
        let (browser, ends, exact) = match &e.what {
            What::Ping { browser } => (browser.as_str(), false, false),
            What::Closed { browser, close, .. } => {
                (browser.as_str(), true, matches!(close, Close::Frame { .. }))
            }
            What::Injected {
                description: Injected::Vanished,
            } => (e.actor.as_str(), true, true),
            _ => continue,
        };
        if let Some(c) = connections
            .iter_mut()
            .rev()
            .find(|c| c.browser == browser && c.until.is_none())
        {
            if ends {
                c.until = Some(e.at_ms);
                c.end_exact = exact;
            } else {
                c.pings += 1;
            }
        }
    }
    connections
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
