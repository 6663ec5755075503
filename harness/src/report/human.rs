//! A case for people: one line (status, id, SPEC ids, times, the cause of
//! a failure), then what did not simply pass: expected against observed,
//! non-strict notes, the snapshot's diff, the runner's output.

use std::fmt::Write as _;

use super::{Case, Snapshot, Status};
use crate::expect::Verdict;

/// How many lines of the runner's output a failure shows.
pub const OUTPUT_LINES: usize = 40;

/// The line of case `index` of `total`, and its details when it did not simply pass.
pub fn human(case: &Case, index: usize, total: usize) -> String {
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
    if let Some(reason) = &case.skipped {
        let _ = writeln!(out, " {reason}");
        return out;
    }
    let _ = write!(out, " {:>6.2}s", case.wall.as_secs_f64());
    if let Some(simulation) = &case.simulation {
        let simulated = simulation.simulated.as_secs_f64();
        let _ = write!(out, " wall {simulated:>7.0}s simulated");
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
    if let Some(simulation) = &case.simulation {
        out.push_str(&snapshot_lines(&simulation.snapshot, &case.id));
    }
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

/// What to do about the snapshot of scenario `id`.
fn snapshot_lines(snapshot: &Snapshot, id: &str) -> String {
    let mut out = String::new();
    match snapshot {
        Snapshot::Missing => {
            let _ = writeln!(
                out,
                "      no snapshot yet: run with --update, read snapshots/{id}.snap, commit it"
            );
        }
        Snapshot::Differs { diff } => {
            let _ = writeln!(out, "      the trace differs from snapshots/{id}.snap (review with `cargo insta review`, or --update):");
            for line in diff.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
        Snapshot::Written => {
            let _ = writeln!(
                out,
                "      snapshot written: read snapshots/{id}.snap before committing it"
            );
        }
        Snapshot::Matches | Snapshot::NotCompared => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Simulation;
    use super::*;

    #[test]
    fn a_failure_says_its_cause_on_its_line_and_its_wait() {
        let mut failed = Case::judged(
            "s/x",
            "t",
            &[],
            Verdict::default(),
            Some("no session offered".into()),
            Duration::from_secs(1),
        );
        failed.waited = Some(Duration::from_millis(250));
        failed.cause = Some("no session offered".into());
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

    #[test]
    fn a_simulated_case_says_its_wall_and_simulated_time_and_its_snapshot() {
        let case = Case::judged(
            "f/x",
            "t",
            &["EX-1".into()],
            Verdict::default(),
            None,
            Duration::from_millis(120),
        )
        .simulated(Simulation {
            seed: 1,
            simulated: Duration::from_secs(300),
            snapshot: Snapshot::Missing,
        });
        let text = human(&case, 3, 12);
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("[ 3/12] FAIL f/x "), "{first}");
        assert!(
            first.ends_with("  0.12s wall     300s simulated"),
            "{first}"
        );
        assert!(
            text.contains("no snapshot yet: run with --update, read snapshots/f/x.snap"),
            "{text}"
        );
    }
}
