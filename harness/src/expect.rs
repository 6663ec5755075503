//! Verdicts: a scenario's expectations held against what was observed.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::{BrowserExpect, Dur, JobExpect, Scenario};
use crate::trace::{Close, Event, What};

const BROWSER_TOLERANCE: Duration = Duration::from_secs(2);
const JOB_TOLERANCE: Duration = Duration::from_secs(5);

/// One expectation that did not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What was checked, e.g. `browser alice: closes`.
    pub check: String,
    pub expected: String,
    pub observed: String,
}

/// The outcome of checking a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub failures: Vec<Failure>,
    /// Expectations met only in the reference's weaker way (WS-6: no close frame).
    pub non_strict: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// How strictly closes are judged: the project's close frames, or also the
/// reference's bare TLS close (WS-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    Strict,
    AllowReferenceCloses,
}

pub fn check(scenario: &Scenario, events: &[Event], strictness: Strictness) -> Verdict {
    let mut verdict = Verdict::default();
    for (name, expect) in &scenario.expect.browser {
        check_browser(name, expect, events, strictness, &mut verdict);
    }
    for (id, expect) in &scenario.expect.job {
        check_job(id.parse().unwrap_or_default(), expect, events, &mut verdict);
    }
    verdict
}

fn fail(
    verdict: &mut Verdict,
    check: String,
    expected: impl Into<String>,
    observed: impl Into<String>,
) {
    verdict.failures.push(Failure {
        check,
        expected: expected.into(),
        observed: observed.into(),
    });
}

