//! A soak's report: the one report ([`crate::report`]) of every case of
//! every round (each with its round) and the verdicts on growth as the
//! cases `soak/fds` and `soak/rss`, with the rounds and the growth beside
//! it; a plain line per round (no carriage returns: CI logs and terminals
//! alike) and a closing summary of its own. JSON and JUnit are the one
//! report's writers.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::verdict::{mib, Growth};
use super::Round;
use crate::expect::{Failure, Verdict};
use crate::report::{self, Case, Outcome, Report};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoakReport {
    /// Every case of every round, in order (the runner's profile first),
    /// then `soak/fds` and `soak/rss`.
    #[serde(flatten)]
    pub report: Report,
    /// Whose figures these are (`pid 4242 (session-server)`), or why unknown.
    pub watched: String,
    pub rounds: Vec<Round>,
    /// From the first round's figures to the last's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
    /// Why there is no verdict on growth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjudged: Option<String>,
    /// The soak ended before its rounds or time were done: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
}

impl Outcome for SoakReport {
    /// The closing lines: cases, the verdict on growth, the failures by round.
    fn summary(&self) -> String {
        let ran = |r: &Round| r.passed + r.failed.len();
        let cases: usize = self.rounds.iter().map(ran).sum();
        let failed: usize = self.rounds.iter().map(|r| r.failed.len()).sum();
        let mut out = format!(
            "\nsoak: {} rounds in {:.1}s, {cases} cases run, {failed} failed\nrunner under test: {}; {}\n",
            self.rounds.len(),
            self.report.wall.as_secs_f64(),
            self.report.runner,
            self.watched,
        );
        if let Some(why) = &self.stopped_early {
            let _ = writeln!(out, "stopped early: {why}");
        }
        match (&self.growth, &self.unjudged) {
            (Some(growth), _) => {
                let _ = writeln!(out, "{}\n{}", growth.fds_line(), growth.rss_line());
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "growth not judged: {why}");
            }
            (None, None) => {}
        }
        for round in self.rounds.iter().filter(|r| !r.failed.is_empty()) {
            let _ = writeln!(out, "failed in round {}: {}", round.round, failures(round));
        }
        let _ = writeln!(
            out,
            "verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }

    /// No case failed, nothing leaked, and the runner lasted the soak.
    fn passed(&self) -> bool {
        self.report.passed() && self.stopped_early.is_none()
    }

    fn json(&self) -> String {
        report::json(self)
    }

    fn junit(&self) -> String {
        self.report.junit()
    }
}

/// The verdicts on descriptors and memory as cases: failed on a leak,
/// skipped (saying why) when there are no figures to judge.
pub fn growth_cases(growth: Option<&Growth>, unjudged: Option<&str>) -> [Case; 2] {
    const FDS: &str = "The runner's open descriptors come back to the first round's";
    const RSS: &str = "The runner's RSS grows by less than the ceiling";
    let judged = |id: &str, title: &str, line: String, leaked: bool| {
        let mut verdict = Verdict::default();
        let mut notes = Vec::new();
        match leaked {
            true => verdict.failures.push(Failure {
                check: format!("{id}: from the first round to the last"),
                expected: "no leak".into(),
                observed: line,
            }),
            false => notes.push(line),
        }
        Case {
            notes,
            ..Case::judged(id, title, &[], verdict, None, Duration::ZERO)
        }
    };
    match growth {
        Some(g) => [
            judged("soak/fds", FDS, g.fds_line(), g.fds_leaked()),
            judged("soak/rss", RSS, g.rss_line(), g.rss_leaked()),
        ],
        None => {
            let why = unjudged.unwrap_or_default().to_string();
            [
                Case::skipped("soak/fds", FDS, &[], why.clone()),
                Case::skipped("soak/rss", RSS, &[], why),
            ]
        }
    }
}

/// One round's line: `round 3 at 41.2s (12.0s): 30 passed, 1 failed
/// (endpoint/second-terminal EX-4), 12 skipped; fds 23 (+2); RSS 14.1 MiB (+0.4)`.
/// `first` is the first round's figures, the baseline.
pub fn round_line(round: &Round, first: Option<&Round>) -> String {
    let mut out = format!(
        "round {} at {:.1}s ({:.1}s): {} passed, {} failed",
        round.round,
        round.at.as_secs_f64(),
        round.wall.as_secs_f64(),
        round.passed,
        round.failed.len(),
    );
    if !round.failed.is_empty() {
        let _ = write!(out, " ({})", failures(round));
    }
    let _ = write!(out, ", {} skipped; ", round.skipped);
    let baseline = first.and_then(|f| f.sample).filter(|_| round.round > 1);
    match (round.sample, baseline) {
        (None, _) => out.push_str("fds and RSS unknown"),
        (Some(s), None) => {
            let _ = write!(out, "fds {}, RSS {} (the baseline)", s.fds, mib(s.rss_kib));
        }
        (Some(s), Some(b)) => {
            let _ = write!(
                out,
                "fds {} ({:+}), RSS {} ({:+.1} MiB)",
                s.fds,
                s.fds as i64 - b.fds as i64,
                mib(s.rss_kib),
                (s.rss_kib as f64 - b.rss_kib as f64) / 1024.0
            );
        }
    }
    out
}

/// `endpoint/second-terminal EX-4, webide/x WI-2`.
fn failures(round: &Round) -> String {
    let named: Vec<String> = round
        .failed
        .iter()
        .map(|f| format!("{} {}", f.id, f.spec.join(" ")))
        .collect();
    named.join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{sample::Sample, FailedCase};
    use super::*;

    fn round(n: usize, fds: u64, failed: &[&str]) -> Round {
        Round {
            round: n,
            at: Duration::from_secs(10 * n as u64),
            wall: Duration::from_secs(9),
            passed: 30,
            skipped: 12,
            failed: failed
                .iter()
                .map(|id| FailedCase {
                    id: id.to_string(),
                    spec: vec!["EX-4".into()],
                })
                .collect(),
            sample: Some(Sample {
                fds,
                rss_kib: 14_336,
            }),
        }
    }

    #[test]
    fn a_round_is_one_plain_line_against_the_first() {
        let first = round(1, 21, &[]);
        let third = round(3, 23, &["endpoint/second-terminal"]);
        let line = round_line(&third, Some(&first));
        assert_eq!(
            line,
            "round 3 at 30.0s (9.0s): 30 passed, 1 failed (endpoint/second-terminal EX-4), \
             12 skipped; fds 23 (+2), RSS 14.0 MiB (+0.0 MiB)"
        );
        assert!(round_line(&first, Some(&first)).ends_with("fds 21, RSS 14.0 MiB (the baseline)"));
        let unknown = Round {
            sample: None,
            ..first
        };
        assert!(round_line(&unknown, None).ends_with("fds and RSS unknown"));
        assert!(!line.contains('\r'));
    }

    #[test]
    fn a_soaks_json_and_junit_are_the_one_reports_with_rounds_and_growth() {
        let samples = [10, 20, 30].map(|fds| Sample {
            fds,
            rss_kib: 14_336,
        });
        let growth = Growth::of(&samples, 16).expect("three rounds");
        let in_round = |mut case: Case, r: usize| {
            case.round = Some(r);
            case
        };
        let passed = crate::report::passed_case;
        let skipped = Case::skipped("jobs/x", "t", &[], "needs docker".into());
        let mut cases = vec![passed("runner/job-request")];
        for r in 1..=2 {
            cases.push(in_round(passed("endpoint/no-token"), r));
            cases.push(in_round(skipped.clone(), r));
        }
        cases.extend(growth_cases(Some(&growth), None));
        let soak = SoakReport {
            report: crate::conform::report::report(
                crate::report::Command::Soak,
                "`runner`".into(),
                None,
                0.01,
                cases,
                Duration::from_secs(60),
            ),
            watched: "pid 1".into(),
            rounds: vec![round(1, 10, &[]), round(2, 20, &[])],
            growth: Some(growth),
            unjudged: None,
            stopped_early: None,
        };
        assert!(!soak.passed(), "a leak fails the soak");
        let junit = soak.junit();
        assert!(
            junit.contains("name=\"session-harness conform soak\""),
            "{junit}"
        );
        assert!(
            junit.contains("name=\"round 2: endpoint/no-token [EX-1]\""),
            "{junit}"
        );
        assert!(junit.contains("name=\"round 1: jobs/x\""), "{junit}");
        assert!(
            !junit.contains("round 2: jobs/x"),
            "a skip is reported once: {junit}"
        );
        assert!(
            junit.contains("name=\"soak/fds\" time=\"0.000\">\n    <failure"),
            "{junit}"
        );
        assert!(
            junit.contains("name=\"soak/rss\" time=\"0.000\"/>"),
            "{junit}"
        );
        let json: serde_json::Value = serde_json::from_str(&soak.json()).unwrap();
        assert_eq!(json["command"], "soak");
        assert_eq!(json["rounds"][1]["sample"]["fds"], 20);
        assert!(json["growth"].is_object(), "{json}");
        assert_eq!(json["cases"][3]["round"], 2);
        assert_eq!(json["cases"][5]["id"], "soak/fds");
    }
}
