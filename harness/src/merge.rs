//! `session-harness report merge`: the JSON reports of a run's shards
//! (`--shard K/N`) as the one report of the whole run, in the run's order.
//!
//! A report is a report ([`crate::report::Report`]), of `run` or of
//! `conform`: reports merge with reports of the same command. A case in two
//! reports means they were not shards of one run: refused, naming it. The
//! one exception is `conform`'s `runner/job-request`, which every shard runs
//! (it is the runner's profile each shard needs): the merge keeps one, a
//! failed one if any shard's failed. A soak's report is one runner's rounds,
//! not a shard: refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::report::{Case, Command, Report};

/// The case of `conform` that every shard runs.
const EVERY_SHARD: &str = "runner/job-request";

/// Merges the reports in `files` (at least one).
pub fn merge(files: &[PathBuf]) -> Result<Report, String> {
    let mut parts = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
        let report = read(&text).map_err(|e| format!("{name}: {e}"))?;
        if report.command == Command::Soak {
            return Err(format!("{name}: a soak's report (`conform --repeat`/`--soak`) is one runner's rounds, not a shard of a run: there is nothing to merge it with"));
        }
        parts.push((name, report));
    }
    let Some((_, first)) = parts.first() else {
        return Err("no report to merge: name the JSON reports of the shards".into());
    };
    let mut merged = Report {
        cases: Vec::new(),
        warnings: Vec::new(),
        wall: Duration::ZERO,
        ..first.clone()
    };
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (name, report) in &parts {
        if report.command != merged.command {
            return Err(mixed(name));
        }
        // Shards run side by side: the whole took as long as the longest.
        merged.wall = merged.wall.max(report.wall);
        merged.profile = merged.profile.take().or_else(|| report.profile.clone());
        for warning in &report.warnings {
            if !merged.warnings.contains(warning) {
                merged.warnings.push(warning.clone());
            }
        }
        for case in &report.cases {
            if merged.command == Command::Conform && case.id == EVERY_SHARD {
                match merged.cases.iter_mut().find(|c| c.id == EVERY_SHARD) {
                    Some(kept) if !kept.failed() && case.failed() => *kept = case.clone(),
                    Some(_) => {}
                    None => merged.cases.push(case.clone()),
                }
                continue;
            }
            if let Some(other) = owner.insert(case.id.clone(), name.clone()) {
                return Err(twice(&case.id, &other, name));
            }
            merged.cases.push(case.clone());
        }
    }
    // The run's order: conform's profile, the scenarios by id (the
    // catalogue's order), then the endpoint-level cases as they ran (one
    // shard runs them all).
    merged.cases.sort_by_key(order);
    Ok(merged)
}

fn order(case: &Case) -> (u8, String) {
    match case.id.as_str() {
        EVERY_SHARD => (0, String::new()),
        id if id.starts_with("endpoint/") => (2, String::new()),
        id => (1, id.to_string()),
    }
}

fn read(text: &str) -> Result<Report, String> {
    serde_json::from_str(text).map_err(|e| {
        format!("not a report of `run --format json` or `conform --json` ({e}); a report of an older harness: run it again with this one")
    })
}

fn mixed(name: &str) -> String {
    format!("{name}: a report of another command than the first file's (merge `run` reports with `run` reports, `conform` with `conform`)")
}

fn twice(id: &str, a: &str, b: &str) -> String {
    format!("{id} is in both {a} and {b}: these are not shards of one run (same --shard twice, or different selections?)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Verdict;
    use crate::report::{Outcome, Status};

    fn case(id: &str, failed: bool) -> Case {
        let error = failed.then(|| "it failed".to_string());
        Case::judged(
            id,
            "t",
            &[],
            Verdict::default(),
            error,
            Duration::from_secs(1),
        )
    }

    fn report(command: Command, cases: Vec<Case>, wall: u64) -> Report {
        Report {
            command,
            runner: "`runner`, started for each scenario".into(),
            profile: None,
            scale: Some(0.01),
            cases,
            warnings: Vec::new(),
            wall: Duration::from_secs(wall),
        }
    }

    fn write(dir: &std::path::Path, name: &str, report: &Report) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, report.json()).unwrap();
        path
    }

    #[test]
    fn conform_shards_merge_in_the_runs_order_with_one_profile_case() {
        let dir = std::env::temp_dir().join(format!("merge-conform-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conform = |cases, wall| report(Command::Conform, cases, wall);
        let a = write(
            &dir,
            "a.json",
            &conform(
                vec![
                    case(EVERY_SHARD, false),
                    case("jobs/b", false),
                    case("endpoint/tls", true),
                    case("endpoint/no-token", false),
                ],
                30,
            ),
        );
        let b = write(
            &dir,
            "b.json",
            &conform(
                vec![case(EVERY_SHARD, true), case("disconnects/a", false)],
                40,
            ),
        );
        let merged = merge(&[a.clone(), b.clone()]).expect("conform reports merge");
        let ids: Vec<&str> = merged.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                EVERY_SHARD,
                "disconnects/a",
                "jobs/b",
                "endpoint/tls",
                "endpoint/no-token"
            ]
        );
        assert_eq!(
            merged.cases[0].status,
            Status::Failed,
            "a failed profile case wins"
        );
        assert_eq!(merged.wall, Duration::from_secs(40));
        assert!(!merged.passed());
        let twice = merge(&[a.clone(), a.clone()]).err().unwrap();
        assert!(twice.contains("jobs/b is in both"), "{twice}");
        let run = write(
            &dir,
            "run.json",
            &report(Command::Run, vec![case("jobs/c", false)], 1),
        );
        let mixed = merge(&[a.clone(), run]).err().unwrap();
        assert!(mixed.contains("another command"), "{mixed}");
        let soak = write(&dir, "soak.json", &report(Command::Soak, Vec::new(), 1));
        let soak = merge(&[a, soak]).err().unwrap();
        assert!(soak.contains("not a shard"), "{soak}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
