//! The one result of a case and the one report of a run, whatever ran them:
//! `run` (scenarios in simulation), `conform` (a runner over real sockets),
//! a soak's rounds, `fuzz` (a case per SPEC rule its invariants check), and
//! `report merge` (shards' reports as one). A case
//! passes (perhaps only non-strictly, WS-6), fails with expected against
//! observed, or is skipped with a reason; [`human`] writes it for people,
//! [`json`] and `junit` for machines.

mod human;
mod junit;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actors::gitlab::profile::Profile;
use crate::expect::Verdict;
pub use human::{human, verdict_lines, OUTPUT_LINES};

/// What a case came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// Passed, but only in the reference's weaker way (WS-6).
    PassedNonStrict,
    Failed,
    Skipped,
}

impl Status {
    /// The status of a case that ran: the one place where a pass is called
    /// non-strict (its verdict holds notes of expectations met only the
    /// reference's way, WS-6) and where a snapshot that differs or is
    /// missing fails a case.
    pub fn of(error: Option<&str>, verdict: &Verdict, snapshot: Option<&Snapshot>) -> Status {
        let snapshot_fails = matches!(snapshot, Some(Snapshot::Differs { .. } | Snapshot::Missing));
        match (error, verdict.passed(), snapshot_fails) {
            (None, true, false) if verdict.non_strict.is_empty() => Status::Passed,
            (None, true, false) => Status::PassedNonStrict,
            _ => Status::Failed,
        }
    }
}

/// How a scenario's trace compares with its stored snapshot (`run` only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Snapshot {
    Matches,
    /// No snapshot yet: run with `--update`, then read and commit it.
    Missing,
    Differs {
        diff: String,
    },
    /// Written by `--update`.
    Written,
    /// Not compared (another seed than the scenario's own, or a file outside `scenarios/`).
    NotCompared,
}

/// One case: a scenario (simulated or over real sockets), an endpoint-level
/// check, or a soak's verdict on growth.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub spec: Vec<String>,
    pub status: Status,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The case could not be run to its end (the world could not be built,
    /// the runner never asked for a job...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub verdict: Verdict,
    /// Why it failed, when the cause is already established (no session, the
    /// runner exited, the job failed before its script): said first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_output: Option<String>,
    /// What only a simulated run has (`seed`, `simulated`, `snapshot`).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub simulation: Option<Simulation>,
    /// A soak's round, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<usize>,
    /// How often a fuzz campaign's lifecycles reached the case's rule.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub exercised: Option<Exercised>,
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
}

impl Case {
    pub fn skipped(id: &str, title: &str, spec: &[String], reason: String) -> Self {
        Case {
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
            simulation: None,
            round: None,
            exercised: None,
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
        Case {
            status: Status::of(error.as_deref(), &verdict, None),
            skipped: None,
            error,
            verdict,
            wall,
            ..Case::skipped(id, title, spec, String::new())
        }
    }

    /// The case with what its simulation showed: a missing or different
    /// snapshot fails it.
    pub fn simulated(mut self, simulation: Simulation) -> Self {
        let snapshot = Some(&simulation.snapshot);
        self.status = Status::of(self.error.as_deref(), &self.verdict, snapshot);
        self.simulation = Some(simulation);
        self
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Failed
    }

    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Passed | Status::PassedNonStrict)
    }
}

/// A simulated run of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    pub seed: u64,
    #[serde(with = "crate::duration::seconds")]
    pub simulated: Duration,
    /// The trace against its snapshot.
    pub snapshot: Snapshot,
}

/// A fuzz campaign's reach of one SPEC rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exercised {
    /// Lifecycles in which at least one check of the rule ran.
    pub lifecycles: u64,
    /// Its checks run, in all.
    pub checks: u64,
}

/// What a fuzz campaign (or its shards, merged) ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub seed: u64,
    /// Lifecycles run: up to and including the first that broke an invariant.
    pub lifecycles: u64,
    /// Their ops (browsers, operators, network faults), in all.
    pub steps: u64,
    pub faults_injected: u64,
    #[serde(with = "crate::duration::seconds")]
    pub simulated: Duration,
}

/// Which command a report is of: reports merge only with their own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `run`: scenarios in simulation against the built-in runner.
    Run,
    /// `conform`: a runner over real sockets.
    Conform,
    /// `conform --repeat`/`--soak`: rounds against one runner.
    Soak,
    /// `fuzz`: generated lifecycles in simulation, a case per SPEC rule.
    Fuzz,
}

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub command: Command,
    /// What was tested: the built-in runner, a runner command, a running
    /// runner, or a session URL.
    pub runner: String,
    /// What the runner said about itself in its first job request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Real seconds per scenario second, over real sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// What a fuzz campaign ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Campaign>,
    pub cases: Vec<Case>,
    /// Said once in the summary (e.g. a poll interval that set the run's pace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
}

/// A report as the end of a command: its summary, files and exit code.
pub trait Outcome {
    /// The closing lines.
    fn summary(&self) -> String;
    /// Nothing failed.
    fn passed(&self) -> bool;
    fn json(&self) -> String;
    fn junit(&self) -> String;
}

impl Report {
    fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }
}

