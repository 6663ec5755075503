//! The fuzzing campaign at CI scale: the same verdicts on any number of
//! workers, shards that split the cases exactly, a wall-clock limit, and
//! progress that leaves no carriage returns in a CI log.

use std::process::Command;
use std::time::Duration;

use session_harness::fuzz::{self, Options, Summary};
use session_harness::shard::Shard;
use session_server::faults::Fault;

/// The first failure: case, case seed, ops after shrinking, violations.
type FirstFailure = Option<(u64, u64, usize, Vec<String>)>;

/// What a campaign concluded, without its timings.
fn verdicts(summary: &Summary) -> (u64, u64, u64, usize, FirstFailure) {
    (
        summary.cases,
        summary.steps,
        summary.faults_injected,
        summary.model_states,
        summary.found.as_ref().map(|f| {
            (
                f.case,
                f.case_seed,
                f.minimal.ops.len(),
                f.violations.iter().map(|v| v.to_string()).collect(),
            )
        }),
    )
}

#[test]
fn one_worker_or_two_give_the_same_cases_and_verdicts() {
    // Without a bug: every case; with one (found at case 8 of seed 1): the
    // same first failure, shrunk the same way, whichever worker ran it.
    for faults in [vec![], vec![Fault::SpawnBeforeAuth]] {
        let run = |jobs| {
            fuzz::fuzz(&Options {
                jobs,
                faults: faults.clone(),
                ..Options::new(80, 1)
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(two.jobs, 2);
        assert_eq!(verdicts(&one), verdicts(&two), "{faults:?}");
        assert_eq!(
            one.found.is_some(),
            !faults.is_empty(),
            "{}",
            fuzz::describe(&one)
        );
    }
}

#[test]
fn shards_together_run_exactly_the_campaigns_cases() {
    let whole = fuzz::fuzz(&Options::new(60, 3));
    let shards: Vec<Summary> = (1..=3)
        .map(|k| {
            fuzz::fuzz(&Options {
                shard: Shard::new(k, 3).unwrap(),
                jobs: 2,
                ..Options::new(60, 3)
            })
        })
        .collect();
    assert_eq!(
        shards.iter().map(|s| s.cases).collect::<Vec<_>>(),
        [20, 20, 20]
    );
    let sum = |f: fn(&Summary) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.steps), whole.steps);
    assert_eq!(sum(|s| s.faults_injected), whole.faults_injected);
    assert_eq!(
        shards.iter().map(|s| s.simulated).sum::<Duration>(),
        whole.simulated
    );
}

#[test]
fn a_duration_stops_the_campaign_on_time() {
    let summary = fuzz::fuzz(&Options {
        cases: None,
        duration: Some(Duration::from_millis(1500)),
        jobs: 2,
        ..Options::new(0, 1)
    });
    assert!(
        summary.cases > 0 && summary.found.is_none(),
        "{}",
        fuzz::describe(&summary)
    );
    // Cases already taken finish: one case's time past the limit at most.
    assert!(
        summary.wall < Duration::from_secs(30),
        "{}",
        fuzz::describe(&summary)
    );
}

/// stderr is a pipe here, as in CI: plain lines, never a bar redrawn with `\r`.
#[test]
fn progress_off_a_terminal_is_plain_lines() {
    let output = Command::new(env!("CARGO_BIN_EXE_session-harness"))
        .args(["fuzz", "--cases", "40", "--seed", "5", "--jobs", "2"])
        .env_remove("CI_NODE_INDEX")
        .env_remove("CI_NODE_TOTAL")
        .output()
        .expect("the harness runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        !stderr.contains('\r') && !stdout.contains('\r'),
        "{stderr:?}"
    );
    assert!(stderr.contains("fuzz: 40/40 lifecycles"), "{stderr}");
    assert!(
        stdout.contains("40 lifecycles") && stdout.contains("on 2 workers"),
        "{stdout}"
    );
}
