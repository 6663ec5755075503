//! Property-based fuzzing of session lifecycles.
//!
//! proptest generates whole lifecycles ([`lifecycle`]); each runs in the
//! simulated world and is checked against the invariants of SPEC
//! ([`invariants`]). A failure is shrunk to a minimal lifecycle, printed, and
//! written as a scenario under `scenarios/regressions/` that `session-harness
//! run` replays. Every case has its own seed, from the campaign's seed and its
//! index, so `replay --seed S` reruns one, and the campaign's verdicts are the
//! same on any number of workers and split into any shards (`campaign`).

mod campaign;
pub mod coverage;
pub mod invariants;
pub mod lifecycle;
mod progress;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use session_server::faults::Fault;

use crate::scenario::Scenario;
use crate::shard::Shard;
use crate::world;
pub use campaign::fuzz;
use coverage::Coverage;
use invariants::{Judge, Violation};
use lifecycle::Lifecycle;
pub use progress::Progress;

/// What to fuzz.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cases in the whole campaign (all shards); `None`: until `duration`.
    pub cases: Option<u64>,
    /// Stop taking new cases after this wall time.
    pub duration: Option<Duration>,
    pub seed: u64,
    pub max_steps: usize,
    /// Test-only bugs switched on in the runner (feature `fault-injection`).
    pub faults: Vec<Fault>,
    /// Where regressions are written; `None`: not written.
    pub regressions: Option<PathBuf>,
    pub progress: Progress,
    /// Workers, each on a thread of its own.
    pub jobs: usize,
    /// This run's part of the campaign's cases.
    pub shard: Shard,
}

impl Options {
    /// `cases` lifecycles from `seed`, on one worker, quietly.
    pub fn new(cases: u64, seed: u64) -> Options {
        Options {
            cases: Some(cases),
            duration: None,
            seed,
            max_steps: 12,
            faults: Vec::new(),
            regressions: None,
            progress: Progress::Off,
            jobs: 1,
            shard: Shard::WHOLE,
        }
    }
}

