//! `session-harness`: run the scenario catalogue, list it, fuzz, conform,
//! serve GitLab's pages for a real browser, and show what checks each rule of
//! SPEC.md (`coverage`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use session_harness::report::{self, Outcome};
use session_harness::scenario::Dur;
use session_harness::shard::Shard;
use session_harness::{catalogue, fuzz, run};
use session_server::faults::Fault;

#[derive(Parser)]
#[command(
    version,
    about = "Simulation and conformance harness for GitLab Runner interactive web terminals"
)]
enum Command {
    /// Run scenarios in simulation against the built-in runner.
    Run {
        /// Scenario files or folders (default: all of scenarios/).
        paths: Vec<PathBuf>,
        /// Only scenarios whose id (family/name) matches this glob.
        #[arg(long)]
        filter: Option<String>,
        /// Run with this seed instead of each scenario's own (no snapshot comparison).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Write snapshots instead of comparing them (then read them before committing).
        #[arg(long)]
        update: bool,
        /// Switch on a test-only bug in the runner (to replay a fuzzing regression).
        #[arg(long = "fault", value_parser = parse_fault)]
        faults: Vec<Fault>,
        /// Scenarios run at once (each simulation uses one thread).
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
        /// Only part K of N of the scenarios (by id); default: GitLab CI's
        /// CI_NODE_INDEX/CI_NODE_TOTAL if set, else all.
        #[arg(long, value_parser = Shard::parse)]
        shard: Option<Shard>,
    },
    /// Generate session lifecycles, check SPEC's invariants, shrink a failure.
    Fuzz {
        /// Lifecycles in the campaign (all shards together); default 500, or
        /// no limit with --duration.
        #[arg(long)]
        cases: Option<u64>,
        /// Stop taking new lifecycles after this wall time (e.g. 10m, 1h30m).
        #[arg(long, value_parser = Dur::parse)]
        duration: Option<Dur>,
        /// Workers, one lifecycle at a time each (default: every core). The
        /// verdicts are the same for any number.
        #[arg(long, default_value_t = default_threads())]
        jobs: usize,
        /// Only the cases K-1, K-1+N, ... of the campaign; default: GitLab CI's
        /// CI_NODE_INDEX/CI_NODE_TOTAL if set, else all.
        #[arg(long, value_parser = Shard::parse)]
        shard: Option<Shard>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Most ops in one lifecycle.
        #[arg(long, default_value_t = 12)]
        max_steps: usize,
        /// Switch on a test-only bug in the runner (no-lock, uncapped-timeout,
        /// truncate-input, spawn-before-auth, lock-before-auth, zero-timeout-kept,
        /// timeout-close-normal, no-disconnect-log, slot-kept, short-container-wait,
        /// slow-pings, base64-as-binary, base64-input-raw). The fuzzer should find it.
        #[arg(long = "fault", value_parser = parse_fault)]
        faults: Vec<Fault>,
        /// Where a failing lifecycle is written as a scenario (default:
        /// scenarios/regressions; with --fault, a folder under the system's
        /// temporary one: a planted bug's regression is no regression of the
        /// runner, and in the catalogue it would fail `run`).
        #[arg(long)]
        regressions: Option<PathBuf>,
        /// Also write the report as JSON here: a case per SPEC rule (`report
        /// merge` adds up the shards of one campaign).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the report as JUnit XML here (a test case per SPEC rule).
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Rerun the one lifecycle of a case seed (as `fuzz` printed it) and show its trace.
    Replay {
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 12)]
        max_steps: usize,
        #[arg(long = "fault", value_parser = parse_fault)]
        faults: Vec<Fault>,
    },
    /// Validate a runner over real sockets: the harness plays GitLab (coordinator,
    /// Rails, Workhorse) and browsers; the runner under test polls it.
    Conform(Box<session_harness::conform::Args>),
    /// Serve the world's GitLab on a real port with its pages (job list, job
    /// page with the Debug button, terminal page) for a real browser.
    Serve(Box<session_harness::serve::Args>),
    /// For each rule of SPEC.md, the scenarios, endpoint cases, fuzz invariants
    /// and tests that check it. Exit code 1 if a rule is unchecked.
    Coverage {
        /// Only these rules, or families (`--spec EX-4 --spec WS`).
        #[arg(long)]
        spec: Vec<String>,
    },
    /// Work with reports: `report merge` the JSON reports of a run's shards.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Print the catalogue: each scenario with its SPEC ids and what a user sees.
    List {
        paths: Vec<PathBuf>,
        #[arg(long)]
        filter: Option<String>,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Merge the JSON reports of a run's shards (`run --format json`,
    /// `conform --json` or `fuzz --json`, each with its --shard K/N) into the
    /// whole run's report;
    /// prints its summary; exit 1 if any case failed.
    Merge {
        /// The shards' JSON reports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the merged JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the merged report as JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
    Junit,
}

fn parse_fault(name: &str) -> Result<Fault, String> {
    Fault::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        format!("unknown fault {name:?}: one of {}", names.join(", "))
    })
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
    // RUST_LOG=debug shows what the runner under test logs, for debugging a scenario.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let root = catalogue::root();
    match Command::parse() {
        Command::Conform(args) => session_harness::conform::run(*args),
        Command::Serve(args) => session_harness::serve::run(*args),
        Command::Coverage { spec } => coverage(&root, &spec),
        Command::Report {
            command: ReportCommand::Merge { files, json, junit },
        } => merge(&files, json.as_deref(), junit.as_deref()),
        Command::Fuzz {
            cases,
            duration,
            jobs,
            shard,
            seed,
            max_steps,
            faults,
            regressions,
            json,
            junit,
        } => {
            let shard = match Shard::resolve(shard) {
                Ok(shard) => shard,
                Err(e) => return usage_error(&e),
            };
            let regressions = regressions.unwrap_or_else(|| match faults.is_empty() {
                true => root.join("scenarios/regressions"),
                false => std::env::temp_dir().join("session-harness-fault-regressions"),
            });
            let options = fuzz::Options {
                cases: cases.or(duration.is_none().then_some(500)),
                duration: duration.map(|d| d.0),
                seed,
                max_steps,
                faults,
                regressions: Some(regressions),
                progress: fuzz::Progress::for_stderr(),
                jobs: jobs.max(1),
                shard,
            };
            campaign(&options, json.as_deref(), junit.as_deref())
        }
        Command::Replay {
            seed,
            max_steps,
            faults,
        } => replay(seed, max_steps, &faults),
        Command::List { paths, filter } => match select(&root, &paths, filter.as_deref()) {
            Ok(scenarios) => list(&scenarios),
            Err(code) => code,
        },
        Command::Run {
            paths,
            filter,
            seed,
            format,
            update,
            faults,
            threads,
            shard,
        } => {
            // A shard with no scenario left runs none, and passes.
            let selected = select(&root, &paths, filter.as_deref()).and_then(|scenarios| {
                Shard::resolve(shard)
                    .map(|shard| shard.select(scenarios))
                    .map_err(|e| usage_error(&e))
            });
            match selected {
                Ok(scenarios) => run(&root, &scenarios, seed, format, update, &faults, threads),
                Err(code) => code,
            }
        }
    }
}

