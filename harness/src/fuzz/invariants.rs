//! The lifecycle invariants of SPEC, checked on any run: by the fuzzer on every
//! generated lifecycle, and by `run` on scenarios that say `invariants = true`
//! (the regressions the fuzzer writes).
//!
//! They read only what the harness observes (events at GitLab, Workhorse and
//! the browsers, and the counters of the runner's machine), plus what the
//! scenario itself says (scripts, timeouts, steps). Where a fault makes an
//! observation ambiguous, the invariant is lenient rather than wrong.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::{Action, ContainerStart, Executor, Open, Scenario, Step, Token, Via};
use crate::trace::{Event, What};
use crate::world::session_probe::Probe;
use crate::world::Run;

/// Reporting, closing and latency take a few seconds beyond the exact bound.
const SLACK: Duration = Duration::from_secs(10);
/// The runner's read deadline (WS-4, project-defined): a silent link is dropped by then.
const READ_DEADLINE: Duration = Duration::from_secs(61);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub spec: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.invariant, self.spec, self.detail)
    }
}

/// Every invariant: its name, the SPEC rule it checks, and what it says
/// (`session-harness coverage` lists them under their rules).
pub const INVARIANTS: &[(&str, &str, &str)] = &[
    (
        "single-terminal",
        "EX-4",
        "a session never has two terminals at once",
    ),
    (
        "no-unauthorized-upgrade",
        "EX-1",
        "a refused request is never upgraded",
    ),
    (
        "no-shell-for-refused-requests",
        "EX-1",
        "a refused request starts no shell",
    ),
    (
        "output-exactly-once",
        "WS-5",
        "typed commands' output arrives exactly once",
    ),
    (
        "output-in-order",
        "WS-5",
        "typed commands' output arrives in order",
    ),
    ("job-ends", "LC-1", "every job ends, never hangs"),
    (
        "bounded-wait",
        "LC-1",
        "a job waits at most min(session_timeout, deadline) after its script",
    ),
    (
        "result-is-the-scripts",
        "LC-6",
        "the job's result is its script's",
    ),
    (
        "session-removed",
        "LC-7",
        "an ended job's session URL answers 404",
    ),
    (
        "no-terminal-left",
        "LC-7",
        "no terminal is left open after the jobs",
    ),
    (
        "masked-never-logged",
        "JOB-5",
        "a masked variable's value never shows in the job log",
    ),
];

pub fn check(scenario: &Scenario, run: &Run) -> Vec<Violation> {
    let mut found = Vec::new();
    single_terminal(&run.events, scenario, &mut found);
    no_unauthorized_upgrade(scenario, &run.events, &mut found);
    no_shell_for_refused_requests(run, &mut found);
    output_in_order_exactly_once(&run.events, &mut found);
    job_invariants(scenario, run, &mut found);
    session_answers_404_after_the_job(&run.events, &mut found);
    masked_never_logged(&run.events, &mut found);
    found
}

/// JOB-5: the job's masked variables (`CI_JOB_TOKEN`, `CI_REGISTRY_PASSWORD`:
/// the job token GitLab handed out) never show in its log.
fn masked_never_logged(events: &[Event], found: &mut Vec<Violation>) {
    for e in events {
        if let What::JobLog { job, line } = &e.what {
            if line.contains(&crate::world::gitlab::payload::job_token(*job)) {
                violation(
                    found,
                    "masked-never-logged",
                    "JOB-5",
                    format!(
                        "job {job}'s log shows its masked CI_JOB_TOKEN at {}",
                        at(e.at_ms)
                    ),
                );
            }
        }
    }
}

