//! The lifecycle invariants of SPEC, checked on any run: by the fuzzer on every
//! generated lifecycle, and by `run` on scenarios that say `invariants = true`
//! (the regressions the fuzzer writes).
//!
//! They read only what the harness observes (events at GitLab, Workhorse and
//! the browsers, and the counters of the runner's machine), plus what the
//! scenario itself says (scripts, timeouts, steps). Where a fault makes an
//! observation ambiguous, the invariant is lenient rather than wrong.

mod closes;
mod facts;
mod status;
mod timing;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use facts::Facts;

use crate::actors::session_probe::Probe;
use crate::expect::Failure;
use crate::scenario::{Action, ContainerStart, Executor, Open, Scenario, Step, Token, Via};
use crate::trace::{Event, Injected, Link, What};
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
    single_terminal(&run.events, scenario, &mut found);
    no_unauthorized_upgrade(scenario, &run.events, &mut found);
    no_shell_for_refused_requests(run, &mut found);
    output_in_order_exactly_once(&run.events, &mut found);
    frames_follow_the_subprotocol(&run.events, &mut found);
    job_invariants(scenario, run, &mut found);
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

/// EX-4: the runner never holds two terminals of one session. A runner-side
/// connection is a browser's direct 101 or Workhorse's link. The harness sees
/// both ends later than the runner does, so a second terminal is a violation
/// only when it began clearly before the runner can have ended the first:
/// before the first's observed end less the latency (`SAME_MOMENT`), or, for
/// Workhorse's link, before a GitLab-runner partition or hold began (behind
/// one, the runner's close reaches Workhorse late or never).
/// Trace facts: Open/Answer(101) of direct browsers, RunnerLink connected and
/// its ends, Closed, Injected drops and crashes, and the scenario's partition
/// and hold steps.
fn single_terminal(events: &[Event], scenario: &Scenario, found: &mut Judge) {
    let cut: Vec<u64> = scenario
        .steps
        .iter()
        .filter(|s| cuts_workhorse_link(s))
        .map(|s| millis(s.at.0))
        .collect();
    let mut terminals: Vec<Terminal> = Vec::new();
    let mut direct_job: std::collections::BTreeMap<String, u64> = Default::default();
    let end = |terminals: &mut Vec<Terminal>, at: u64, ended: &dyn Fn(&Terminal) -> bool| {
        for t in terminals.iter_mut().filter(|t| t.until.is_none()) {
            if ended(t) {
                t.until = Some(at);
            }
        }
    };
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } => match target.direct_job() {
                Some(job) => drop(direct_job.insert(browser.clone(), job)),
                None => drop(direct_job.remove(browser)),
            },
            What::Answer {
                browser,
                status: 101,
                ..
            } => {
                if let Some(job) = direct_job.get(browser) {
                    terminals.push(Terminal::new(*job, browser, e.at_ms));
                }
            }
            What::RunnerLink {
                job,
                event: Link::Connected,
            } => {
                terminals.push(Terminal::new(*job, "workhorse", e.at_ms));
            }
            What::RunnerLink { job, event } if event.ends() => {
                end(&mut terminals, e.at_ms, &|t| {
                    t.job == *job && t.who == "workhorse"
                });
            }
            What::Closed { browser, .. } => end(&mut terminals, e.at_ms, &|t| t.who == *browser),
            What::Injected {
                description: Injected::Vanished,
            } => {
                end(&mut terminals, e.at_ms, &|t| t.who == e.actor);
            }
            What::Injected { description } if description.ends_runner() => {
                end(&mut terminals, e.at_ms, &|_| true);
            }
            _ => {}
        }
    }
    for (i, second) in terminals.iter().enumerate() {
        found.ran("EX-4");
        let overlapped = terminals[..i].iter().find(|first| {
            let mut ended = first.until.unwrap_or(u64::MAX);
            if first.who == "workhorse" {
                // The runner may have closed it as soon as the link was cut.
                if let Some(c) = cut.iter().find(|c| **c >= first.since && **c < ended) {
                    ended = *c;
                }
            }
            first.job == second.job && second.since + SAME_MOMENT < ended
        });
        if let Some(first) = overlapped {
            violation(
                found,
                "single-terminal",
                "EX-4",
                format!(
                    "job {}: a second terminal ({}) at {} while {}'s, open since {}, was still open",
                    second.job,
                    second.who,
                    at(second.since),
                    first.who,
                    at(first.since)
                ),
            );
        }
    }
}

