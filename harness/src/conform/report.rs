//! Results like h2spec's: each case passes (perhaps only non-strictly, WS-6),
//! fails with expected against observed, or is skipped with a reason; for
//! people, JSON and JUnit.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::profile::Profile;
use crate::expect::Verdict;
use crate::report::{junit_suite, verdict_lines, JunitCase, JunitOutcome};

/// How many lines of the runner's output a failure shows.
pub const OUTPUT_LINES: usize = 40;
/// Waits for the runner's job requests that add up to this much, and to a
/// quarter of the run, get a warning.
const POLL_DOMINATES: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// Passed, but only in the reference's weaker way (WS-6).
    PassedNonStrict,
    Failed,
    Skipped,
}

/// One conformance case: a scenario, or an endpoint-level check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseReport {
    pub id: String,
    pub title: String,
    pub spec: Vec<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The case could not be run to its end (e.g. the runner never asked for a job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub verdict: Verdict,
    /// Why it failed, when the cause is already established (no session, the
    /// runner exited, the job failed before its script): said first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// How long the runner took to ask for the case's job, after it was queued.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::seconds_opt"
    )]
    pub waited: Option<Duration>,
    /// How it ran (e.g. how the scenario was scaled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The end of the runner's output, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_output: Option<String>,
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
}

impl CaseReport {
    pub fn skipped(id: &str, title: &str, spec: &[String], reason: String) -> Self {
        CaseReport {
            id: id.into(),
            title: title.into(),
            spec: spec.to_vec(),
            status: Status::Skipped,
            skipped: Some(reason),
            error: None,
            verdict: Verdict::default(),
            cause: None,
            waited: None,
            notes: Vec::new(),
            runner_output: None,
            wall: Duration::ZERO,
        }
    }

    /// A case that ran: its status follows from `verdict` and `error`.
    pub fn judged(
        id: &str,
        title: &str,
        spec: &[String],
        verdict: Verdict,
        error: Option<String>,
        wall: Duration,
    ) -> Self {
        let status = match (&error, verdict.passed(), verdict.non_strict.is_empty()) {
            (None, true, true) => Status::Passed,
            (None, true, false) => Status::PassedNonStrict,
            _ => Status::Failed,
        };
        CaseReport {
            status,
            skipped: None,
            error,
            verdict,
            wall,
            ..CaseReport::skipped(id, title, spec, String::new())
        }
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// What was tested: the runner command, a running runner, or a session URL.
    pub runner: String,
    /// What the runner said about itself in its first job request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    pub scale: f64,
    pub cases: Vec<CaseReport>,
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(CaseReport::failed)
    }

    fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }

    /// `41 cases: 28 passed (2 non-strict), 1 failed, 12 skipped`, then the failures.
    pub fn summary(&self) -> String {
        let non_strict = self.count(Status::PassedNonStrict);
        let mut out = format!(
            "\n{} cases: {} passed ({non_strict} non-strict), {} failed, {} skipped ({:.1}s)\nrunner under test: {}\n",
            self.cases.len(),
            self.count(Status::Passed) + non_strict,
            self.count(Status::Failed),
            self.count(Status::Skipped),
            self.wall.as_secs_f64(),
            self.runner,
        );
        if let Some(profile) = &self.profile {
            let _ = writeln!(out, "runner profile: {}", profile.line());
        }
        if let Some(warning) = self.poll_warning() {
            let _ = writeln!(out, "warning: {warning}");
        }
        let failed: Vec<&CaseReport> = self.cases.iter().filter(|c| c.failed()).collect();
        if !failed.is_empty() {
            out.push_str("failed:\n");
            for case in failed {
                let _ = writeln!(out, "  {} [{}]", case.id, case.spec.join(" "));
            }
        }
        out
    }

    /// Said once, when waiting for the runner to ask for its jobs took a
    /// large part of the run: its poll interval, not the cases, set the pace.
    pub fn poll_warning(&self) -> Option<String> {
        let waited: Duration = self.cases.iter().filter_map(|c| c.waited).sum();
        let share = waited.as_secs_f64() / self.wall.as_secs_f64().max(1e-3);
        (waited >= POLL_DOMINATES && share >= 0.25).then(|| {
            let slowest = self.cases.iter().filter_map(|c| c.waited).max().unwrap_or_default();
            format!(
                "the runner took {:.0} s in all ({:.0}% of the run; {:.1} s at most) to ask for its jobs: \
                 its poll interval dominates the run (check_interval, or a sleep after an empty answer; \
                 the harness holds job requests for up to {} s when nothing is queued)",
                waited.as_secs_f64(),
                share * 100.0,
                slowest.as_secs_f64(),
                super::front::LONG_POLL.as_secs(),
            )
        })
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn junit(&self) -> String {
        let cases: Vec<JunitCase> = self.cases.iter().map(|c| junit_case(c, "")).collect();
        junit_suite("session-harness conform", &cases)
    }
}

