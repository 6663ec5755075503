//! Fuzzing of session lifecycles: a bounded fixed-seed run finds nothing in the
//! built-in runner and reaches every rule SPEC.md marks fuzzable; each
//! test-only bug is found, shrunk, and named by the rule it breaks; lifecycles
//! that once raised false alarms pass.

use session_harness::fuzz::lifecycle::{Input, Lifecycle, Op, Protocols, Timed, Who};
use session_harness::fuzz::{self, Options};
use session_harness::{catalogue, run};
use session_server::faults::Fault;

/// The CI-sized run: this many lifecycles of seed 1.
const CI_CASES: u64 = 300;
/// A planted bug must be caught within this many (the run stops at the first).
const FAULT_CASES: u64 = 1_000;

fn options(cases: u64, faults: &[Fault], regressions: Option<std::path::PathBuf>) -> Options {
    Options {
        faults: faults.to_vec(),
        regressions,
        ..Options::new(cases, 1)
    }
}

#[test]
fn a_bounded_fixed_seed_run_breaks_no_invariant_and_reaches_every_fuzzable_rule() {
    let summary = fuzz::fuzz(&options(CI_CASES, &[], None));
    assert!(summary.found.is_none(), "{}", fuzz::describe(&summary));
    assert_eq!(summary.cases, CI_CASES);
    assert!(
        summary.faults_injected > 50 && summary.model_states > 20,
        "{}",
        fuzz::describe(&summary)
    );
    assert!(
        summary.coverage.unreached().is_empty(),
        "fuzzable rules never reached:\n{}",
        fuzz::describe(&summary)
    );
}

/// The rules each planted bug breaks: the fuzzer's message must name one.
fn rules_broken_by(fault: Fault) -> &'static [&'static str] {
    match fault {
        Fault::NoLock => &["EX-4"],
        Fault::UncappedTimeout => &["LC-1"],
        Fault::TruncateInput => &["WS-5"],
        Fault::SpawnBeforeAuth => &["EX-1"],
        // Its 423 comes first: before the token's check (a wrong token gets
        // 423, not 401) and so before the upgrade's (a plain GET with the
        // right token gets 423, not 405).
        Fault::LockBeforeAuth => &["EX-1", "EX-2"],
        Fault::ZeroTimeoutKept => &["LC-1"],
        Fault::TimeoutCloseNormal => &["WS-6"],
        Fault::NoDisconnectLog => &["LC-2"],
        Fault::SlotKept => &["WS-7"],
        Fault::ShortContainerWait => &["DK-1"],
        Fault::SlowPings => &["WS-4"],
        Fault::Base64AsBinary | Fault::Base64InputRaw => &["WS-3"],
        Fault::FdLeak => unreachable!("fd-leak breaks no rule a trace shows"),
    }
}

/// The nightly bar of issue 9: 20,000 cases on each of five seeds, no false
/// alarm on the unchanged runner. Too long for every CI run (about 100,000
/// lifecycles); run it with `cargo test --release -p session-harness --test fuzz
/// -- --ignored` or as README's nightly commands.
#[test]
#[ignore]
fn twenty_thousand_cases_on_each_of_five_seeds_break_nothing() {
    for seed in 1..=5 {
        let options = Options {
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            ..Options::new(20_000, seed)
        };
        let summary = fuzz::fuzz(&options);
        assert!(
            summary.found.is_none(),
            "seed {seed}:\n{}",
            fuzz::describe(&summary)
        );
        assert_eq!(summary.cases, 20_000);
    }
}

#[test]
fn each_injected_bug_is_caught_shrunk_and_named_by_its_rule() {
    // fd-leak leaks descriptors, which a simulated run does not have:
    // conform's soak finds it.
    for fault in Fault::ALL.into_iter().filter(|f| *f != Fault::FdLeak) {
        let summary = fuzz::fuzz(&options(FAULT_CASES, &[fault], None));
        let found = summary.found.as_ref().unwrap_or_else(|| {
            panic!(
                "{} was not found:\n{}",
                fault.name(),
                fuzz::describe(&summary)
            )
        });
        // Reported so that the closing note can quote the cases to detection.
        println!(
            "{}: caught at case {}, shrunk to {} ops: {}",
            fault.name(),
            found.case,
            found.minimal.ops.len(),
            found.violations[0]
        );
        assert!(
            found.minimal.ops.len() <= 8,
            "{} not shrunk:\n{}",
            fault.name(),
            fuzz::describe(&summary)
        );
        let rules = rules_broken_by(fault);
        assert!(
            found.violations.iter().any(|v| rules.contains(&v.spec)),
            "{} breaks {rules:?}, but the fuzzer said:\n{}",
            fault.name(),
            fuzz::describe(&summary)
        );
    }
}

