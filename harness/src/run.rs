//! Running scenarios in simulation: each one's verdict ([`judge`]) and its
//! trace against its snapshot ([`snapshot`]), as a [`Case`] of the report.

use std::path::Path;
use std::time::Instant;

use crate::catalogue;
use crate::judge::{self, Observed};
use crate::report::{Case, Command, Report, Simulation, Snapshot};
use crate::scenario::Scenario;
use crate::snapshot;
use crate::world;

/// What `run` tests: this project's runner, in the simulated world.
pub const RUNNER: &str = "the built-in runner (session-server), simulated";

/// Runs one scenario. `seed`: another seed than the file's (no snapshot
/// comparison then: latencies differ, verdicts must not). `update`: write the
/// snapshot instead of comparing.
pub fn run(root: &Path, scenario: &Scenario, seed: Option<u64>, update: bool) -> Case {
    let started = Instant::now();
    let own_seed = seed.is_none_or(|s| s == scenario.seed) && scenario.in_catalogue;
    let seed = seed.unwrap_or(scenario.seed);
    let (id, title, spec) = (&scenario.id, &scenario.title, &scenario.spec);
    match world::simulate(scenario, seed) {
        Ok(run) => {
            let verdict = judge::verdict(scenario, Observed::Simulated(&run), judge::SIMULATED);
            let snapshot = match own_seed {
                true => {
                    let trace = catalogue::trace_text(scenario, &run.events);
                    let path = snapshot::path(root, &scenario.id);
                    snapshot::compare(&path, title, &trace, update)
                }
                false => Snapshot::NotCompared,
            };
            Case::judged(id, title, spec, verdict, None, started.elapsed()).simulated(Simulation {
                seed,
                simulated: run.simulated,
                snapshot,
            })
        }
        Err(e) => {
            let error = Some(format!("{e:#}"));
            Case::judged(
                id,
                title,
                spec,
                Default::default(),
                error,
                started.elapsed(),
            )
        }
    }
}

/// Runs `scenarios` on `threads` threads (each simulation is single-threaded),
/// handing each case to `report` in catalogue order as soon as it can.
pub fn run_all(
    root: &Path,
    scenarios: &[Scenario],
    seed: Option<u64>,
    update: bool,
    faults: &[session_server::faults::Fault],
    threads: usize,
    mut report: impl FnMut(usize, &Case),
) -> Vec<Case> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                // Test-only faults are switched per thread: the world runs on this one.
                session_server::faults::set_for_thread(faults);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(scenario) = scenarios.get(i) else {
                        break;
                    };
                    if tx.send((i, run(root, scenario, seed, update))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done: Vec<Option<Case>> = (0..scenarios.len()).map(|_| None).collect();
        let mut shown = 0;
        for (i, case) in rx {
            done[i] = Some(case);
            while let Some(Some(case)) = done.get(shown) {
                report(shown, case);
                shown += 1;
            }
        }
        done.into_iter().flatten().collect()
    })
}

/// The report of `cases`, run in `wall`.
pub fn report(cases: Vec<Case>, wall: std::time::Duration) -> Report {
    Report {
        command: Command::Run,
        runner: RUNNER.to_string(),
        profile: None,
        scale: None,
        campaign: None,
        cases,
        warnings: Vec::new(),
        wall,
    }
}
