//! `session-harness report merge`: the JSON reports of a run's shards
//! (`--shard K/N`) as the one report of the whole run, in the catalogue's
//! order, and its JUnit XML.
//!
//! Reports of `run` (`--format json`) merge with reports of `run`, reports of
//! `conform` (`--json`) with reports of `conform`. A case in two reports means
//! they were not shards of one run: refused, naming it. The one exception is
//! `conform`'s `runner/job-request`, which every shard runs (it is the
//! runner's profile each shard needs): the merge keeps one, a failed one if
//! any shard's failed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::conform::{CaseReport, Report};
use crate::run::CaseResult;

/// The case of `conform` that every shard runs.
const EVERY_SHARD: &str = "runner/job-request";

/// The whole run's report.
pub enum Merged {
    Run(Vec<CaseResult>),
    Conform(Report),
}

/// One report, read.
enum Part {
    Run(Vec<CaseResult>),
    Conform(Report),
}

/// Merges the reports in `files` (at least one).
pub fn merge(files: &[PathBuf]) -> Result<Merged, String> {
    let mut parts = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        parts.push((
            path.display().to_string(),
            read(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        ));
    }
    let Some((_, first)) = parts.first() else {
        return Err("no report to merge: name the JSON reports of the shards".into());
    };
    match first {
        Part::Run(_) => {
            let mut seen = BTreeMap::new();
            for (name, part) in &parts {
                let Part::Run(cases) = part else {
                    return Err(mixed(name));
                };
                for case in cases {
                    if let Some(other) = seen.insert(case.id.clone(), (name.clone(), case.clone()))
                    {
                        return Err(twice(&case.id, &other.0, name));
                    }
                }
            }
            // The catalogue's order is the ids' order.
            Ok(Merged::Run(seen.into_values().map(|(_, c)| c).collect()))
        }
        Part::Conform(first) => {
            let mut merged = Report {
                cases: Vec::new(),
                wall: Duration::ZERO,
                ..first.clone()
            };
            let mut owner: BTreeMap<String, String> = BTreeMap::new();
            for (name, part) in &parts {
                let Part::Conform(report) = part else {
                    return Err(mixed(name));
                };
                // Shards run side by side: the whole took as long as the longest.
                merged.wall = merged.wall.max(report.wall);
                merged.profile = merged.profile.take().or_else(|| report.profile.clone());
                for case in &report.cases {
                    if case.id == EVERY_SHARD {
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
            // The run's order: the profile, the scenarios by id, then the
            // endpoint-level cases as they ran (one shard runs them all).
            merged.cases.sort_by_key(order);
            Ok(Merged::Conform(merged))
        }
    }
}

fn order(case: &CaseReport) -> (u8, String) {
    match case.id.as_str() {
        EVERY_SHARD => (0, String::new()),
        id if id.starts_with("endpoint/") => (2, String::new()),
        id => (1, id.to_string()),
    }
}

fn read(text: &str) -> Result<Part, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let part = if value.is_array() {
        serde_json::from_value(value).map(Part::Run)
    } else {
        serde_json::from_value(value).map(Part::Conform)
    };
    part.map_err(|e| format!("not a report of `run --format json` or `conform --json` ({e})"))
}

fn mixed(name: &str) -> String {
    format!("{name}: a report of another command than the first file's (merge `run` reports with `run` reports, `conform` with `conform`)")
}

fn twice(id: &str, a: &str, b: &str) -> String {
    format!("{id} is in both {a} and {b}: these are not shards of one run (same --shard twice, or different selections?)")
}

impl Merged {
    pub fn json(&self) -> String {
        match self {
            Merged::Run(cases) => crate::report::json(cases),
            Merged::Conform(report) => report.json(),
        }
    }

    pub fn junit(&self) -> String {
        match self {
            Merged::Run(cases) => crate::report::junit("session-harness", cases),
            Merged::Conform(report) => report.junit(),
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Merged::Run(cases) => {
                let wall = cases.iter().map(|c| c.wall).sum();
                crate::report::summary(cases, wall)
            }
            Merged::Conform(report) => report.summary(),
        }
    }

    pub fn passed(&self) -> bool {
        match self {
            Merged::Run(cases) => cases.iter().all(CaseResult::passed),
            Merged::Conform(report) => report.passed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::Status;
    use crate::expect::Verdict;

    fn case(id: &str, failed: bool) -> CaseReport {
        let error = failed.then(|| "it failed".to_string());
        CaseReport::judged(
            id,
            "t",
            &[],
            Verdict::default(),
            error,
            Duration::from_secs(1),
        )
    }

    fn report(cases: Vec<CaseReport>, wall: u64) -> Report {
        Report {
            runner: "`runner`, started for each scenario".into(),
            profile: None,
            scale: 0.01,
            cases,
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
        let a = write(
            &dir,
            "a.json",
            &report(
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
            &report(
                vec![case(EVERY_SHARD, true), case("disconnects/a", false)],
                40,
            ),
        );
        let Ok(Merged::Conform(merged)) = merge(&[a.clone(), b.clone()]) else {
            panic!("conform reports merge")
        };
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
        std::fs::write(dir.join("run.json"), "[]").unwrap();
        let mixed = merge(&[a, dir.join("run.json")]).err().unwrap();
        assert!(mixed.contains("another command"), "{mixed}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
