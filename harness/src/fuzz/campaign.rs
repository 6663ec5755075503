//! The fuzzing loop on every core: a worker per core takes the next case
//! index, generates its lifecycle from (seed, index) alone ([`case_seed`]),
//! runs and checks it. The verdicts do not depend on the number of workers:
//! the campaign's result is that of its cases in index order up to the first
//! that breaks an invariant, which is then shrunk, as a single worker would
//! have found it. Workers stop taking cases past a known failure, at the case
//! count, or at the wall-clock deadline (`--duration`); a case once taken is
//! always finished, so the cases run are always a prefix of the campaign.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::invariants::Violation;
use super::progress::Meter;
use super::{
    case_seed, determinism, generate, judged, shrink, write_regression, Found, Options, Summary,
    DETERMINISM_SAMPLE,
};
use proptest::strategy::ValueTree;

/// What one case gave.
struct Outcome {
    /// The case's index in the whole campaign (all shards).
    index: u64,
    seed: u64,
    steps: u64,
    faults: u64,
    states: Vec<(bool, u8, u8, u8)>,
    simulated: Duration,
    /// Checks run per SPEC rule (coverage).
    checks: BTreeMap<&'static str, u64>,
    violations: Vec<Violation>,
}

/// Runs the campaign; see the module's comment.
pub fn fuzz(options: &Options) -> Summary {
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    // This shard's cases are its slots 0, 1, 2...: slot n is case `position(n)`.
    let slots = options
        .cases
        .map_or(u64::MAX, |cases| options.shard.count(cases));
    let next = AtomicU64::new(0);
    let first_failure = AtomicU64::new(u64::MAX);
    let mut meter = Meter::new(
        options.progress,
        options.cases.map(|_| slots),
        options.duration,
    );
    let mut outcomes = BTreeMap::new();
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::channel();
        for _ in 0..options.jobs.max(1) {
            let send = send.clone();
            let (next, first_failure) = (&next, &first_failure);
            scope.spawn(move || loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let slot = next.fetch_add(1, Ordering::SeqCst);
                if slot >= slots || slot > first_failure.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = run_case(options, slot);
                if !outcome.violations.is_empty() {
                    first_failure.fetch_min(slot, Ordering::SeqCst);
                }
                if send.send((slot, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(send);
        for (slot, outcome) in receive {
            outcomes.insert(slot, outcome);
            meter.tick(outcomes.len() as u64, started.elapsed());
        }
    });
    meter.finish();
    let wall = started.elapsed();
    // The campaign is its cases up to the first failure, in order.
    let failed = first_failure.load(Ordering::SeqCst);
    let mut summary = Summary {
        wall,
        jobs: options.jobs.max(1),
        ..Summary::default()
    };
    let mut states = std::collections::BTreeSet::new();
    let mut found = None;
    for (slot, outcome) in outcomes.into_iter().take_while(|(slot, _)| *slot <= failed) {
        summary.cases += 1;
        summary.steps += outcome.steps;
        summary.faults_injected += outcome.faults;
        summary.simulated += outcome.simulated;
        summary.coverage.add(&outcome.checks);
        states.extend(outcome.states.iter().copied());
        if slot == failed {
            found = Some(outcome);
        }
    }
    summary.model_states = states.len();
    summary.found = found.map(|outcome| shrunk(options, outcome));
    summary
}

/// Case `slot` of this shard, run and checked.
fn run_case(options: &Options, slot: u64) -> Outcome {
    let index = options.shard.position(slot);
    let seed = case_seed(options.seed, index);
    let case = generate(seed, options.max_steps).current();
    let (_, run, judge) = judged(&case, &format!("seed-{seed}"), &options.faults);
    let mut violations = judge.found;
    let mut simulated = Duration::ZERO;
    if let Ok(run) = &run {
        simulated = run.simulated;
        // The same seed gives the same trace: checked on a sample, it doubles a case's cost.
        if index % DETERMINISM_SAMPLE == 0 {
            violations.extend(determinism(&case, run, &options.faults));
        }
    }
    Outcome {
        index,
        seed,
        steps: case.ops.len() as u64,
        faults: case.faults() as u64,
        states: case.model_states().into_iter().collect(),
        simulated,
        checks: judge.checks,
        violations,
    }
}

/// The first failing case, shrunk to a minimal lifecycle and written.
fn shrunk(options: &Options, outcome: Outcome) -> Found {
    let mut tree = generate(outcome.seed, options.max_steps);
    let (minimal, violations, shrink_steps) =
        shrink(&mut tree, outcome.violations, &options.faults);
    let name = format!("seed-{}", outcome.seed);
    let written = options
        .regressions
        .as_deref()
        .and_then(|dir| write_regression(dir, &minimal, &name, &options.faults, &violations));
    Found {
        case: outcome.index + 1,
        case_seed: outcome.seed,
        violations,
        minimal,
        shrink_steps,
        written,
    }
}
