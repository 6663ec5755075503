//! Each job's end: when it may and must end (LC-1), its result (LC-6), its
//! session gone after it (LC-7), and no job left hanging.

use std::time::Duration;

use super::{at, cuts_workhorse_link, violation, Judge, CLOSE_GRACE, SLACK};
use crate::actors::session_probe::Probe;
use crate::scenario::{Action, ContainerStart, Executor, Scenario};
use crate::trace::What;
use crate::world::Run;

/// LC-1, LC-6, LC-7 and "never hangs", for each job.
pub(super) fn job_invariants(scenario: &Scenario, run: &Run, found: &mut Judge) {
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
        // of an ended job must answer 404 (RT-1: the session is gone). A
        // probe without an answer (the runner stopped, say) proves nothing
        // and is no check.
        for (job, probe) in &run.session_probes {
            if matches!(probe, Probe::Unknown(_)) {
                continue;
            }
            found.ran("LC-7");
            found.ran("RT-1");
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
pub(super) struct ScriptFacts {
    pub(super) seconds: Duration,
    exit_code: i32,
}

impl ScriptFacts {
    pub(super) fn of(lines: &[String]) -> Self {
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
