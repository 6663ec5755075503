//! The lifecycle invariants of SPEC, checked on any run: by the fuzzer on every
//! generated lifecycle, and by `run` on scenarios that say `invariants = true`
//! (the regressions the fuzzer writes).
//!
//! They read only what the harness observes (events at GitLab, Workhorse and
//! the browsers, and the counters of the runner's machine), plus what the
//! scenario itself says (scripts, timeouts, steps). Where a fault makes an
//! observation ambiguous, the invariant is lenient rather than wrong.
//!
//! Here: the list ([`INVARIANTS`]), the one judge of a run ([`judge`]), and
//! the few that read the log and the probe. By what they judge:
//! `terminals` (who gets one: EX-1, EX-4, AU-2), `output` (what flows: WS-2,
//! WS-3, WS-5), `job` (each job's end: LC-1, LC-6, LC-7), `status` (EX's
//! order of answers), `timing` (lower bounds of timed rules), `closes` (the
//! ends the runner decides and their log lines); `facts` gathers what they
//! read from a trace.

mod closes;
mod facts;
mod job;
mod output;
mod status;
mod terminals;
mod timing;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use facts::Facts;

use crate::expect::Failure;
use crate::scenario::{Action, Scenario, Step};
use crate::trace::{Event, What};
use crate::world::Run;

/// Reporting, closing and latency take a few seconds beyond the exact bound.
const SLACK: Duration = Duration::from_secs(10);
/// How long a runner may wait for a browser's close reply when it ends a
/// terminal at the job's end (WS-6 is project-defined; this runner gives 5 s).
/// A terminal opened just as the wait ended is closed only then, so a job may
/// finish this much later still (found by a 20,000-case run: 0.5 s over SLACK).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Two observations this close (ms) may be in either order at the runner: a
/// frame's latency plus the simulation's tick.
const SAME_MOMENT: u64 = 1_500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub spec: &'static str,
    pub detail: String,
}

impl Violation {
    /// The violation as a failed check of a verdict: what held, what was seen.
    pub fn failure(&self) -> Failure {
        Failure {
            check: format!("invariant {} [{}]", self.invariant, self.spec),
            expected: "holds".into(),
            observed: self.detail.clone(),
        }
    }
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
        "frame-type-of-the-subprotocol",
        "WS-2",
        "output to terminal.gitlab.com (or no subprotocol) comes in binary frames",
    ),
    (
        "frame-type-of-the-subprotocol",
        "WS-3",
        "output to base64.terminal.gitlab.com comes as base64 in text frames, and base64 input is decoded",
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
    (
        "input-whole",
        "WS-5",
        "a typed line reaches the shell whole: a long paste is not cut",
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
    (
        "status-order",
        "EX-2",
        "a request with the right token that is not an upgrade gets 405",
    ),
    (
        "status-order",
        "WS-8",
        "an upgrade sent as HTTP/1.0 is refused with a client error",
    ),
    (
        "status-order",
        "EX-1",
        "a direct request with a token of any wrong shape gets 401 (404 once the session is gone); the right token never does",
    ),
    (
        "reconnect-gets-101",
        "WS-7",
        "423 only while another terminal may be open: a reconnect after a close or a drop gets 101",
    ),
    (
        "attach-wait",
        "EX-3",
        "no 503 while the job runs within 60 s of the request",
    ),
    (
        "container-wait",
        "DK-1",
        "no 500 while the build container runs within 15 s",
    ),
    (
        "job-not-early",
        "LC-1",
        "a job does not finish before its script can have ended",
    ),
    (
        "not-closed-early",
        "LC-1",
        "a terminal is not timed out before min(session_timeout, deadline) after the script",
    ),
    (
        "ping-interval",
        "WS-4",
        "a Ping every 30 s, no fewer, no more",
    ),
    (
        "close-code",
        "WS-6",
        "the session timeout closes with 1001 and its reason, and never in a docker job",
    ),
    (
        "container-exit-close",
        "DK-3",
        "`1001 build container exited` only in docker jobs, once the script ends",
    ),
    (
        "abort-close",
        "LC-4",
        "`1001 job canceled` and `1001 runner shutting down` only after a cancel or a signal",
    ),
    (
        "shell-exit-close",
        "WS-7",
        "the shell's exit closes with 1000",
    ),
    (
        "wait-duration",
        "LC-1",
        "the log's `Terminal is connected, will time out in <d>` states min(session_timeout, time left)",
    ),
    (
        "wait-end-logged",
        "LC-2",
        "the wait after the script ends in the log with `Terminal disconnected` or the timeout",
    ),
    (
        "timeout-logged",
        "LC-3",
        "a timed-out terminal's log says so, with the wait's duration",
    ),
];

/// The SPEC rules the invariants check, each once, in the order of [`INVARIANTS`].
pub fn rules_checked() -> Vec<&'static str> {
    let mut rules: Vec<&'static str> = Vec::new();
    for (_, rule, _) in INVARIANTS {
        if !rules.contains(rule) {
            rules.push(rule);
        }
    }
    rules
}

