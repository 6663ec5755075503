//! Why a scenario case failed, when the run already shows it: the runner
//! exited by itself, it offers no session (JOB-1), GitLab could give a browser
//! no terminal, or the job failed where its script should have succeeded.
//! Said in one line before the details, so that 40 cases failing for one
//! reason read as one reason.

use crate::actors::gitlab::profile::Profile;
use crate::scenario::{Action, JobState, Scenario};
use crate::trace::{Event, What};

/// The established cause of `scenario`'s failure, from what it observed.
/// `exited`: how the runner ended, if it did so before the harness stopped it.
pub fn of_scenario(
    scenario: &Scenario,
    events: &[Event],
    exited: Option<&str>,
    profile: Option<&Profile>,
) -> Option<String> {
    let signalled = scenario
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Signal { .. }));
    if let (Some(status), false) = (exited, signalled) {
        return Some(format!(
            "the runner exited by itself during the case ({status})"
        ));
    }
    // Opens and fetches (a Web IDE service through the proxy) both need the
    // job's session.
    let opens = scenario
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Open(_) | Action::Fetch { .. }));
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
        What::Injected { description } if description.is_unable() => {
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
        let expected = scenario.expect.job.get(&job.to_string())?.state;
        if state != "failed" || expected != Some(JobState::Success) {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{load_str, TEST_SCENARIO};
    use crate::trace::Injected;

    fn scenario() -> String {
        format!("{TEST_SCENARIO}[expect.job.1]\nstate = \"success\"\n")
            .replace("sleep 1", "sleep 5")
    }

    fn event(actor: &str, what: What) -> Event {
        Event {
            at_ms: 0,
            actor: actor.into(),
            spec: None,
            what,
        }
    }

    #[test]
    fn the_established_cause_comes_from_what_the_run_saw() {
        let s = load_str(&scenario(), Path::new("t.toml"), "t/t").unwrap();
        let taken = |session| {
            event(
                "gitlab",
                What::JobTaken {
                    job: 1,
                    runner: "r".into(),
                    session,
                    terminal: true,
                },
            )
        };
        let no_session = of_scenario(&s, &[taken(false)], None, None).unwrap();
        assert!(
            no_session.starts_with("no session offered (JOB-1)"),
            "{no_session}"
        );
        let exited = of_scenario(&s, &[taken(true)], Some("exit status: 1"), None).unwrap();
        assert!(exited.contains("exited by itself"), "{exited}");
        let refused = event(
            "alice",
            What::Injected {
                description: Injected::NoSession { job: 1 },
            },
        );
        assert_eq!(
            of_scenario(&s, &[taken(true), refused], None, None).as_deref(),
            Some("alice: cannot open job 1 directly: GitLab knows no session for it")
        );
        let failed = event(
            "gitlab",
            What::JobState {
                job: 1,
                state: "failed".into(),
                failure_reason: Some("runner_system_failure".into()),
                exit_code: None,
            },
        );
        let crashed = of_scenario(&s, &[taken(true), failed], None, None).unwrap();
        assert!(
            crashed.contains("empty log: it ended before its script ran"),
            "{crashed}"
        );
        assert_eq!(of_scenario(&s, &[taken(true)], None, None), None);
    }

    /// A Web IDE case only fetches its service through the proxy; without a
    /// session it fails for the same one cause as a terminal's.
    #[test]
    fn a_fetch_without_a_session_has_the_missing_session_for_its_cause() {
        let root = crate::catalogue::root();
        let scenarios = crate::catalogue::discover(&root, &[]).expect("the catalogue loads");
        let s = scenarios
            .iter()
            .find(|s| s.id == "webide/http-reaches-the-service")
            .expect("the scenario exists");
        assert!(!s
            .steps
            .iter()
            .any(|st| matches!(st.action, Action::Open(_))));
        let taken = event(
            "gitlab",
            What::JobTaken {
                job: s.jobs[0].id,
                runner: "r".into(),
                session: false,
                terminal: true,
            },
        );
        let cause = of_scenario(s, &[taken], None, None).unwrap_or_default();
        assert!(cause.starts_with("no session offered (JOB-1)"), "{cause:?}");
    }
}
