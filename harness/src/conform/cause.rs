//! Why a scenario case failed, when the run already shows it: the runner
//! exited by itself, it offers no session (JOB-1), GitLab could give a browser
//! no terminal, or the job failed where its script should have succeeded.
//! Said in one line before the details, so that 40 cases failing for one
//! reason read as one reason.

use super::profile::Profile;
use crate::scenario::Scenario;
use crate::trace::{Event, What};

/// The established cause of `scenario`'s failure, from what it observed.
/// `exited`: how the runner ended, if it did so before the harness stopped it.
pub fn of_scenario(
    scenario: &Scenario,
    events: &[Event],
    exited: Option<&str>,
    profile: Option<&Profile>,
) -> Option<String> {
    let signalled = scenario.steps.iter().any(|s| s.action == "signal");
    if let (Some(status), false) = (exited, signalled) {
        return Some(format!(
            "the runner exited by itself during the case ({status})"
        ));
    }
    let opens = scenario.steps.iter().any(|s| s.action == "open");
    let sessionless = events.iter().find_map(|e| match &e.what {
        What::JobTaken {
            job,
            session: false,
            ..
        } if scenario.runner.session_server && opens => Some(*job),
        _ => None,
    });
    if let Some(job) = sessionless {
        return Some(profile.and_then(Profile::no_terminal).unwrap_or_else(|| {
            format!(
                "no session offered (JOB-1): the runner took job {job} without a `session` object"
            )
        }));
    }
    let refused = events.iter().find_map(|e| match &e.what {
        What::Injected { description } if description.starts_with("cannot ") => {
            Some(format!("{}: {description}", e.actor))
        }
        _ => None,
    });
    if refused.is_some() {
        return refused;
    }
    failed_job(scenario, events)
}

/// A job that failed where the scenario expects success: with its reason and
/// the end of its log (none at all: it crashed before its script).
fn failed_job(scenario: &Scenario, events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| {
        let What::JobState {
            job,
            state,
            failure_reason,
            ..
        } = &e.what
        else {
            return None;
        };
        let expected = scenario.expect.job.get(&job.to_string())?.state.as_deref();
        if state != "failed" || expected != Some("success") {
            return None;
        }
        let reason = failure_reason.as_deref().unwrap_or("no failure_reason");
        let last = events.iter().rev().find_map(|l| match &l.what {
            What::JobLog { job: j, line } if j == job => Some(line.clone()),
            _ => None,
        });
        Some(match last {
            Some(line) => format!(
                "job {job} failed ({reason}) where its script should succeed; its log ends {line:?}"
            ),
            None => format!(
                "job {job} failed ({reason}) with an empty log: it ended before its script ran"
            ),
        })
    })
}
