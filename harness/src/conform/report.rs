//! What `conform` adds to the one report ([`crate::report`]): the report of
//! a run, with its warning when the runner's poll interval set its pace.

use std::time::Duration;

use crate::actors::gitlab::profile::Profile;
use crate::report::{Case, Command, Report};

/// Waits for the runner's job requests that add up to this much, and to a
/// quarter of the run, get a warning.
const POLL_DOMINATES: Duration = Duration::from_secs(10);

/// The report of `cases`, run against `runner` in `wall`.
pub fn report(
    command: Command,
    runner: String,
    profile: Option<Profile>,
    scale: f64,
    cases: Vec<Case>,
    wall: Duration,
) -> Report {
    let warnings = poll_warning(&cases, wall).into_iter().collect();
    Report {
        command,
        runner,
        profile,
        scale: Some(scale),
        campaign: None,
        cases,
        warnings,
        wall,
    }
}

/// Said once, when waiting for the runner to ask for its jobs took a
/// large part of the run: its poll interval, not the cases, set the pace.
fn poll_warning(cases: &[Case], wall: Duration) -> Option<String> {
    let waited: Duration = cases.iter().filter_map(|c| c.waited).sum();
    let share = waited.as_secs_f64() / wall.as_secs_f64().max(1e-3);
    (waited >= POLL_DOMINATES && share >= 0.25).then(|| {
        let slowest = cases.iter().filter_map(|c| c.waited).max().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Verdict;
    use crate::report::Outcome;

    fn case(waited: Option<Duration>) -> Case {
        let mut case = Case::judged(
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
        let report = |waits: &[u64], wall: u64| {
            let cases = waits
                .iter()
                .map(|w| case(Some(Duration::from_secs(*w))))
                .collect();
            report(
                Command::Conform,
                "r".into(),
                None,
                0.01,
                cases,
                Duration::from_secs(wall),
            )
        };
        let slow = report(&[40, 40, 0], 100);
        assert_eq!(slow.warnings.len(), 1);
        assert!(
            slow.warnings[0].contains("80 s in all (80% of the run; 40.0 s at most)"),
            "{}",
            slow.warnings[0]
        );
        assert_eq!(slow.summary().matches("warning:").count(), 1);
        assert!(report(&[1, 1, 1], 100).warnings.is_empty());
        assert!(report(&[], 100).warnings.is_empty());
    }
}
