//! Who gets a terminal: never two at once in one session (EX-4), never a
//! refused request, upgraded (EX-1, AU-2) or given a shell (EX-1).

use super::facts::millis;
use super::{at, cuts_workhorse_link, violation, Judge, SAME_MOMENT};
use crate::scenario::{Action, Open, Scenario, Step, Token, Via};
use crate::trace::{Event, Injected, Link, What};
use crate::world::Run;

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
pub(super) fn single_terminal(events: &[Event], scenario: &Scenario, found: &mut Judge) {
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

/// EX-1, AU-2: no refused request is upgraded. Whether a request should be
/// refused follows from the scenario: who the browser is, which token it sends.
pub(super) fn no_unauthorized_upgrade(scenario: &Scenario, events: &[Event], found: &mut Judge) {
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
pub(super) fn no_shell_for_refused_requests(run: &Run, found: &mut Judge) {
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
