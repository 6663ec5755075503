//! Running scenarios in simulation: verdict plus snapshot comparison.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::expect::{Judging, Strictness, Verdict};
use crate::judge::{self, Observed};
use crate::scenario::Scenario;
use crate::world;

/// Simulated time is exact: closes as the project sends them, texts as written.
pub const STRICT: Judging = Judging {
    strictness: Strictness::Strict,
    text_durations: None,
};

/// How a trace compares with the stored snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "snapshot", rename_all = "snake_case")]
pub enum Snapshot {
    Matches,
    /// No snapshot yet: run with `--update`, then read and commit it.
    Missing,
    Differs {
        diff: String,
    },
    /// Written by `--update`.
    Written,
    /// Not compared (another seed than the scenario's own, or a file outside `scenarios/`).
    NotCompared,
}

/// The result of one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    pub spec: Vec<String>,
    pub seed: u64,
    pub verdict: Verdict,
    pub snapshot: Snapshot,
    /// The run itself failed (the world could not be built or simulated).
    pub error: Option<String>,
    #[serde(with = "crate::duration::seconds")]
    pub wall: Duration,
    #[serde(with = "crate::duration::seconds")]
    pub simulated: Duration,
    #[serde(skip)]
    pub trace: String,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.verdict.passed()
            && !matches!(self.snapshot, Snapshot::Differs { .. } | Snapshot::Missing)
    }
}

/// Runs one scenario. `seed`: another seed than the file's (no snapshot
/// comparison then: latencies differ, verdicts must not). `update`: write the
/// snapshot instead of comparing.
pub fn run(root: &Path, scenario: &Scenario, seed: Option<u64>, update: bool) -> CaseResult {
    let started = Instant::now();
    let own_seed = seed.is_none_or(|s| s == scenario.seed) && scenario.in_catalogue;
    let seed = seed.unwrap_or(scenario.seed);
    let mut result = CaseResult {
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        spec: scenario.spec.clone(),
        seed,
        verdict: Verdict::default(),
        snapshot: Snapshot::NotCompared,
        error: None,
        wall: Duration::ZERO,
        simulated: Duration::ZERO,
        trace: String::new(),
    };
    match world::simulate(scenario, seed) {
        Ok(run) => {
            result.verdict = judge::verdict(scenario, Observed::Simulated(&run), STRICT);
            result.trace = catalogue::trace_text(scenario, &run.events);
            result.simulated = run.simulated;
            if own_seed {
                result.snapshot = compare(root, scenario, &result.trace, update);
            }
        }
        Err(e) => result.error = Some(format!("{e:#}")),
    }
    result.wall = started.elapsed();
    result
}

fn compare(root: &Path, scenario: &Scenario, trace: &str, update: bool) -> Snapshot {
    let path = catalogue::snapshot_path(root, scenario);
    let stored = catalogue::read_snapshot(&path);
    match stored {
        Some(stored) if stored.trim_end() == trace.trim_end() => Snapshot::Matches,
        _ if update => match catalogue::write_snapshot(&path, scenario, trace) {
            Ok(()) => Snapshot::Written,
            Err(e) => Snapshot::Differs {
                diff: format!("cannot write {}: {e}", path.display()),
            },
        },
        None => Snapshot::Missing,
        Some(stored) => Snapshot::Differs {
            diff: diff(&stored, trace),
        },
    }
}

/// Runs `scenarios` on `threads` threads (each simulation is single-threaded),
/// handing each result to `report` in catalogue order as soon as it can.
pub fn run_all(
    root: &Path,
    scenarios: &[Scenario],
    seed: Option<u64>,
    update: bool,
    faults: &[session_server::faults::Fault],
    threads: usize,
    mut report: impl FnMut(usize, &CaseResult),
) -> Vec<CaseResult> {
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
        let mut done: Vec<Option<CaseResult>> = (0..scenarios.len()).map(|_| None).collect();
        let mut shown = 0;
        for (i, result) in rx {
            done[i] = Some(result);
            while let Some(Some(result)) = done.get(shown) {
                report(shown, result);
                shown += 1;
            }
        }
        done.into_iter().flatten().collect()
    })
}

/// A unified diff, stored snapshot (-) against this run (+).
pub fn diff(expected: &str, observed: &str) -> String {
    similar::TextDiff::from_lines(expected.trim_end(), observed.trim_end())
        .unified_diff()
        .context_radius(2)
        .header("snapshot", "observed")
        .to_string()
}