/// Says what was wrong with the command line; exit code 2.
fn usage_error(what: &str) -> ExitCode {
    eprintln!("error: {what}");
    ExitCode::from(2)
}

/// The scenarios of `paths` (default: the catalogue) whose id matches
/// `filter`; none is an error.
fn select(
    root: &std::path::Path,
    paths: &[PathBuf],
    filter: Option<&str>,
) -> Result<Vec<session_harness::scenario::Scenario>, ExitCode> {
    let scenarios = catalogue::discover(root, paths).map_err(|errors| {
        for e in errors {
            eprintln!("error: {e}");
        }
        ExitCode::from(2)
    })?;
    let scenarios: Vec<_> = match filter {
        None => scenarios,
        Some(glob) => {
            let matcher = globset::Glob::new(glob)
                .map_err(|e| usage_error(&format!("--filter {glob:?}: {e}")))?
                .compile_matcher();
            scenarios
                .into_iter()
                .filter(|s| matcher.is_match(&s.id))
                .collect()
        }
    };
    if scenarios.is_empty() {
        return Err(usage_error("no scenario matches"));
    }
    Ok(scenarios)
}

fn campaign(
    options: &fuzz::Options,
    json: Option<&std::path::Path>,
    junit: Option<&std::path::Path>,
) -> ExitCode {
    let shard = options.shard;
    if shard != Shard::WHOLE {
        eprintln!(
            "fuzz: shard {shard}: cases {}, {}+{}, ... of seed {}",
            shard.index - 1,
            shard.index - 1,
            shard.total,
            options.seed
        );
    }
    let summary = fuzz::fuzz(options);
    report::conclude(&fuzz::report::Ended::new(options, &summary), json, junit)
}

/// Reruns case `seed` of a campaign: its scenario, its trace, what it broke.
fn replay(seed: u64, max_steps: usize, faults: &[Fault]) -> ExitCode {
    let lifecycle = fuzz::lifecycle_of(seed, max_steps);
    let (scenario, run, violations) = fuzz::check(&lifecycle, &format!("seed-{seed}"), faults);
    print!("{}", fuzz::to_toml(&scenario));
    if let Ok(run) = &run {
        println!("\n{}", catalogue::trace_text(&scenario, &run.events));
    }
    for v in &violations {
        println!("violated: {v}");
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn list(scenarios: &[session_harness::scenario::Scenario]) -> ExitCode {
    for s in scenarios {
        println!(
            "{:<44} {}\n    {}\n    user sees: {}",
            s.id,
            s.spec.join(" "),
            s.title,
            s.user_sees
        );
    }
    println!("{} scenarios", scenarios.len());
    ExitCode::SUCCESS
}

fn run(
    root: &std::path::Path,
    scenarios: &[session_harness::scenario::Scenario],
    seed: Option<u64>,
    format: Format,
    update: bool,
    faults: &[Fault],
    threads: usize,
) -> ExitCode {
    let started = Instant::now();
    let total = scenarios.len();
    let cases = run::run_all(root, scenarios, seed, update, faults, threads, |i, case| {
        if matches!(format, Format::Human) {
            print!("{}", report::human(case, i + 1, total));
        }
    });
    let report = run::report(cases, started.elapsed());
    match format {
        Format::Human => print!("{}", report.summary()),
        Format::Json => println!("{}", report.json()),
        Format::Junit => print!("{}", report.junit()),
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn merge(
    files: &[PathBuf],
    json: Option<&std::path::Path>,
    junit: Option<&std::path::Path>,
) -> ExitCode {
    match session_harness::merge::merge(files) {
        Ok(merged) => report::conclude(&merged, json, junit),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn coverage(root: &std::path::Path, selected: &[String]) -> ExitCode {
    for s in selected {
        let known = session_harness::spec::RULES
            .iter()
            .any(|r| r.id == s || r.id.starts_with(&format!("{s}-")));
        if !known {
            eprintln!("error: --spec {s:?} is neither a rule nor a family of SPEC.md");
            return ExitCode::from(2);
        }
    }
    match session_harness::coverage::collect(root) {
        Ok(coverage) => {
            print!("{}", coverage.render(selected));
            if coverage.unchecked().is_empty() && coverage.unknown.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
