//! Reports: a line per scenario for people, JSON and JUnit for machines.

use std::fmt::Write as _;

use crate::expect::Verdict;
use crate::run::{CaseResult, Snapshot};

/// The progress line of one result, and its details when it failed.
pub fn human(result: &CaseResult, index: usize, total: usize) -> String {
    let status = if result.passed() {
        if result.verdict.non_strict.is_empty() {
            "PASS"
        } else {
            "PASS (non-strict)"
        }
    } else {
        "FAIL"
    };
    let width = total.to_string().len();
    let mut out = format!(
        "[{index:>width$}/{total}] {status:<4} {:<44} {:<22} {:>6.2}s wall {:>7.0}s simulated\n",
        result.id,
        result.spec.join(" "),
        result.wall.as_secs_f64(),
        result.simulated.as_secs_f64(),
    );
    if let Some(error) = &result.error {
        let _ = writeln!(out, "      error: {error}");
    }
    out.push_str(&verdict_lines(&result.verdict));
    match &result.snapshot {
        Snapshot::Missing => {
            let _ = writeln!(
                out,
                "      no snapshot yet: run with --update, read snapshots/{}.snap, commit it",
                result.id
            );
        }
        Snapshot::Differs { diff } => {
            let _ = writeln!(out, "      the trace differs from snapshots/{}.snap (review with `cargo insta review`, or --update):", result.id);
            for line in diff.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
        Snapshot::Written => {
            let _ = writeln!(
                out,
                "      snapshot written: read snapshots/{}.snap before committing it",
                result.id
            );
        }
        Snapshot::Matches | Snapshot::NotCompared => {}
    }
    out
}

/// Each failed expectation as expected against observed, then the non-strict notes.
pub fn verdict_lines(verdict: &Verdict) -> String {
    let mut out = String::new();
    for failure in &verdict.failures {
        let _ = writeln!(
            out,
            "      {}\n        expected: {}\n        observed: {}",
            failure.check, failure.expected, failure.observed
        );
    }
    for note in &verdict.non_strict {
        let _ = writeln!(out, "      non-strict: {note}");
    }
    out
}

pub fn summary(results: &[CaseResult], wall: std::time::Duration) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    let simulated: f64 = results.iter().map(|r| r.simulated.as_secs_f64()).sum();
    format!("{passed} passed, {failed} failed\n({} scenarios, {:.2}s wall, {simulated:.0}s simulated)\n", results.len(), wall.as_secs_f64())
}

pub fn json(results: &[CaseResult]) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// JUnit XML, one test case per scenario, named by its id and SPEC ids.
pub fn junit(suite: &str, results: &[CaseResult]) -> String {
    let cases: Vec<JunitCase> = results
        .iter()
        .map(|r| JunitCase {
            name: format!("{} [{}]", r.id, r.spec.join(" ")),
            seconds: r.wall.as_secs_f64(),
            outcome: if r.passed() {
                JunitOutcome::Passed
            } else {
                JunitOutcome::Failed {
                    message: r.title.clone(),
                    details: human(r, 1, 1),
                }
            },
        })
        .collect();
    junit_suite(suite, &cases)
}

/// One test case of a JUnit report.
pub struct JunitCase {
    pub name: String,
    pub seconds: f64,
    pub outcome: JunitOutcome,
}

pub enum JunitOutcome {
    Passed,
    Failed { message: String, details: String },
    Skipped { reason: String },
}

/// A JUnit test suite of `cases`.
pub fn junit_suite(suite: &str, cases: &[JunitCase]) -> String {
    let count = |f: fn(&JunitOutcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let failures = count(|o| matches!(o, JunitOutcome::Failed { .. }));
    let skipped = match count(|o| matches!(o, JunitOutcome::Skipped { .. })) {
        0 => String::new(),
        n => format!(" skipped=\"{n}\""),
    };
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\"{skipped} time=\"{time:.3}\">",
        xml(suite),
        cases.len()
    );
    for case in cases {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(suite),
            xml(&case.name),
            case.seconds
        );
        match &case.outcome {
            JunitOutcome::Passed => out.push_str("/>\n"),
            JunitOutcome::Failed { message, details } => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    xml(message),
                    xml(details)
                );
            }
            JunitOutcome::Skipped { reason } => {
                let _ = writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    xml(reason)
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