fn check_browser(
    name: &str,
    expect: &BrowserExpect,
    events: &[Event],
    strictness: Strictness,
    verdict: &mut Verdict,
) {
    let mine = |e: &&Event| e.actor == name;
    let answers: Vec<u16> = events
        .iter()
        .filter(mine)
        .filter_map(|e| match &e.what {
            What::Answer { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    if let Some(expected) = &expect.answers {
        if *expected != answers {
            fail(
                verdict,
                format!("browser {name}: answers"),
                format!("{expected:?}"),
                format!("{answers:?}"),
            );
        }
    }
    let output: String = events
        .iter()
        .filter(mine)
        .filter_map(|e| match &e.what {
            What::Output { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let mut rest = output.as_str();
    for needle in &expect.sees {
        match rest.find(needle.as_str()) {
            Some(i) => rest = &rest[i + needle.len()..],
            None => fail(
                verdict,
                format!("browser {name}: sees (in order)"),
                format!("{needle:?}"),
                describe_output(&output),
            ),
        }
    }
    for needle in &expect.never_sees {
        if output.contains(needle.as_str()) {
            fail(
                verdict,
                format!("browser {name}: never sees"),
                format!("no {needle:?}"),
                describe_output(&output),
            );
        }
    }
    let closes: Vec<(u64, &Close)> = events
        .iter()
        .filter(mine)
        .filter_map(|e| match &e.what {
            What::Closed { close, .. } => Some((e.at_ms, close)),
            _ => None,
        })
        .collect();
    if let Some(expected) = &expect.closes {
        let observed: Vec<String> = closes.iter().map(|(_, c)| c.describe()).collect();
        let matches = expected.len() == closes.len()
            && expected.iter().zip(&closes).all(|(want, (_, got))| {
                match close_matches(want, got) {
                    Match::Yes => true,
                    Match::NonStrict if strictness == Strictness::AllowReferenceCloses => {
                        verdict.non_strict.push(format!(
                            "browser {name}: expected close {want:?}, got no close frame (WS-6)"
                        ));
                        true
                    }
                    _ => false,
                }
            });
        if !matches {
            fail(
                verdict,
                format!("browser {name}: closes"),
                format!("{expected:?}"),
                format!("{observed:?}"),
            );
        }
    }
    if let Some(expected) = &expect.closed_at {
        let tolerance = expect.tolerance.map(|t| t.0).unwrap_or(BROWSER_TOLERANCE);
        let observed: Vec<Duration> = closes
            .iter()
            .map(|(at, _)| Duration::from_millis(*at))
            .collect();
        if !times_match(expected, &observed, tolerance) {
            fail(
                verdict,
                format!("browser {name}: closed at (± {})", Dur(tolerance)),
                format!(
                    "{:?}",
                    expected.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
                format!(
                    "{:?}",
                    observed
                        .iter()
                        .map(|d| Dur(*d).to_string())
                        .collect::<Vec<_>>()
                ),
            );
        }
    }
}

fn describe_output(output: &str) -> String {
    let tail: String = output
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{} bytes of output, ending {:?}", output.len(), tail)
}

enum Match {
    Yes,
    No,
    /// A server-decided end seen as no close frame: the reference's way (WS-6).
    NonStrict,
}

/// `want` is "CODE" or "CODE REASON" (1006: no close frame).
fn close_matches(want: &str, got: &Close) -> Match {
    let (code, reason) = want
        .split_once(' ')
        .map(|(c, r)| (c, Some(r)))
        .unwrap_or((want, None));
    let code: u16 = code.parse().unwrap_or(0);
    match got {
        Close::Abnormal if code == 1006 => Match::Yes,
        Close::Abnormal if code == 1001 => Match::NonStrict,
        Close::Abnormal => Match::No,
        Close::Frame { code: c, reason: r } => {
            if *c == code && reason.is_none_or(|want| want == r) {
                Match::Yes
            } else {
                Match::No
            }
        }
    }
}

fn times_match(expected: &[Dur], observed: &[Duration], tolerance: Duration) -> bool {
    expected.len() == observed.len()
        && expected
            .iter()
            .zip(observed)
            .all(|(e, o)| e.0.abs_diff(*o) <= tolerance)
}

fn check_job(id: u64, expect: &JobExpect, events: &[Event], verdict: &mut Verdict) {
    let who = format!("job {id}");
    let state = events.iter().find_map(|e| match &e.what {
        What::JobState {
            job,
            state,
            failure_reason,
            ..
        } if *job == id => Some((e.at_ms, state.clone(), failure_reason.clone())),
        _ => None,
    });
    if let Some(want) = &expect.state {
        let got = state
            .as_ref()
            .map(|(_, s, _)| s.clone())
            .unwrap_or_else(|| "running".into());
        if *want != got {
            fail(verdict, format!("{who}: state"), want.clone(), got);
        }
    }
    if let Some(want) = &expect.failure_reason {
        let got = state
            .as_ref()
            .and_then(|(_, _, r)| r.clone())
            .unwrap_or_else(|| "(none)".into());
        if *want != got {
            fail(verdict, format!("{who}: failure reason"), want.clone(), got);
        }
    }
    let log: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.what {
            What::JobLog { job, line } if *job == id => Some(line.as_str()),
            _ => None,
        })
        .collect();
    let mut from = 0;
    for want in &expect.log {
        match log[from..]
            .iter()
            .position(|line| line.contains(want.as_str()))
        {
            Some(i) => from += i + 1,
            None => fail(
                verdict,
                format!("{who}: log (in order)"),
                format!("a line with {want:?}"),
                format!("{:?}", &log[from.min(log.len())..]),
            ),
        }
    }
    for unwanted in &expect.no_log {
        if let Some(line) = log.iter().find(|l| l.contains(unwanted.as_str())) {
            fail(
                verdict,
                format!("{who}: no log"),
                format!("no line with {unwanted:?}"),
                format!("{line:?}"),
            );
        }
    }
    if let Some(want) = expect.finished_at {
        let tolerance = expect.tolerance.map(|t| t.0).unwrap_or(JOB_TOLERANCE);
        let got = state.as_ref().map(|(at, _, _)| Duration::from_millis(*at));
        if got.is_none_or(|got| got.abs_diff(want.0) > tolerance) {
            fail(
                verdict,
                format!("{who}: finished at (± {})", Dur(tolerance)),
                want.to_string(),
                got.map(|g| Dur(g).to_string())
                    .unwrap_or_else(|| "not finished".into()),
            );
        }
    }
    if let Some(want) = expect.session_offered {
        let got = events.iter().find_map(|e| match &e.what {
            What::JobTaken { job, session, .. } if *job == id => Some(*session),
            _ => None,
        });
        if got != Some(want) {
            fail(
                verdict,
                format!("{who}: session offered"),
                want.to_string(),
                got.map(|g| g.to_string())
                    .unwrap_or_else(|| "job not taken".into()),
            );
        }
    }
}