pub fn check(scenario: &Scenario, run: &Run) -> Vec<Violation> {
    judge(scenario, run).found
}

/// Every invariant on one run: what broke, and how many checks of each rule ran.
pub fn judge(scenario: &Scenario, run: &Run) -> Judge {
    let mut found = Judge::default();
    let facts = Facts::of(scenario, &run.events);
    terminals::single_terminal(&run.events, scenario, &mut found);
    terminals::no_unauthorized_upgrade(scenario, &run.events, &mut found);
    terminals::no_shell_for_refused_requests(run, &mut found);
    output::output_in_order_exactly_once(&run.events, &mut found);
    output::frames_follow_the_subprotocol(&run.events, &mut found);
    job::job_invariants(scenario, run, &mut found);
    session_answers_404_after_the_job(&run.events, &mut found);
    masked_never_logged(&run.events, &mut found);
    status::check(&facts, &mut found);
    timing::check(&facts, &mut found);
    closes::check(&facts, &mut found);
    found
}

/// The outcome of judging one run: violations, and the checks run per SPEC rule
/// (a rule a run never checked was not exercised by it).
#[derive(Debug, Default)]
pub struct Judge {
    pub found: Vec<Violation>,
    pub checks: BTreeMap<&'static str, u64>,
}

impl Judge {
    /// One check of `rule` ran (whether or not it held).
    pub fn ran(&mut self, rule: &'static str) {
        *self.checks.entry(rule).or_default() += 1;
    }
}

/// JOB-5: the job's masked variables (`CI_JOB_TOKEN`, `CI_REGISTRY_PASSWORD`:
/// the job token GitLab handed out) never show in its log.
fn masked_never_logged(events: &[Event], found: &mut Judge) {
    for e in events {
        if let What::JobLog { job, line } = &e.what {
            found.ran("JOB-5");
            if line.contains(&crate::actors::gitlab::payload::job_token(*job)) {
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
fn session_answers_404_after_the_job(events: &[Event], found: &mut Judge) {
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
            } => match target.direct_job() {
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
                if over {
                    found.ran("LC-7");
                    found.ran("RT-1");
                }
                if over && !matches!(status, 404 | 0) {
                    violation(found, "session-removed", "LC-7", format!("{browser}: job {job} had ended, yet its session answered {status} at {}", at(e.at_ms)));
                }
            }
            _ => {}
        }
    }
}

fn violation(found: &mut Judge, invariant: &'static str, spec: &'static str, detail: String) {
    found.found.push(Violation {
        invariant,
        spec,
        detail,
    });
}

fn at(ms: u64) -> String {
    crate::duration::clock(ms)
}

/// A partition or hold of the link between GitLab and a runner.
fn cuts_workhorse_link(step: &Step) -> bool {
    match &step.action {
        Action::Partition(link) | Action::Hold(link) => link.is_gitlab_to_runner(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::output::ran_altered;
    use super::INVARIANTS;

    #[test]
    fn a_paste_run_short_is_told_apart_from_one_run_whole_or_still_arriving() {
        let paste = format!("k1z{}", "a".repeat(100));
        let whole = format!("$ echo {paste}\r\n{paste}\r\n$ ");
        assert_eq!(ran_altered(&whole, &paste), None);
        let short = format!("$ echo {}\r\n{}\r\n$ ", &paste[..40], &paste[..40]);
        assert_eq!(ran_altered(&short, &paste), Some(40));
        let arriving = format!("$ echo {paste}\r\n{}", &paste[..40]);
        assert_eq!(ran_altered(&arriving, &paste), None);
    }

    #[test]
    fn every_violation_is_listed_with_its_rule() {
        let source = [
            include_str!("invariants.rs"),
            include_str!("invariants/status.rs"),
            include_str!("invariants/timing.rs"),
            include_str!("invariants/closes.rs"),
            include_str!("invariants/terminals.rs"),
            include_str!("invariants/output.rs"),
            include_str!("invariants/job.rs"),
        ]
        .concat();
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
