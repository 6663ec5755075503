//! The scenario catalogue as tests: every scenario meets its expectations and
//! matches its snapshot (`cargo insta review` to accept a change, after reading
//! it), runs deterministically, and keeps its verdict under other seeds.

use std::panic::{catch_unwind, AssertUnwindSafe};

use session_harness::expect;
use session_harness::judge::{self, Observed};
use session_harness::scenario::Scenario;
use session_harness::{catalogue, snapshot, world};

fn catalogue() -> Vec<Scenario> {
    let root = catalogue::root();
    catalogue::discover(&root, &[]).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn trace(scenario: &Scenario, seed: u64) -> (String, expect::Verdict) {
    let run = world::simulate(scenario, seed).unwrap_or_else(|e| panic!("{}: {e:#}", scenario.id));
    (
        catalogue::trace_text(scenario, &run.events),
        judge::verdict(scenario, Observed::Simulated(&run), judge::SIMULATED),
    )
}

#[test]
fn every_scenario_meets_its_expectations_and_snapshot() {
    let root = catalogue::root();
    let mut problems = Vec::new();
    for scenario in catalogue() {
        let (text, verdict) = trace(&scenario, scenario.seed);
        for f in &verdict.failures {
            problems.push(format!(
                "{}: {}: expected {}, observed {}",
                scenario.id, f.check, f.expected, f.observed
            ));
        }
        let (family, name) = scenario
            .id
            .rsplit_once('/')
            .expect("scenarios live in a family folder");
        let snapshot = catch_unwind(AssertUnwindSafe(|| {
            insta::with_settings!({
                snapshot_path => root.join("snapshots").join(family),
                prepend_module_to_snapshot => false,
                description => scenario.title.clone(),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name.to_string(), text);
            });
        }));
        if snapshot.is_err() {
            problems.push(format!(
                "{}: trace differs from snapshots/{}.snap",
                scenario.id, scenario.id
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_same_seed_gives_byte_identical_traces() {
    for scenario in catalogue() {
        let first = trace(&scenario, scenario.seed).0;
        let second = trace(&scenario, scenario.seed).0;
        assert!(
            first == second,
            "{} is not deterministic:\n{}",
            scenario.id,
            snapshot::diff(&first, &second)
        );
    }
}

#[test]
fn other_seeds_change_latencies_never_verdicts() {
    for scenario in catalogue() {
        for seed in [scenario.seed + 1, scenario.seed + 1000] {
            let verdict = trace(&scenario, seed).1;
            assert!(
                verdict.passed(),
                "{} fails with seed {seed}: {:?}",
                scenario.id,
                verdict.failures
            );
        }
    }
}

#[test]
fn the_catalogue_covers_every_family_of_the_issue() {
    let ids: Vec<String> = catalogue().into_iter().map(|s| s.id).collect();
    for family in [
        "timeouts/",
        "disconnects/",
        "unauthorized/",
        "docker/",
        "deployment/",
    ] {
        assert!(
            ids.iter().any(|id| id.starts_with(family)),
            "no scenario under scenarios/{family}"
        );
    }
}