/// `case` as a JUnit test case, its name after `prefix` (a soak's round).
pub fn junit_case(c: &CaseReport, prefix: &str) -> JunitCase {
    JunitCase {
        name: format!("{prefix}{} [{}]", c.id, c.spec.join(" ")),
        seconds: c.wall.as_secs_f64(),
        outcome: match c.status {
            Status::Passed | Status::PassedNonStrict => JunitOutcome::Passed,
            Status::Skipped => JunitOutcome::Skipped {
                reason: c.skipped.clone().unwrap_or_default(),
            },
            Status::Failed => JunitOutcome::Failed {
                message: c.title.clone(),
                details: human(c, 1, 1),
            },
        },
    }
}

/// The line of one case, and its details when it did not simply pass.
pub fn human(case: &CaseReport, index: usize, total: usize) -> String {
    let status = match case.status {
        Status::Passed => "PASS",
        Status::PassedNonStrict => "PASS (non-strict)",
        Status::Failed => "FAIL",
        Status::Skipped => "SKIP",
    };
    let width = total.to_string().len();
    let mut out = format!(
        "[{index:>width$}/{total}] {status:<4} {:<44} {:<22}",
        case.id,
        case.spec.join(" "),
    );
    match &case.skipped {
        Some(reason) => {
            let _ = writeln!(out, " {reason}");
            return out;
        }
        None => {
            let _ = write!(out, " {:>6.2}s", case.wall.as_secs_f64());
        }
    }
    if let Some(waited) = case.waited {
        let _ = write!(out, " (job taken after {:.2}s)", waited.as_secs_f64());
    }
    match (&case.cause, case.failed()) {
        (Some(cause), true) => {
            let _ = writeln!(out, " cause: {cause}");
        }
        _ => out.push('\n'),
    }
    if case.failed() {
        for note in &case.notes {
            let _ = writeln!(out, "      {note}");
        }
    }
    if let Some(error) = case
        .error
        .as_ref()
        .filter(|e| case.cause.as_ref() != Some(*e))
    {
        let _ = writeln!(out, "      error: {error}");
    }
    out.push_str(&verdict_lines(&case.verdict));
    if let Some(output) = &case.runner_output {
        let _ = writeln!(
            out,
            "      the runner's output (its last {OUTPUT_LINES} lines):"
        );
        for line in output.lines() {
            let _ = writeln!(out, "        | {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(waited: Option<Duration>) -> CaseReport {
        let mut case = CaseReport::judged(
            "s/x",
            "t",
            &[],
            Verdict::default(),
            None,
            Duration::from_secs(1),
        );
        case.waited = waited;
        case
    }

    #[test]
    fn a_poll_interval_that_dominates_the_run_gets_one_warning() {
        let report = |waits: &[u64], wall: u64| Report {
            runner: "r".into(),
            profile: None,
            scale: 0.01,
            cases: waits
                .iter()
                .map(|w| case(Some(Duration::from_secs(*w))))
                .collect(),
            wall: Duration::from_secs(wall),
        };
        let slow = report(&[40, 40, 0], 100);
        let warning = slow.poll_warning().expect("a warning");
        assert!(
            warning.contains("80 s in all (80% of the run; 40.0 s at most)"),
            "{warning}"
        );
        assert_eq!(slow.summary().matches("warning:").count(), 1);
        assert_eq!(report(&[1, 1, 1], 100).poll_warning(), None);
        assert_eq!(report(&[], 100).poll_warning(), None);
    }

    #[test]
    fn a_failure_says_its_cause_on_its_line_and_its_wait() {
        let mut failed = case(Some(Duration::from_millis(250)));
        failed.status = Status::Failed;
        failed.cause = Some("no session offered".into());
        failed.error = Some("no session offered".into());
        let text = human(&failed, 1, 9);
        let first = text.lines().next().unwrap();
        assert!(
            first.ends_with("(job taken after 0.25s) cause: no session offered"),
            "{first}"
        );
        assert!(
            !text.contains("error:"),
            "the cause is not repeated: {text}"
        );
    }
}