/// LC-7, RT-1: a direct request for a session whose job has ended gets 404
/// (or no answer at all, if the runner is gone).
fn session_answers_404_after_the_job(events: &[Event], found: &mut Vec<Violation>) {
    let ended: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match &e.what {
            What::JobState { job, .. } => Some((*job, e.at_ms)),
            _ => None,
        })
        .collect();
    let mut asked: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } => match direct_target(target) {
                Some(job) => drop(asked.insert(browser, (job, e.at_ms))),
                None => drop(asked.remove(browser.as_str())),
            },
            What::Answer {
                browser, status, ..
            } => {
                let Some((job, when)) = asked.remove(browser.as_str()) else {
                    continue;
                };
                let over = ended.iter().any(|(j, at)| *j == job && *at < when);
                if over && !matches!(status, 404 | 0) {
                    violation(found, "session-removed", "LC-7", format!("{browser}: job {job} had ended, yet its session answered {status} at {}", at(e.at_ms)));
                }
            }
            _ => {}
        }
    }
}

fn violation(
    found: &mut Vec<Violation>,
    invariant: &'static str,
    spec: &'static str,
    detail: String,
) {
    found.push(Violation {
        invariant,
        spec,
        detail,
    });
}

fn at(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// EX-4: the runner never holds two terminals of one session. A runner-side
/// connection is a browser's direct 101 or Workhorse's link; it ends when its
/// end is observed (or, behind a GitLab-runner partition, at the latest by the
/// runner's read deadline).
fn single_terminal(events: &[Event], scenario: &Scenario, found: &mut Vec<Violation>) {
    let cut_off: Vec<u64> = scenario
        .steps
        .iter()
        .filter(|s| matches!(&s.action, Action::Partition(link) if link.is_gitlab_to_runner()))
        .map(|s| u64::try_from(s.at.0.as_millis()).unwrap_or(u64::MAX))
        .collect();
    // (job, who, opened at)
    let mut open: Vec<(u64, String, u64)> = Vec::new();
    let mut direct_job: std::collections::BTreeMap<String, u64> = Default::default();
    for e in events {
        // Links cut by a partition are gone by the read deadline.
        open.retain(|(_, _, since)| {
            !cut_off
                .iter()
                .any(|c| *c >= *since && e.at_ms > c + READ_DEADLINE.as_millis() as u64)
        });
        let started = match &e.what {
            What::Open {
                browser, target, ..
            } => {
                if let Some(job) = direct_target(target) {
                    direct_job.insert(browser.clone(), job);
                } else {
                    direct_job.remove(browser);
                }
                None
            }
            What::Answer {
                browser,
                status: 101,
                ..
            } => direct_job.get(browser).map(|job| (*job, browser.clone())),
            What::RunnerLink { job, event } if event == "connected" => {
                Some((*job, "workhorse".to_string()))
            }
            What::RunnerLink { job, event } if ends_link(event) => {
                if let Some(i) = open
                    .iter()
                    .position(|(j, who, _)| j == job && who == "workhorse")
                {
                    open.remove(i);
                }
                None
            }
            What::Closed { browser, .. } => {
                open.retain(|(_, who, _)| who != browser);
                None
            }
            What::Injected { description } if description.starts_with("drops its connection") => {
                open.retain(|(_, who, _)| *who != e.actor);
                None
            }
            What::Injected { description } if description.starts_with("host runner") => {
                open.clear();
                None
            }
            _ => None,
        };
        if let Some((job, who)) = started {
            if let Some((_, other, since)) = open.iter().find(|(j, _, _)| *j == job) {
                violation(
                    found,
                    "single-terminal",
                    "EX-4",
                    format!("job {job}: a second terminal ({who}) at {} while {other}'s, open since {}, was still open", at(e.at_ms), at(*since)),
                );
            }
            open.push((job, who, e.at_ms));
        }
    }
}

fn direct_target(target: &str) -> Option<u64> {
    target
        .strip_prefix("the runner's session of job ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

fn ends_link(event: &str) -> bool {
    [
        "runner closed",
        "runner connection",
        "browser left",
        "MaxSessionTime",
        "re-authorization failed",
    ]
    .iter()
    .any(|p| event.starts_with(p))
}

/// EX-1, AU-2: no refused request is upgraded. Whether a request should be
/// refused follows from the scenario: who the browser is, which token it sends.
fn no_unauthorized_upgrade(scenario: &Scenario, events: &[Event], found: &mut Vec<Violation>) {
    for name in crate::scenario::browser_names(scenario) {
        let opens: Vec<(&Step, &Open)> = scenario
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Open(open) if open.browser == name => Some((s, open)),
                _ => None,
            })
            .collect();
        let answers: Vec<(u64, u16)> = events
            .iter()
            .filter_map(|e| match &e.what {
                What::Answer {
                    browser, status, ..
                } if *browser == name => Some((e.at_ms, *status)),
                _ => None,
            })
            .collect();
        for ((step, open), (when, status)) in opens.iter().zip(&answers) {
            if *status == 101 && !may_open(scenario, &name, step, open) {
                violation(
                    found,
                    "no-unauthorized-upgrade",
                    "EX-1",
                    format!(
                        "{name} got 101 at {} without the right to open job {}",
                        at(*when),
                        open.job
                    ),
                );
            }
        }
    }
}

/// Whether `browser`'s open `step` is one that must be allowed by authorization.
fn may_open(scenario: &Scenario, browser: &str, step: &Step, open: &Open) -> bool {
    let user = match scenario.browsers.get(browser) {
        Some(b) => b.user.clone(),
        None => Some(browser.to_string()),
    };
    if let Via::Direct { token, .. } = open.via {
        return token == Token::Own;
    }
    let Some(job) = scenario.jobs.iter().find(|j| j.id == open.job) else {
        return false;
    };
    // Roles and archiving as they stand when the browser opens.
    let before = |s: &&Step| s.at <= step.at;
    let role = |u: &str| {
        let demoted = scenario
            .steps
            .iter()
            .rev()
            .filter(before)
            .find_map(|s| match &s.action {
                Action::Revoke { user, role } if user == u => Some(*role),
                _ => None,
            });
        demoted.or_else(|| scenario.users.get(u).map(|u| u.role))
    };
    let archived =
        scenario
            .projects
            .get(&job.project)
            .is_some_and(|p| p.archived)
            || scenario.steps.iter().filter(before).any(|s| {
                matches!(&s.action, Action::Archive { project } if *project == job.project)
            });
    let developer = |u: &str| role(u).is_some_and(|r| r >= crate::world::gitlab::Role::Developer);
    user.is_some_and(|u| u == job.owner && developer(&u)) && !archived
}

/// EX-1: a refused request spawns nothing. Every terminal the machine opened
/// belongs to a connection the runner upgraded.
fn no_shell_for_refused_requests(run: &Run, found: &mut Vec<Violation>) {
    let opened = run.terminals.opened();
    let upgrades = upgrades(&run.events);
    if opened > upgrades {
        violation(
            found,
            "no-shell-for-refused-requests",
            "EX-1",
            format!("the machine opened {opened} terminals for {upgrades} upgraded connections"),
        );
    }
}

/// Connections the runner upgraded: direct 101s and Workhorse's links.
fn upgrades(events: &[Event]) -> usize {
    let mut direct = std::collections::BTreeSet::new();
    let mut count = 0;
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } => {
                if direct_target(target).is_some() {
                    direct.insert(browser.clone());
                } else {
                    direct.remove(browser);
                }
            }
            What::Answer {
                browser,
                status: 101,
                ..
            } if direct.contains(browser) => count += 1,
            What::RunnerLink { event, .. } if event == "connected" => count += 1,
            _ => {}
        }
    }
    count
}

