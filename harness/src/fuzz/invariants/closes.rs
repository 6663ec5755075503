//! The ends the runner decides, and what the job log says of them: the close
//! code and reason fit the cause (WS-6, WS-7, DK-3, LC-4), the wait after the
//! script is logged with its duration (LC-1) and ends with `Terminal
//! disconnected` (LC-2) or the timeout (LC-3).
//! Trace facts: the runner's closes (direct Closed, Workhorse's "runner closed
//! the terminal"), JobLog lines, JobState; the scenario's cancel and signal
//! steps, executor, session_timeout and job timeout.

use super::facts::{Facts, JobFacts, RunnerClose, Stop};
use super::{at, violation, Judge};
use crate::duration::go_string;

const CONNECTED: &str = "Terminal is connected, will time out in ";
const DISCONNECTED: &str = "Terminal disconnected";
const TIMED_OUT: &str = "terminal session timed out (maximum time allowed - ";

pub fn check(facts: &Facts, found: &mut Judge) {
    for close in &facts.closes {
        close_fits_its_cause(facts, close, found);
    }
    for job in &facts.jobs {
        wait_is_logged(facts, job, found);
    }
}

/// WS-6 (project-defined codes), WS-7, DK-3, LC-4: each end the runner decides
/// has its code, and happens only for its cause.
fn close_fits_its_cause(facts: &Facts, close: &RunnerClose, found: &mut Judge) {
    let Some(job) = facts.job(close.job) else {
        return;
    };
    let reason = close.reason.as_str();
    let (rule, code, cause_held): (&str, u16, bool) =
        if reason.starts_with("terminal session timed out") {
            // (Behind a held link the container's close may not be answered in
            // time, and the runner then holds as for a shell: not judged here.)
            ("WS-6", 1001, !job.docker || facts.runner_obscured)
        } else if reason == "build container exited" {
            // A cancel or a stop ends the container too.
            let ended = close.at >= job.earliest_script_end() || facts.stopped_by(close.at);
            ("DK-3", 1001, job.docker && ended)
        } else if reason == "job canceled" {
            (
                "LC-4",
                1001,
                facts
                    .stops
                    .iter()
                    .any(|(t, how)| *t <= close.at && *how == Stop::Cancel),
            )
        } else if reason == "runner shutting down" {
            (
                "LC-4",
                1001,
                facts
                    .stops
                    .iter()
                    .any(|(t, how)| *t <= close.at && matches!(how, Stop::Signal(_))),
            )
        } else if reason == "shell exited" {
            ("WS-7", 1000, true)
        } else {
            return; // protocol and robustness closes (WS-8) are checked by their scenarios
        };
    found.ran(rule);
    let described = format!("{} {reason}", close.code);
    let problem = if close.code != code {
        Some(format!("its close code is {}, not {code}", close.code))
    } else if !cause_held {
        Some(match rule {
            "WS-6" => "a docker job's terminal is never held after the script (DK-3)".to_string(),
            "DK-3" => "only docker's container exits, and not before the script ends (or a cancel)"
                .to_string(),
            _ => "nothing in the lifecycle caused it".to_string(),
        })
    } else {
        None
    };
    let Some(problem) = problem else { return };
    let detail = format!(
        "{}'s terminal of job {} closed at {} with `{described}`: {problem}",
        close.who,
        job.id,
        at(close.at)
    );
    match rule {
        "WS-6" => violation(found, "close-code", "WS-6", detail),
        "DK-3" => violation(found, "container-exit-close", "DK-3", detail),
        "LC-4" => violation(found, "abort-close", "LC-4", detail),
        _ => violation(found, "shell-exit-close", "WS-7", detail),
    }
}

/// LC-1..3: the wait after the script is logged with the duration
/// `min(session_timeout, time left)`, and ends in the log with `Terminal
/// disconnected` or the timeout of the same duration (or the job's cancel or
/// stop). A terminal the runner timed out has the timeout in the log.
fn wait_is_logged(facts: &Facts, job: &JobFacts, found: &mut Judge) {
    let Some((finished, _)) = &job.ended else {
        return; // the log may not have arrived
    };
    let lines: Vec<&str> = job.log.iter().map(|(_, l)| l.as_str()).collect();
    let waited = lines
        .iter()
        .position(|l| l.starts_with(CONNECTED))
        .map(|i| (i, duration_of(lines[i], CONNECTED)));
    let timed_out = lines
        .iter()
        .find(|l| l.starts_with(TIMED_OUT))
        .map(|l| duration_of(l, TIMED_OUT));
    if let Some((i, waited)) = &waited {
        found.ran("LC-1");
        if let Some(expected) = job.clear_wait() {
            if *waited != go_string(expected) {
                violation(
                    found,
                    "wait-duration",
                    "LC-1",
                    format!(
                        "job {}'s log says `{CONNECTED}{waited}...`; its session_timeout is {}s, well within the time left: {}",
                        job.id,
                        job.session_timeout.as_secs(),
                        go_string(expected)
                    ),
                );
            }
        }
        found.ran("LC-2");
        let ended_by = lines[i + 1..].iter().find(|l| {
            **l == DISCONNECTED || l.starts_with(TIMED_OUT) || l.starts_with("ERROR: Job failed")
        });
        if ended_by.is_none() && !facts.runner_obscured && !facts.stopped_by(*finished) {
            violation(
                found,
                "wait-end-logged",
                "LC-2",
                format!(
                    "job {} waited for its terminal (`{CONNECTED}{waited}...`) and finished at {} with neither `{DISCONNECTED}` nor the timeout in its log",
                    job.id,
                    at(*finished)
                ),
            );
        }
    }
    let timeout_closes = facts
        .closes
        .iter()
        .filter(|c| c.job == job.id && c.reason.starts_with(TIMED_OUT))
        .count();
    if timeout_closes > 0 && !facts.runner_obscured {
        found.ran("LC-3");
        let logged = match (&waited, &timed_out) {
            (Some((_, waited)), Some(timed_out)) => waited == timed_out,
            _ => false,
        };
        if !logged {
            violation(
                found,
                "timeout-logged",
                "LC-3",
                format!(
                    "job {}'s terminal was timed out, yet its log lacks `{CONNECTED}<d>...` and `{TIMED_OUT}<d>)` with the same duration (log: {:?}, {:?})",
                    job.id,
                    waited.as_ref().map(|(_, d)| d.as_str()),
                    timed_out.as_deref()
                ),
            );
        }
    }
}

/// The duration a log line states after `prefix` (`6s...`, `30m0s)`).
fn duration_of(line: &str, prefix: &str) -> String {
    line[prefix.len()..]
        .trim_end_matches("...")
        .trim_end_matches(')')
        .to_string()
}
