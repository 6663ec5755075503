//! Results like h2spec's: each case passes (perhaps only non-strictly, WS-6),
//! fails with expected against observed, or is skipped with a reason; for
//! people, JSON and JUnit.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::expect::Verdict;
use crate::report::{junit_suite, verdict_lines, JunitCase, JunitOutcome};

/// How many lines of the runner's output a failure shows.
pub const OUTPUT_LINES: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// Passed, but only in the reference's weaker way (WS-6).
    PassedNonStrict,
    Failed,
    Skipped,
}

/// One conformance case: a scenario, or an endpoint-level check.
#[derive(Clone, Debug, Serialize)]
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
    /// How it ran (e.g. how the scenario was scaled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The end of the runner's output, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner_output: Option<String>,
    #[serde(serialize_with = "secs")]
    pub wall: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
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
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was tested: the runner command, a running runner, or a session URL.
    pub runner: String,
    pub scale: f64,
    pub cases: Vec<CaseReport>,
    #[serde(serialize_with = "secs")]
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
        let failed: Vec<&CaseReport> = self.cases.iter().filter(|c| c.failed()).collect();
        if !failed.is_empty() {
            out.push_str("failed:\n");
            for case in failed {
                let _ = writeln!(out, "  {} [{}]", case.id, case.spec.join(" "));
            }
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn junit(&self) -> String {
        let cases: Vec<JunitCase> = self
            .cases
            .iter()
            .map(|c| JunitCase {
                name: format!("{} [{}]", c.id, c.spec.join(" ")),
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
            })
            .collect();
        junit_suite("session-harness conform", &cases)
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
        }
        None => {
            let _ = writeln!(out, " {:>6.2}s", case.wall.as_secs_f64());
        }
    }
    if case.status == Status::Skipped {
        return out;
    }
    if case.failed() {
        for note in &case.notes {
            let _ = writeln!(out, "      {note}");
        }
    }
    if let Some(error) = &case.error {
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