/// WS-5: while connected, what is typed reaches the shell and what it prints
/// reaches the browser, in order, exactly once. Each typed `echo X` must show
/// `X` as an output line at most once, and if a later one shows, every earlier
/// one showed before it.
fn output_in_order_exactly_once(events: &[Event], found: &mut Vec<Violation>) {
    #[derive(Default)]
    struct Segment {
        commands: Vec<String>,
        output: String,
    }
    let mut segments: std::collections::BTreeMap<String, Segment> = Default::default();
    let mut finished: Vec<(String, Segment)> = Vec::new();
    for e in events {
        match &e.what {
            What::Answer {
                browser,
                status: 101,
                ..
            } => {
                if let Some(old) = segments.insert(browser.clone(), Segment::default()) {
                    finished.push((browser.clone(), old));
                }
            }
            What::Typed { browser, text, .. } => {
                if let Some(seg) = segments.get_mut(browser) {
                    if let Some(line) = text
                        .strip_prefix("echo ")
                        .and_then(|t| t.strip_suffix('\r'))
                    {
                        if !line.contains('\r') {
                            seg.commands.push(line.to_string());
                        }
                    }
                }
            }
            What::Output { browser, text, .. } => {
                if let Some(seg) = segments.get_mut(browser) {
                    seg.output.push_str(text);
                }
            }
            What::Closed { browser, .. } => {
                if let Some(seg) = segments.remove(browser) {
                    finished.push((browser.clone(), seg));
                }
            }
            _ => {}
        }
    }
    finished.extend(segments);
    for (browser, seg) in finished {
        let positions: Vec<Vec<usize>> = seg
            .commands
            .iter()
            .map(|line| {
                let needle = format!("\r\n{line}\r\n");
                seg.output.match_indices(&needle).map(|(i, _)| i).collect()
            })
            .collect();
        let short = |line: &str| line.chars().take(24).collect::<String>();
        for (line, at) in seg.commands.iter().zip(&positions) {
            if at.len() > 1 {
                violation(
                    found,
                    "output-exactly-once",
                    "WS-5",
                    format!(
                        "{browser}: the output of `echo {}` arrived {} times",
                        short(line),
                        at.len()
                    ),
                );
            }
        }
        if let Some(last) = positions.iter().rposition(|p| !p.is_empty()) {
            let mut previous = 0;
            for (line, at) in seg.commands[..=last].iter().zip(&positions) {
                match at.first() {
                    None => violation(
                        found,
                        "output-in-order",
                        "WS-5",
                        format!(
                            "{browser}: `echo {}` was lost, while a later command's output arrived",
                            short(line)
                        ),
                    ),
                    Some(&i) if i < previous => violation(
                        found,
                        "output-in-order",
                        "WS-5",
                        format!("{browser}: `echo {}` arrived out of order", short(line)),
                    ),
                    Some(&i) => previous = i,
                }
            }
        }
    }
}

