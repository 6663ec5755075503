//! The one judge of a scenario's run: its expectations ([`expect`]) and, when
//! the scenario says `invariants = true` (the regressions the fuzzer writes),
//! SPEC's lifecycle invariants ([`invariants`]), merged into one verdict.
//! `run`, `cargo test` (`tests/scenarios.rs`) and `conform` reach a scenario's
//! verdict only through [`verdict`], so a committed regression is judged the
//! same way wherever it runs.
//!
//! How strictly: [`SIMULATED`] (exact) or [`real`] (over real sockets: the
//! reference's missing close frames pass non-strictly, WS-6, and texts'
//! durations within a tolerance). The endpoint-level cases of `conform` judge
//! a close the same way ([`expect::missing_close_frame`]); a case's status,
//! non-strict or not, is [`crate::report::Status::of`] its verdict.

use std::time::Duration;

use crate::expect::{self, Judging, Strictness, Verdict};
use crate::fuzz::invariants;
use crate::scenario::Scenario;
use crate::trace::Event;
use crate::world::Run;

/// Simulated time is exact: closes as the project sends them, texts as written.
pub const SIMULATED: Judging = Judging {
    strictness: Strictness::Strict,
    text_durations: None,
};

/// Over real sockets: a runner may end a terminal without a close frame, as
/// the reference does (WS-6: a non-strict pass), and a Go duration in a text
/// may be off by `text_durations` (a wait capped by a deadline is not a whole
/// number in real time).
pub fn real(text_durations: Duration) -> Judging {
    Judging {
        strictness: Strictness::AllowReferenceCloses,
        text_durations: Some(text_durations),
    }
}

/// What a run of a scenario left to judge.
#[derive(Clone, Copy)]
pub enum Observed<'a> {
    /// A simulated run: its events, and the runner's machine and sessions as
    /// the simulation sees them (what the invariants read).
    Simulated(&'a Run),
    /// A run over real sockets: its events only. The invariants are not
    /// checked there: they count the terminals the runner's machine opened,
    /// which only the simulation sees (the scenarios that ask for them are
    /// generated lifecycles with simulated faults, skipped by `conform`).
    Real(&'a [Event]),
}

/// `scenario`'s verdict on what was observed.
pub fn verdict(scenario: &Scenario, observed: Observed<'_>, judging: Judging) -> Verdict {
    let events = match observed {
        Observed::Simulated(run) => &run.events[..],
        Observed::Real(events) => events,
    };
    let mut verdict = expect::check_with(scenario, events, judging);
    if let (true, Observed::Simulated(run)) = (scenario.invariants, observed) {
        verdict.failures.extend(
            invariants::check(scenario, run)
                .iter()
                .map(invariants::Violation::failure),
        );
    }
    verdict
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{load_str, TEST_SCENARIO};

    /// A committed regression: job 1 and no step, its invariants asked for.
    fn regression() -> String {
        let without_steps = TEST_SCENARIO.split("[[step]]").next().unwrap_or_default();
        format!("invariants = true\n{without_steps}")
    }

    /// A run in which job 1 was never taken nor ended: no expectation says
    /// anything of it, the invariant `job-ends` (LC-1) does.
    fn silent_run() -> Run {
        Run {
            events: Vec::new(),
            simulated: Duration::from_secs(60),
            terminals: Default::default(),
            session_probes: Vec::new(),
        }
    }

    #[test]
    fn a_regression_that_asks_for_invariants_fails_on_a_broken_one() {
        let scenario = load_str(
            &regression(),
            Path::new("regressions/r.toml"),
            "regressions/r",
        )
        .unwrap();
        let run = silent_run();
        let verdict = verdict(&scenario, Observed::Simulated(&run), SIMULATED);
        assert!(
            verdict
                .failures
                .iter()
                .any(|f| f.check == "invariant job-ends [LC-1]"),
            "{verdict:?}"
        );
    }

    #[test]
    fn invariants_are_checked_only_when_asked_and_only_in_simulation() {
        let asked = load_str(
            &regression(),
            Path::new("regressions/r.toml"),
            "regressions/r",
        )
        .unwrap();
        let not_asked = load_str(
            &regression().replace("invariants = true\n", ""),
            Path::new("regressions/r.toml"),
            "regressions/r",
        )
        .unwrap();
        let run = silent_run();
        assert!(verdict(&not_asked, Observed::Simulated(&run), SIMULATED).passed());
        assert!(verdict(&asked, Observed::Real(&run.events), SIMULATED).passed());
    }
}
