//! Speed of the harness, printed (never asserted): the whole scenario catalogue
//! in simulation, the slowest scenarios in simulated seconds per wall second,
//! and fuzzing throughput in lifecycles per second.
//!
//! `cargo bench -p session-harness --bench catalogue`

use std::time::{Duration, Instant};

use session_harness::fuzz::{self, Options};
use session_harness::{catalogue, run};

fn main() {
    let root = catalogue::root();
    let scenarios = catalogue::discover(&root, &[]).expect("the catalogue loads");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!(
        "== the catalogue ({} scenarios), simulation against the built-in runner",
        scenarios.len()
    );
    for t in [1, threads] {
        let mut walls = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let results = run::run_all(&root, &scenarios, None, false, &[], t, |_, _| {});
            walls.push(started.elapsed());
            assert!(
                results.iter().all(|r| r.passed()),
                "a scenario failed: run `session-harness run` to see it"
            );
        }
        walls.sort();
        println!(
            "{:>10.2} s   whole catalogue wall, {t} thread(s), median of 3 (best {:.2} s)",
            walls[1].as_secs_f64(),
            walls[0].as_secs_f64()
        );
    }

    let mut results = run::run_all(&root, &scenarios, None, false, &[], 1, |_, _| {});
    let simulated_of = |r: &session_harness::report::Case| {
        r.simulation
            .as_ref()
            .map_or(Duration::ZERO, |s| s.simulated)
    };
    let simulated: Duration = results.iter().map(simulated_of).sum();
    let wall: Duration = results.iter().map(|r| r.wall).sum();
    println!(
        "{:>10.0} s   simulated in all, {:.0} simulated s per wall s overall",
        simulated.as_secs_f64(),
        simulated.as_secs_f64() / wall.as_secs_f64()
    );
    results.sort_by_key(|r| std::cmp::Reverse(r.wall));
    println!("   the slowest, by wall time (one thread):");
    for r in results.iter().take(5) {
        println!(
            "{:>10.3} s   {:<48} {:>6.0} s simulated, {:>7.0} simulated s per wall s",
            r.wall.as_secs_f64(),
            r.id,
            simulated_of(r).as_secs_f64(),
            simulated_of(r).as_secs_f64() / r.wall.as_secs_f64()
        );
    }

    println!("== fuzzing");
    // One worker, then one per core: the same cases and verdicts, faster.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut verdicts = Vec::new();
    for jobs in [1, cores] {
        let options = Options {
            jobs,
            ..Options::new(1000, 1)
        };
        let summary = fuzz::fuzz(&options);
        assert!(summary.found.is_none(), "{}", fuzz::describe(&summary));
        println!(
            "{:>10.0}     lifecycles/s ({} lifecycles, {} steps, {} faults injected, {:.0} s simulated, {:.2} s wall, {} worker(s))",
            summary.cases as f64 / summary.wall.as_secs_f64(),
            summary.cases,
            summary.steps,
            summary.faults_injected,
            summary.simulated.as_secs_f64(),
            summary.wall.as_secs_f64(),
            jobs
        );
        verdicts.push((summary.cases, summary.steps, summary.model_states));
    }
    assert_eq!(
        verdicts[0], verdicts[1],
        "the same cases whatever the workers"
    );
}