/// A lifecycle that broke an invariant, after shrinking.
#[derive(Debug)]
pub struct Found {
    /// 1-based index of the case that first failed.
    pub case: u64,
    pub case_seed: u64,
    pub violations: Vec<Violation>,
    pub minimal: Lifecycle,
    pub shrink_steps: u64,
    pub written: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Summary {
    /// Cases run, up to and including the first failure.
    pub cases: u64,
    pub steps: u64,
    pub faults_injected: u64,
    pub model_states: usize,
    /// Per SPEC rule: the cases that exercised it, the checks run.
    pub coverage: Coverage,
    pub simulated: Duration,
    /// Wall time of the lifecycles run, shrinking excluded.
    pub wall: Duration,
    /// Workers that ran them.
    pub jobs: usize,
    pub found: Option<Found>,
}

/// One case in this many is run twice to check that it replays identically.
const DETERMINISM_SAMPLE: u64 = 25;

fn determinism(case: &Lifecycle, first: &world::Run, faults: &[Fault]) -> Option<Violation> {
    let (_, again, _) = check(case, "determinism", faults);
    let same = again
        .as_ref()
        .is_ok_and(|again| again.events == first.events);
    (!same).then(|| Violation {
        invariant: "deterministic",
        spec: "-",
        detail: "the same seed gave another trace".into(),
    })
}

/// The seed of case `index` of a run seeded `seed`.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    // splitmix64: well spread, and stable across versions.
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn runner_for(case_seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&case_seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// The lifecycle of one case seed, as a value tree that can shrink.
pub fn generate(case_seed: u64, max_steps: usize) -> impl ValueTree<Value = Lifecycle> {
    lifecycle::lifecycle(max_steps)
        .new_tree(&mut runner_for(case_seed))
        .expect("the strategy has no filters")
}

/// The lifecycle of one case seed.
pub fn lifecycle_of(case_seed: u64, max_steps: usize) -> Lifecycle {
    generate(case_seed, max_steps).current()
}

/// Runs `lifecycle` with `faults` switched on; the scenario, what was seen, what broke.
pub fn check(
    lifecycle: &Lifecycle,
    name: &str,
    faults: &[Fault],
) -> (Scenario, anyhow::Result<world::Run>, Vec<Violation>) {
    let (scenario, run, judge) = judged(lifecycle, name, faults);
    (scenario, run, judge.found)
}

/// As [`check`], with the checks run per SPEC rule.
fn judged(
    lifecycle: &Lifecycle,
    name: &str,
    faults: &[Fault],
) -> (Scenario, anyhow::Result<world::Run>, Judge) {
    let scenario = generated(lifecycle, name);
    session_server::faults::set_for_thread(faults);
    let run = world::simulate(&scenario, scenario.seed);
    session_server::faults::set_for_thread(&[]);
    let judge = match &run {
        Ok(run) => invariants::judge(&scenario, run),
        Err(e) => Judge {
            found: vec![Violation {
                invariant: "runs",
                spec: "-",
                detail: format!("{e:#}"),
            }],
            ..Judge::default()
        },
    };
    (scenario, run, judge)
}

/// The scenario of `lifecycle`, as its regression file loads (a test holds
/// them equal: `a_generated_scenario_is_what_its_file_loads`), built without
/// the TOML round trip, which cost a case as much as its TLS handshakes.
fn generated(lifecycle: &Lifecycle, name: &str) -> Scenario {
    let mut scenario = lifecycle.to_scenario(name);
    scenario.path = GENERATED.into();
    scenario
}

const GENERATED: &str = "generated.toml";

pub fn to_toml(scenario: &Scenario) -> String {
    toml::to_string(scenario).expect("scenarios serialize")
}

/// proptest's shrinking loop: simplify while it still fails, else step back.
fn shrink(
    tree: &mut impl ValueTree<Value = Lifecycle>,
    mut violations: Vec<Violation>,
    faults: &[Fault],
) -> (Lifecycle, Vec<Violation>, u64) {
    let mut minimal = tree.current();
    let mut steps = 0;
    let mut budget = 2_000;
    while budget > 0 && tree.simplify() {
        budget -= 1;
        loop {
            steps += 1;
            let candidate = tree.current();
            let (_, _, found) = check(&candidate, "shrinking", faults);
            if !found.is_empty() {
                minimal = candidate;
                violations = found;
                break;
            }
            if !tree.complicate() {
                break;
            }
        }
    }
    (minimal, violations, steps)
}

fn write_regression(
    dir: &Path,
    lifecycle: &Lifecycle,
    name: &str,
    faults: &[Fault],
    violations: &[Violation],
) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{name}.toml"));
    let mut header =
        String::from("# Written by `session-harness fuzz`: a minimal lifecycle that broke\n");
    for v in violations {
        header.push_str(&format!("#   {v}\n"));
    }
    if !faults.is_empty() {
        let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        header.push_str(&format!(
            "# found with the test-only faults: --fault {}\n",
            names.join(" --fault ")
        ));
        header.push_str(&format!(
            "# replay: session-harness run --fault {} {}\n",
            names.join(" --fault "),
            path.display()
        ));
    } else {
        header.push_str(&format!(
            "# replay: session-harness run {}\n",
            path.display()
        ));
    }
    let scenario = lifecycle.to_scenario(name);
    std::fs::write(&path, format!("{header}\n{}", to_toml(&scenario))).ok()?;
    Some(path)
}

/// The summary, for people.
pub fn describe(summary: &Summary) -> String {
    let mut out = format!(
        "{} lifecycles, {} steps, {} faults injected, {} distinct model states; {:.0}s simulated in {:.2}s on {} worker{} ({:.0} lifecycles/s)\n",
        summary.cases,
        summary.steps,
        summary.faults_injected,
        summary.model_states,
        summary.simulated.as_secs_f64(),
        summary.wall.as_secs_f64(),
        summary.jobs,
        if summary.jobs == 1 { "" } else { "s" },
        summary.cases as f64 / summary.wall.as_secs_f64().max(1e-9),
    );
    out.push_str(&summary.coverage.describe(summary.cases));
    match &summary.found {
        None => out.push_str("no invariant broken\n"),
        Some(found) => {
            let lines = report::FoundLines::of(found);
            out.push_str(&format!("FAILED at {}\n", lines.case));
            for v in &found.violations {
                out.push_str(&format!("  {v}\n"));
            }
            for op in &lines.ops {
                out.push_str(&format!("  {op}\n"));
            }
            if let Some(written) = &lines.written {
                out.push_str(&format!("{written}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    /// The scenario as its regression file would load: the file is the truth.
    fn as_loaded(scenario: &Scenario) -> Scenario {
        let text = to_toml(scenario);
        scenario::load_str(&text, Path::new(GENERATED), &scenario.id)
            .unwrap_or_else(|e| panic!("a generated lifecycle does not load back: {e}\n{text}"))
    }

    #[test]
    fn a_generated_scenario_is_what_its_file_loads() {
        for index in 0..300 {
            let lifecycle = lifecycle_of(case_seed(7, index), 12);
            let direct = generated(&lifecycle, "seed-x");
            let loaded = as_loaded(&lifecycle.to_scenario("seed-x"));
            assert_eq!(to_toml(&direct), to_toml(&loaded), "case {index}");
            assert_eq!(direct.path, loaded.path);
            assert_eq!(direct.id, loaded.id);
        }
    }
}