/// LC-1, LC-6, LC-7 and "never hangs", for each job.
fn job_invariants(scenario: &Scenario, run: &Run, found: &mut Vec<Violation>) {
    let events = &run.events;
    let lost_runner = scenario
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Crash { .. } | Action::Bounce { .. }));
    let reporting_delayed = scenario
        .steps
        .iter()
        .any(|s| match &s.action {
            Action::Partition(link) | Action::Hold(link) => link.is_gitlab_to_runner(),
            _ => false,
        });
    let stopped = scenario
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Signal { .. } | Action::Cancel { .. }));
    let mut all_done = true;
    for job in &scenario.jobs {
        let taken = events.iter().find_map(|e| match &e.what {
            What::JobTaken { job: j, .. } if *j == job.id => Some(e.at_ms),
            _ => None,
        });
        let state = events.iter().find_map(|e| match &e.what {
            What::JobState { job: j, state, .. } if *j == job.id => Some((e.at_ms, state.clone())),
            _ => None,
        });
        let (Some(taken), Some((finished, state))) = (taken, state) else {
            all_done = false;
            if !lost_runner && !reporting_delayed {
                violation(
                    found,
                    "job-ends",
                    "LC-1",
                    format!("job {} never reached a final state", job.id),
                );
            }
            continue;
        };
        let script = ScriptFacts::of(&job.script);
        let timeout = job
            .timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(3600));
        let session_timeout = match scenario.runner.session_timeout {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => Duration::from_secs(1800),
        };
        let start = match job.container_start {
            Some(ContainerStart::Never) => timeout,
            Some(ContainerStart::After(start)) => start.0,
            None => Duration::ZERO,
        };
        let prepare = job.prepare.map(|d| d.0).unwrap_or_default();
        let script_end = prepare + start + script.seconds;
        let deadline = timeout;
        let held = if scenario.runner.executor == Executor::Docker {
            Duration::ZERO
        } else {
            session_timeout.min(deadline.saturating_sub(script_end))
        };
        let bound = taken + ((script_end + held).min(deadline) + SLACK).as_millis() as u64;
        if !reporting_delayed && finished > bound {
            violation(
                found,
                "bounded-wait",
                "LC-1",
                format!(
                    "job {} finished at {}, later than its script end plus min(session_timeout {}s, deadline) allows ({})",
                    job.id,
                    at(finished),
                    session_timeout.as_secs(),
                    at(bound)
                ),
            );
        }
        let clear_of_deadline = script_end + SLACK < deadline;
        if !stopped && !lost_runner && clear_of_deadline {
            let expected = if script.exit_code == 0 {
                "success"
            } else {
                "failed"
            };
            if state != expected {
                violation(
                    found,
                    "result-is-the-scripts",
                    "LC-6",
                    format!(
                        "job {}: the script exits {}, the job ended {state}",
                        job.id, script.exit_code
                    ),
                );
            }
        }
    }
    if all_done && !lost_runner {
        // Observed over sockets, as for a third party's runner: the session URL
        // of an ended job must answer 404.
        for (job, probe) in &run.session_probes {
            if let Probe::Answers(status) = probe {
                violation(
                    found,
                    "session-removed",
                    "LC-7",
                    format!("job {job} had ended, yet its session URL still answered {status} (expected 404)"),
                );
            }
        }
        if run.terminals.live() > 0 {
            violation(
                found,
                "no-terminal-left",
                "LC-7",
                format!(
                    "{} terminal(s) still open after every job ended",
                    run.terminals.live()
                ),
            );
        }
    }
}

