//! Fuzzing of session lifecycles: a bounded fixed-seed run finds nothing in the
//! built-in runner, and each test-only bug is found and shrunk.

use session_harness::fuzz::{self, Options};
use session_harness::{catalogue, run};
use session_server::faults::Fault;

fn options(cases: u64, faults: &[Fault], regressions: Option<std::path::PathBuf>) -> Options {
    Options {
        faults: faults.to_vec(),
        regressions,
        ..Options::new(cases, 1)
    }
}

#[test]
fn a_bounded_fixed_seed_run_breaks_no_invariant() {
    let summary = fuzz::fuzz(&options(150, &[], None));
    assert!(summary.found.is_none(), "{}", fuzz::describe(&summary));
    assert_eq!(summary.cases, 150);
    assert!(
        summary.faults_injected > 50 && summary.model_states > 20,
        "{}",
        fuzz::describe(&summary)
    );
}

#[test]
fn each_injected_bug_is_caught_and_shrunk() {
    for fault in Fault::ALL {
        let summary = fuzz::fuzz(&options(2_000, &[fault], None));
        let found = summary.found.as_ref().unwrap_or_else(|| {
            panic!(
                "{} was not found:\n{}",
                fault.name(),
                fuzz::describe(&summary)
            )
        });
        // Reported so that the closing note can quote the cases to detection.
        println!(
            "{}: caught at case {}, shrunk to {} ops",
            fault.name(),
            found.case,
            found.minimal.ops.len()
        );
        assert!(
            found.minimal.ops.len() <= 6,
            "{} not shrunk:\n{}",
            fault.name(),
            fuzz::describe(&summary)
        );
        assert!(!found.violations.is_empty());
    }
}

#[test]
fn a_written_regression_replays_with_run() {
    let dir = std::env::temp_dir().join(format!(
        "session-harness-regressions-{}",
        std::process::id()
    ));
    let summary = fuzz::fuzz(&options(500, &[Fault::SpawnBeforeAuth], Some(dir.clone())));
    let path = summary
        .found
        .and_then(|f| f.written)
        .expect("a regression file was written");
    let root = catalogue::root();
    let scenarios =
        catalogue::discover(&root, std::slice::from_ref(&path)).expect("the regression file loads");
    let with_bug = run::run_all(
        &root,
        &scenarios,
        None,
        false,
        &[Fault::SpawnBeforeAuth],
        1,
        |_, _| {},
    );
    assert!(
        !with_bug[0].passed(),
        "the regression passes while the bug is in"
    );
    let fixed = run::run_all(&root, &scenarios, None, false, &[], 1, |_, _| {});
    assert!(fixed[0].passed(), "{:?}", fixed[0].verdict);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_same_case_seed_gives_the_same_trace() {
    for index in 0..5 {
        let seed = fuzz::case_seed(7, index);
        let lifecycle = fuzz::lifecycle_of(seed, 12);
        let trace = || {
            let (scenario, run, _) = fuzz::check(&lifecycle, "determinism", &[]);
            catalogue::trace_text(&scenario, &run.expect("runs").events)
        };
        assert_eq!(trace(), trace(), "case seed {seed}");
    }
}