/// A runner-side terminal connection as the harness observed it.
struct Terminal {
    job: u64,
    who: String,
    since: u64,
    until: Option<u64>,
}

impl Terminal {
    fn new(job: u64, who: &str, since: u64) -> Self {
        Terminal {
            job,
            who: who.to_string(),
            since,
            until: None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A partition or hold of the link between GitLab and a runner.
fn cuts_workhorse_link(step: &Step) -> bool {
    match &step.action {
        Action::Partition(link) | Action::Hold(link) => link.is_gitlab_to_runner(),
        _ => false,
    }
}

/// EX-1, AU-2: no refused request is upgraded. Whether a request should be
/// refused follows from the scenario: who the browser is, which token it sends.
fn no_unauthorized_upgrade(scenario: &Scenario, events: &[Event], found: &mut Judge) {
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
            found.ran(match open.via {
                Via::Direct { .. } => "EX-1",
                Via::Gitlab => "AU-2",
            });
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
            || scenario.steps.iter().filter(before).any(
                |s| matches!(&s.action, Action::Archive { project } if *project == job.project),
            );
    let developer = |u: &str| role(u).is_some_and(|r| r >= crate::scenario::Role::Developer);
    user.is_some_and(|u| u == job.owner && developer(&u)) && !archived
}

/// EX-1: a refused request spawns nothing. Every terminal the machine opened
/// belongs to a request the runner may have upgraded: a direct open or a
/// Workhorse dial (after Rails allowed it) that the harness did not see
/// refused. Not "seen upgraded": behind a GitLab-runner partition or a held
/// link the runner upgrades and relays a connection whose 101 never reaches
/// Workhorse, and that is no refused request.
/// Trace facts: direct Open and its Answer status, Authorize allowed,
/// RunnerLink "runner answered <status>"; the machine's count of terminals.
fn no_shell_for_refused_requests(run: &Run, found: &mut Judge) {
    let opened = run.terminals.opened();
    let (possible, refused) = possible_upgrades(&run.events);
    found.ran("EX-1");
    if opened > possible {
        violation(
            found,
            "no-shell-for-refused-requests",
            "EX-1",
            format!(
                "the machine opened {opened} terminal(s) for {possible} request(s) that may have been upgraded ({refused} seen refused): a refused request started a shell"
            ),
        );
    }
}

/// Requests that reached the runner and were not seen refused (direct opens
/// and Workhorse's dials), and those seen refused.
fn possible_upgrades(events: &[Event]) -> (usize, usize) {
    let mut direct = std::collections::BTreeSet::new();
    let (mut possible, mut refused) = (0, 0);
    for e in events {
        match &e.what {
            What::Open {
                browser, target, ..
            } if target.direct_job().is_some() => {
                direct.insert(browser.clone());
                possible += 1;
            }
            What::Answer {
                browser, status, ..
            } if direct.remove(browser) && !matches!(status, 101 | 0) => {
                possible -= 1;
                refused += 1;
            }
            What::Authorize { verdict, .. } if verdict.allows_terminal() => possible += 1,
            What::RunnerLink {
                event: Link::Refused { .. },
                ..
            } => {
                possible -= 1;
                refused += 1;
            }
            _ => {}
        }
    }
    (possible, refused)
}

/// WS-2, WS-3: every data frame the runner sends has its subprotocol's type
/// (binary for `terminal.gitlab.com` and for none, base64 text for
/// `base64.terminal.gitlab.com`), and base64 input is decoded: the terminal
/// never echoes a typed line's base64 form. Reads `Answer` (the protocol of
/// each browser's connection), `Typed`, `Output` (a frame judged) and
/// `Malformed` (the browser's finding).
fn frames_follow_the_subprotocol(events: &[Event], found: &mut Judge) {
    use base64::Engine as _;
    const BASE64: &str = "base64.terminal.gitlab.com";
    let mut protocols: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    // Per base64 connection: the base64 forms of its typed input, its output.
    let mut typed: BTreeMap<&str, (Vec<String>, String)> = BTreeMap::new();
    let judge_echo = |browser: &str, (sent, output): (Vec<String>, String), found: &mut Judge| {
        for line in sent {
            found.ran("WS-3");
            if output.contains(&line) {
                violation(
                    found,
                    "frame-type-of-the-subprotocol",
                    "WS-3",
                    format!("{browser}'s terminal echoed its base64 input {line:?} undecoded: base64 input must be decoded before it reaches the terminal"),
                );
            }
        }
    };
    for e in events {
        match &e.what {
            What::Answer {
                browser,
                status: 101,
                protocol,
                ..
            } => {
                protocols.insert(browser, protocol.as_deref());
                if let Some(old) = typed.remove(browser.as_str()) {
                    judge_echo(browser, old, found);
                }
                if protocol.as_deref() == Some(BASE64) {
                    typed.insert(browser, Default::default());
                }
            }
            What::Typed { browser, text, .. } => {
                // Short input may show by chance; a line's base64 form will not.
                if let Some((sent, _)) = typed.get_mut(browser.as_str()).filter(|_| text.len() >= 6)
                {
                    sent.push(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
            What::Output { browser, text, .. } => {
                let base64 = protocols.get(browser.as_str()).copied().flatten() == Some(BASE64);
                found.ran(if base64 { "WS-3" } else { "WS-2" });
                if let Some((_, output)) = typed.get_mut(browser.as_str()) {
                    output.push_str(text);
                }
            }
            What::Malformed { browser, problem } => {
                let detail = format!("{browser} received {problem} at {}", at(e.at_ms));
                if e.spec.is_some_and(|s| s == "WS-3") {
                    violation(found, "frame-type-of-the-subprotocol", "WS-3", detail);
                } else {
                    violation(found, "frame-type-of-the-subprotocol", "WS-2", detail);
                }
            }
            _ => {}
        }
    }
    for (browser, connection) in typed {
        judge_echo(browser, connection, found);
    }
}

/// WS-5: while connected, what is typed reaches the shell and what it prints
/// reaches the browser, in order, exactly once. The typed input of a
/// connection is cut into lines at Enter, as the shell reads it (a paste and
/// its Enter may be messages of their own). Each `echo X` line must show `X`
/// as an output line at most once, and if a later one shows, every earlier
/// one showed before it. A line that shows with the right start must show
/// whole: a paste cut short in transit is run short, and its output says so.
fn output_in_order_exactly_once(events: &[Event], found: &mut Judge) {
    #[derive(Default)]
    struct Segment {
        commands: Vec<String>,
        output: String,
        /// Typed since the last Enter.
        pending: String,
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
                    seg.pending.push_str(text);
                    while let Some(enter) = seg.pending.find('\r') {
                        let line: String = seg.pending.drain(..=enter).collect();
                        let line = &line[..line.len() - 1];
                        // Control characters edit the line: not judged.
                        if let Some(args) = line
                            .strip_prefix("echo ")
                            .filter(|a| !a.chars().any(char::is_control))
                        {
                            seg.commands.push(args.to_string());
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
            found.ran("WS-5");
            if at.is_empty() {
                if let Some(ran) = ran_altered(&seg.output, line) {
                    violation(
                        found,
                        "input-whole",
                        "WS-5",
                        format!(
                            "{browser}: `echo {}` was typed as a line of {} bytes, and the shell ran one of {} bytes: input was lost in transit (a message is delivered whole or refused with close 1009)",
                            short(line),
                            "echo ".len() + line.len(),
                            "echo ".len() + ran
                        ),
                    );
                }
            }
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

/// The length of the output line that starts as `line`'s output would (its
/// first 16 characters, after a line break) but is not it: what the shell
/// ran instead. A line still being written (no line break yet) is not judged.
fn ran_altered(output: &str, line: &str) -> Option<usize> {
    let start: String = line.chars().take(16).collect();
    let needle = format!("\r\n{start}");
    output.match_indices(&needle).find_map(|(i, _)| {
        let rest = &output[i + 2..];
        let end = rest.find("\r\n")?;
        (rest[..end] != *line).then_some(end)
    })
}

/// LC-1, LC-6, LC-7 and "never hangs", for each job.
fn job_invariants(scenario: &Scenario, run: &Run, found: &mut Judge) {
    let events = &run.events;
    let lost_runner = scenario
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Crash { .. } | Action::Bounce { .. }));
    let reporting_delayed = scenario.steps.iter().any(cuts_workhorse_link);
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
        found.ran("LC-1");
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
        let timeout = job.timeout();
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
        let bound =
            taken + ((script_end + held).min(deadline) + SLACK + CLOSE_GRACE).as_millis() as u64;
        if !reporting_delayed {
            found.ran("LC-1");
        }
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
            found.ran("LC-6");
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
            found.ran("LC-7");
            if let Probe::Answers(status) = probe {
                violation(
                    found,
                    "session-removed",
                    "LC-7",
                    format!("job {job} had ended, yet its session URL still answered {status} (expected 404)"),
                );
            }
        }
        found.ran("LC-7");
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
    use super::{ran_altered, INVARIANTS};

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
