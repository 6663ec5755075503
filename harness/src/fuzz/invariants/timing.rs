//! Lower bounds of SPEC's timed rules: nothing is refused, closed or finished
//! *earlier* than the rules allow. Each bound takes the runner's most
//! favourable timing (the job starts when GitLab hands it out, each phase takes
//! exactly its time), so a violation is one whatever the latencies.
//! Trace facts: JobTaken, JobState, direct Open/Answer, Ping, Closed, the
//! runner's closes; the scenario's prepare, container start, script, timeouts.

use super::facts::{millis, Facts, JobFacts};
use super::{at, violation, Judge, SAME_MOMENT};

/// EX-3's wait for the job to run, DK-1's for the container, WS-4's Ping interval.
const ATTACH_WAIT: u64 = 60_000;
const CONTAINER_WAIT: u64 = 15_000;
const PING_INTERVAL: u64 = 30_000;
/// How late after GitLab hands a job out the runner has surely started it
/// (polling, the job's first log lines).
const JOB_START: u64 = 5_000;

pub fn check(facts: &Facts, found: &mut Judge) {
    for job in &facts.jobs {
        refusals_not_early(facts, job, found);
        job_not_early(facts, job, found);
        timeout_not_early(facts, job, found);
    }
    pings_every_interval(facts, found);
}

/// EX-3: 503 only when the job did not run within 60 s of the request; DK-1:
/// 500 only when the container did not run within 15 s of the terminal's turn.
fn refusals_not_early(facts: &Facts, job: &JobFacts, found: &mut Judge) {
    let runs_by = job.taken + millis(job.prepare) + JOB_START;
    for request in facts
        .requests
        .iter()
        .filter(|r| r.job == job.id && r.own_token())
    {
        let Some((answered, status)) = request.answer else {
            continue;
        };
        if facts.stopped_by(answered) || answered + SAME_MOMENT >= job.earliest_script_end() {
            continue; // the terminal may be gone: any refusal is the job's end
        }
        let late_job = facts.obscured_from.is_some_and(|from| from <= runs_by);
        // A request that came while the job may not have run yet (or its
        // container) exercises the wait, whatever its answer.
        if request.opened <= runs_by {
            found.ran("EX-3");
        }
        let container_by = job.container_start.map(|start| runs_by + millis(start));
        if job.docker && container_by.is_none_or(|by| request.opened <= by) {
            found.ran("DK-1");
        }
        match status {
            503 => {
                // Refused before it waited 60 s, or though the job ran within them.
                let waited = answered + SAME_MOMENT >= request.opened + ATTACH_WAIT;
                let ran_in_time =
                    !late_job && runs_by + SAME_MOMENT <= request.opened + ATTACH_WAIT;
                if !waited || ran_in_time {
                    let why = if ran_in_time {
                        format!("though job {} ran by {}", job.id, at(runs_by))
                    } else {
                        "before it waited 60 s".to_string()
                    };
                    violation(
                        found,
                        "attach-wait",
                        "EX-3",
                        format!(
                            "{} opened at {} and got 503 at {}, {why}: a request waits up to 60 s for the job to run",
                            request.browser, at(request.opened), at(answered)
                        ),
                    );
                }
            }
            500 if job.docker => {
                // Refused before it waited 15 s (the container had not exited:
                // the script had not ended), or though the container ran within
                // them: the terminal's turn comes when the job runs (or at the
                // request, if later), the container `start` after the job runs.
                let waited = answered + SAME_MOMENT >= request.opened + CONTAINER_WAIT;
                let turn = request.opened.max(job.taken + millis(job.prepare));
                let running_by = container_by;
                let ran_in_time = running_by
                    .is_some_and(|by| !late_job && by + SAME_MOMENT <= turn + CONTAINER_WAIT);
                if !waited || ran_in_time {
                    let why = match running_by {
                        Some(by) if ran_in_time => {
                            format!("though job {}'s container ran by {}", job.id, at(by))
                        }
                        _ => "before it waited 15 s".to_string(),
                    };
                    violation(
                        found,
                        "container-wait",
                        "DK-1",
                        format!(
                            "{} opened at {} and got 500 at {}, {why}: a terminal waits up to 15 s for the build container",
                            request.browser, at(request.opened), at(answered)
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// LC-1, LC-5: a job does not finish before its script can have run (unless
/// cancelled or stopped).
fn job_not_early(facts: &Facts, job: &JobFacts, found: &mut Judge) {
    let Some((finished, _)) = &job.ended else {
        return;
    };
    if facts.stopped_by(*finished) {
        return;
    }
    found.ran("LC-1");
    let earliest = job.earliest_script_end();
    if *finished < earliest {
        violation(
            found,
            "job-not-early",
            "LC-1",
            format!(
                "job {} finished at {}, before its script could have ended ({})",
                job.id,
                at(*finished),
                at(earliest)
            ),
        );
    }
}

/// LC-1, LC-3: the runner times a terminal out no earlier than
/// `min(session_timeout, time left)` after the script's end.
fn timeout_not_early(facts: &Facts, job: &JobFacts, found: &mut Judge) {
    let earliest = job.earliest_timeout();
    for close in facts.closes.iter().filter(|c| c.job == job.id) {
        if !close.reason.starts_with("terminal session timed out") {
            continue;
        }
        found.ran("LC-1");
        if close.at < earliest {
            violation(
                found,
                "not-closed-early",
                "LC-1",
                format!(
                    "{}'s terminal of job {} timed out at {}, before min(session_timeout {}s, deadline) after the script's end allows ({})",
                    close.who,
                    job.id,
                    at(close.at),
                    job.session_timeout.as_secs(),
                    at(earliest)
                ),
            );
        }
    }
}

/// WS-4: a Ping every 30 s, no fewer and no more, on every direct connection
/// whose end the browser saw. The first comes 30 s after the relay starts (no
/// later than the browser's 101); each takes up to `SAME_MOMENT` to arrive.
fn pings_every_interval(facts: &Facts, found: &mut Judge) {
    for c in &facts.connections {
        let Some(until) = c.until.filter(|_| c.end_exact) else {
            continue;
        };
        let open = until - c.since;
        if open < PING_INTERVAL {
            continue;
        }
        found.ran("WS-4");
        let fewest = (open.saturating_sub(SAME_MOMENT) / PING_INTERVAL) as usize;
        let most = (open / PING_INTERVAL + 1) as usize;
        if c.pings < fewest || c.pings > most {
            violation(
                found,
                "ping-interval",
                "WS-4",
                format!(
                    "{} got {} Ping(s) in {} connected (from {} to {}); every 30 s gives {fewest} to {most}",
                    c.browser,
                    c.pings,
                    at(open),
                    at(c.since),
                    at(until)
                ),
            );
        }
    }
}