fn lifecycle(
    docker: bool,
    session_timeout: i64,
    timeout: u64,
    script: u64,
    ops: Vec<Timed>,
) -> Lifecycle {
    Lifecycle {
        docker,
        session_timeout,
        job_timeout: timeout,
        script_seconds: script,
        exit_code: 0,
        prepare: 0,
        container_start: if docker { 14 } else { 0 },
        seed: 0,
        ops,
    }
}

fn open(after: u64, who: Who, direct: bool) -> Timed {
    Timed {
        after,
        op: Op::Open {
            who,
            direct,
            protocols: Protocols::Terminal,
        },
    }
}

/// Issue 9's false alarms, shrunk from `fuzz --cases 1500 --seed 3` (4, 6, 8,
/// 9): behind a GitLab-runner partition the runner upgrades and relays a
/// terminal whose 101 never reaches Workhorse (EX-1 counted it as refused);
/// a terminal the runner timed out and the next one it upgraded were seen in
/// the same tick (EX-4 took them as overlapping).
#[test]
fn terminals_seen_late_or_at_the_same_moment_are_no_violation() {
    let cut = |after| Timed {
        after,
        op: Op::PartitionRunnerLink { seconds: 5 },
    };
    let cases = [
        lifecycle(false, 0, 30, 11, vec![open(0, Who::Alice, false), cut(4)]),
        lifecycle(true, 0, 37, 23, vec![open(0, Who::Alice, false), cut(4)]),
        lifecycle(
            false,
            0,
            30,
            16,
            vec![
                open(0, Who::Alice, false),
                open(1, Who::Alice, false),
                cut(3),
            ],
        ),
        lifecycle(
            false,
            6,
            30,
            19,
            vec![
                open(7, Who::Tab2, true),
                open(14, Who::Alice, false),
                open(0, Who::Alice, false),
            ],
        ),
    ];
    // Found by `fuzz --cases 1000 --seed 3`: a request waiting for docker's
    // container holds the slot, so the other gets 423 though no terminal is open.
    let waiting_for_the_container = Lifecycle {
        prepare: 13,
        container_start: 17,
        ..lifecycle(
            true,
            0,
            30,
            1,
            vec![open(0, Who::Alice, true), open(0, Who::Tab2, true)],
        )
    };
    for case in cases.into_iter().chain([waiting_for_the_container]) {
        let (_, run, violations) = fuzz::check(&case, "false-alarm", &[]);
        run.expect("runs");
        assert!(violations.is_empty(), "{case:?}: {violations:?}");
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

/// Two requests waiting for the job to run race for its one terminal (EX-7):
/// the runner woke them in a random order (a watch channel's), so these cases,
/// with a 62 s prepare, gave another trace on some runs. Found by
/// `fuzz --cases 3000 --seed 1` and `--seed 2` once prepare delays were generated.
#[test]
fn requests_waiting_for_the_job_replay_identically() {
    let at = |after, op| Timed { after, op };
    let typed = |who, input| Op::Type { who, input };
    let direct = |who, protocols| Op::Open {
        who,
        direct: true,
        protocols,
    };
    let shell = Lifecycle {
        prepare: 62,
        seed: 11251213371245634534,
        ..lifecycle(
            false,
            192,
            291,
            39,
            vec![
                at(5, direct(Who::Tab2, Protocols::Terminal)),
                at(29, typed(Who::Alice, Input::Echo)),
                at(17, direct(Who::Alice, Protocols::Neither)),
                at(18, typed(Who::Alice, Input::Echo)),
                at(16, typed(Who::Tab2, Input::Paste)),
                at(18, Op::PartitionRunnerLink { seconds: 25 }),
            ],
        )
    };
    let docker = Lifecycle {
        prepare: 62,
        container_start: 9,
        seed: 14700111071121870604,
        ..lifecycle(
            true,
            52,
            71,
            30,
            vec![
                at(13, direct(Who::Alice, Protocols::Terminal)),
                open(1, Who::Tab2, false),
                at(18, Op::HoldRunnerLink { seconds: 5 }),
                at(28, Op::Close { who: Who::Alice }),
                at(25, Op::Vanish { who: Who::Alice }),
                at(23, typed(Who::Alice, Input::Background)),
            ],
        )
    };
    for case in [shell, docker] {
        let trace = || {
            let (scenario, run, _) = fuzz::check(&case, "determinism", &[]);
            catalogue::trace_text(&scenario, &run.expect("runs").events)
        };
        let first = trace();
        for _ in 0..7 {
            assert_eq!(first, trace(), "{case:?}");
        }
    }
}
