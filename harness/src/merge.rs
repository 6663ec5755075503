//! `session-harness report merge`: the JSON reports of a run's shards
//! (`--shard K/N`) as the one report of the whole run, in the run's order.
//!
//! A report is a report ([`crate::report::Report`]), of `run`, `conform` or
//! `fuzz`: reports merge with reports of the same command. A case in two
//! reports means they were not shards of one run: refused, naming it. The
//! one exception is `conform`'s `runner/job-request`, which every shard runs
//! (it is the runner's profile each shard needs): the merge keeps one, a
//! failed one if any shard's failed. A fuzz campaign's shards all report
//! every rule: their counts add up, rule by rule (`fuzz_shard`), and each
//! rule's status is then the campaign's (`campaign_statuses`). A soak's
//! report is one runner's rounds, not a shard: refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::fuzz::report::rule_case;
use crate::report::{Campaign, Case, Command, Exercised, Report, Status};

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
        campaign: None,
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
        if merged.command == Command::Fuzz {
            fuzz_shard(&mut merged, name, report)?;
            continue;
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
    match merged.command {
        Command::Fuzz => {
            campaign_statuses(&mut merged);
            merged.cases.sort_by_key(rule_order);
        }
        _ => merged.cases.sort_by_key(order),
    }
    Ok(merged)
}

/// Adds a fuzz shard to the campaign: its counts to the campaign's, and each
/// rule's case (counts, failures, notes) to the same rule's.
fn fuzz_shard(merged: &mut Report, name: &str, shard: &Report) -> Result<(), String> {
    let Some(part) = &shard.campaign else {
        return Err(format!("{name}: a fuzz report without its campaign: written by an older harness? run it again with this one"));
    };
    let campaign = merged.campaign.get_or_insert_with(|| Campaign {
        seed: part.seed,
        ..Campaign::default()
    });
    if campaign.seed != part.seed {
        return Err(format!("{name}: a campaign of seed {}, the first file's is of seed {}: shards of one campaign share its seed", part.seed, campaign.seed));
    }
    campaign.lifecycles += part.lifecycles;
    campaign.steps += part.steps;
    campaign.faults_injected += part.faults_injected;
    campaign.simulated += part.simulated;
    for case in &shard.cases {
        let Some(kept) = merged.cases.iter_mut().find(|c| c.id == case.id) else {
            merged.cases.push(case.clone());
            continue;
        };
        let exercised = match (kept.exercised, case.exercised) {
            (Some(a), Some(b)) => Some(Exercised {
                lifecycles: a.lifecycles + b.lifecycles,
                checks: a.checks + b.checks,
            }),
            (a, b) => a.or(b),
        };
        kept.verdict
            .failures
            .extend(case.verdict.failures.iter().cloned());
        kept.notes.extend(case.notes.iter().cloned());
        kept.exercised = exercised;
    }
    Ok(())
}

/// Each rule's status, for the campaign as a whole: passed when some shard
/// reached it, skipped when none did, failed when any broke it.
fn campaign_statuses(merged: &mut Report) {
    let lifecycles = merged.campaign.as_ref().map_or(0, |c| c.lifecycles);
    for case in &mut merged.cases {
        let (Some(exercised), [rule]) = (case.exercised, &case.spec[..]) else {
            continue;
        };
        let whole = rule_case(rule, &case.title, exercised, lifecycles);
        if case.verdict.passed() {
            (case.status, case.skipped) = (whole.status, whole.skipped);
        } else {
            (case.status, case.skipped) = (Status::Failed, None);
        }
    }
}

/// A fuzz report's order: SPEC.md's, then the violations of no rule.
fn rule_order(case: &Case) -> usize {
    let rule = case.spec.first().map(String::as_str);
    crate::spec::RULES
        .iter()
        .position(|r| Some(r.id) == rule)
        .unwrap_or(usize::MAX)
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
        format!("not a report of `run --format json`, `conform --json` or `fuzz --json` ({e}); a report of an older harness: run it again with this one")
    })
}

fn mixed(name: &str) -> String {
    format!("{name}: a report of another command than the first file's (merge `run` reports with `run` reports, `conform` with `conform`, `fuzz` with `fuzz`)")
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
            campaign: None,
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

    #[test]
    fn fuzz_shards_add_up_rule_by_rule() {
        use crate::fuzz::report::{of, sample};
        use std::collections::BTreeMap;
        let dir = std::env::temp_dir().join(format!("merge-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (options, quiet) = sample(3, false);
        let a = write(&dir, "a.json", &of(&options, &quiet));
        let (options, mut broken) = sample(3, true);
        broken
            .coverage
            .add(&BTreeMap::from([("WS-5", 4), ("CFG-3", 1)]));
        let b = write(&dir, "b.json", &of(&options, &broken));
        let merged = merge(&[a.clone(), b]).expect("the shards of one campaign merge");
        let rule = |id: &str| merged.cases.iter().find(|c| c.id == id).unwrap();
        assert_eq!(rule("fuzz/EX-1").status, Status::Passed);
        let exercised = Exercised {
            lifecycles: 2,
            checks: 4,
        };
        assert_eq!(rule("fuzz/EX-1").exercised, Some(exercised));
        assert_eq!(
            rule("fuzz/WS-5").status,
            Status::Passed,
            "reached by one shard"
        );
        assert_eq!(
            rule("fuzz/EX-4").status,
            Status::Failed,
            "broken in one shard"
        );
        let unreached = rule("fuzz/DK-1");
        assert_eq!(unreached.status, Status::Skipped);
        let reason = unreached.skipped.as_deref().unwrap();
        assert!(
            reason.contains("never reached in 20 lifecycles"),
            "{reason}"
        );
        assert_eq!(merged.campaign.as_ref().map(|c| c.lifecycles), Some(20));
        let ids = |r: &Report| r.cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&merged), ids(&of(&options, &broken)), "SPEC.md's order");
        assert!(!merged.passed());
        let (options, other) = sample(4, false);
        let other = write(&dir, "other.json", &of(&options, &other));
        let seeds = merge(&[a, other]).err().unwrap();
        assert!(seeds.contains("share its seed"), "{seeds}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