/// What a job script of the simulated machine does: total `sleep`, exit code.
struct ScriptFacts {
    seconds: Duration,
    exit_code: i32,
}

impl ScriptFacts {
    fn of(lines: &[String]) -> Self {
        let mut seconds = 0.0;
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["sleep", s, ..] => seconds += s.parse::<f64>().unwrap_or(0.0),
                ["exit", code, ..] => {
                    return ScriptFacts {
                        seconds: Duration::from_secs_f64(seconds),
                        exit_code: code.parse().unwrap_or(1),
                    }
                }
                ["false", ..] => {
                    return ScriptFacts {
                        seconds: Duration::from_secs_f64(seconds),
                        exit_code: 1,
                    }
                }
                _ => {}
            }
        }
        ScriptFacts {
            seconds: Duration::from_secs_f64(seconds),
            exit_code: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::INVARIANTS;

    #[test]
    fn every_violation_is_listed_with_its_rule() {
        let source = include_str!("invariants.rs");
        let mut calls = 0;
        for call in source.split("violation(").skip(1) {
            let Some(args) = call.trim_start().strip_prefix("found,") else {
                continue;
            };
            let quoted: Vec<&str> = args.split('"').skip(1).step_by(2).take(2).collect();
            let [name, rule] = quoted[..] else {
                panic!("a violation without a literal name and rule: {args:.60}")
            };
            assert!(
                INVARIANTS.iter().any(|(n, r, _)| *n == name && *r == rule),
                "violation {name:?} [{rule}] is not in INVARIANTS"
            );
            calls += 1;
        }
        assert!(
            calls >= INVARIANTS.len(),
            "only {calls} violation calls found"
        );
    }
}