impl Outcome for Report {
    /// `41 cases: 28 passed (2 non-strict), 1 failed, 12 skipped (80.1s)`
    /// (`, 1135s simulated` for `run`),
    /// what was tested, warnings, then the failures.
    fn summary(&self) -> String {
        use std::fmt::Write as _;
        let non_strict = self.count(Status::PassedNonStrict);
        let simulated: Option<Duration> = self
            .cases
            .iter()
            .filter_map(|c| c.simulation.as_ref().map(|s| s.simulated))
            .reduce(|a, b| a + b);
        let simulated = simulated.map_or(String::new(), |s| {
            format!(", {:.0}s simulated", s.as_secs_f64())
        });
        let (n, plural) = (
            self.cases.len(),
            if self.cases.len() == 1 { "" } else { "s" },
        );
        let mut out = format!(
            "\n{n} case{plural}: {} passed ({non_strict} non-strict), {} failed, {} skipped ({:.1}s{simulated})\nrunner under test: {}\n",
            self.count(Status::Passed) + non_strict,
            self.count(Status::Failed),
            self.count(Status::Skipped),
            self.wall.as_secs_f64(),
            self.runner,
        );
        if let Some(profile) = &self.profile {
            let _ = writeln!(out, "runner profile: {}", profile.line());
        }
        if let Some(c) = &self.campaign {
            let _ = writeln!(
                out,
                "fuzz campaign of seed {}: {} lifecycles, {} steps, {} faults injected, {:.0}s simulated",
                c.seed,
                c.lifecycles,
                c.steps,
                c.faults_injected,
                c.simulated.as_secs_f64()
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        let failed: Vec<&Case> = self.cases.iter().filter(|c| c.failed()).collect();
        if !failed.is_empty() {
            out.push_str("failed:\n");
            for case in failed {
                let _ = writeln!(out, "  {}", junit::name(case));
            }
        }
        out
    }

    fn passed(&self) -> bool {
        !self.cases.iter().any(Case::failed)
    }

    fn json(&self) -> String {
        json(self)
    }

    fn junit(&self) -> String {
        junit::suite(self)
    }
}

/// The one JSON writer: a report (or a report with more, a soak's) pretty-printed.
pub fn json(report: &impl Serialize) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The end of a command that made `outcome`: prints its summary, writes
/// `--json` and `--junit`; exit 0 when nothing failed, 1 on a failure, 2
/// when a file cannot be written.
pub fn conclude<O: Outcome>(outcome: &O, json: Option<&Path>, junit: Option<&Path>) -> ExitCode {
    print!("{}", outcome.summary());
    for (flag, path, text) in [
        ("--json", json, O::json as fn(&O) -> String),
        ("--junit", junit, O::junit),
    ] {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::write(path, text(outcome)) {
            eprintln!("error: {flag} {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A case that passed, checking EX-1, for tests of what reads cases.
#[cfg(test)]
pub(crate) fn passed_case(id: &str) -> Case {
    let spec = ["EX-1".to_string()];
    Case::judged(
        id,
        "t",
        &spec,
        Verdict::default(),
        None,
        Duration::from_secs(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str) -> Case {
        passed_case(id)
    }

    #[test]
    fn a_report_reads_back_from_its_json_with_what_only_a_simulation_has() {
        let simulated = case("unauthorized/no-token").simulated(Simulation {
            seed: 7,
            simulated: Duration::from_secs(123),
            snapshot: Snapshot::Differs {
                diff: "-a\n+b".into(),
            },
        });
        let report = Report {
            command: Command::Run,
            runner: "r".into(),
            profile: None,
            scale: None,
            campaign: None,
            cases: vec![simulated.clone(), case("endpoint/tls")],
            warnings: Vec::new(),
            wall: Duration::from_secs(2),
        };
        let text = report.json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &value["cases"][0];
        assert_eq!(
            first["status"], "failed",
            "a differing snapshot fails: {text}"
        );
        assert_eq!(
            (first["seed"].as_u64(), first["simulated"].as_f64()),
            (Some(7), Some(123.0))
        );
        assert_eq!(first["snapshot"]["outcome"], "differs");
        let read: Report = serde_json::from_str(&text).expect("a report reads back");
        assert_eq!(read.cases[0].simulation, simulated.simulation);
        assert_eq!(read.cases[1].simulation, None, "{text}");
        assert!(!read.passed());
    }

    #[test]
    fn a_pass_is_non_strict_only_with_notes_and_a_snapshot_that_matches() {
        let mut verdict = Verdict::default();
        assert_eq!(Status::of(None, &verdict, None), Status::Passed);
        assert_eq!(
            Status::of(None, &verdict, Some(&Snapshot::Written)),
            Status::Passed
        );
        assert_eq!(
            Status::of(None, &verdict, Some(&Snapshot::Missing)),
            Status::Failed
        );
        assert_eq!(Status::of(Some("no world"), &verdict, None), Status::Failed);
        verdict
            .non_strict
            .push("browser alice: no close frame (WS-6)".into());
        assert_eq!(Status::of(None, &verdict, None), Status::PassedNonStrict);
        assert_eq!(
            Status::of(None, &verdict, Some(&Snapshot::Matches)),
            Status::PassedNonStrict
        );
    }
}
