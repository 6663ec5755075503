//! `--shard K/N` splits a run exactly, as CI's `parallel: N` jobs run it, and
//! `report merge` puts the shards' reports back together.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

fn harness(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-harness"));
    command
        .args(args)
        .env_remove("CI_NODE_INDEX")
        .env_remove("CI_NODE_TOTAL");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the harness runs")
}

fn ids(json: &[u8]) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(json).expect("a JSON report");
    assert_eq!(report["command"], "run", "{report}");
    report["cases"]
        .as_array()
        .expect("a report has its cases")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("session-harness-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const FAMILY: &str = "unauthorized/*";

#[test]
fn run_shards_are_disjoint_together_the_whole_and_merge_back() {
    let whole = harness(&["run", "--filter", FAMILY, "--format", "json"], &[]);
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let whole = ids(&whole.stdout);
    assert!(whole.len() >= 6, "{whole:?}");

    let dir = dir();
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = harness(
            &[
                "run", "--filter", FAMILY, "--format", "json", "--shard", &shard,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // GitLab CI's variables choose the same shard.
        let index = k.to_string();
        let from_ci = harness(
            &["run", "--filter", FAMILY, "--format", "json"],
            &[("CI_NODE_INDEX", &index), ("CI_NODE_TOTAL", "3")],
        );
        assert_eq!(ids(&from_ci.stdout), ids(&out.stdout), "CI_NODE_INDEX={k}");
        seen.extend(ids(&out.stdout));
        let file = dir.join(format!("shard-{k}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file);
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "a scenario ran in two shards: {seen:?}"
    );
    assert_eq!(distinct.into_iter().cloned().collect::<Vec<_>>(), whole);

    let merged_json = dir.join("all.json");
    let junit = dir.join("all.xml");
    let mut args = vec!["report", "merge"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let (json_arg, junit_arg) = (
        merged_json.display().to_string(),
        junit.display().to_string(),
    );
    args.extend(["--json", &json_arg, "--junit", &junit_arg]);
    let merged = harness(&args, &[]);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let n = whole.len();
    let summary = String::from_utf8_lossy(&merged.stdout);
    assert!(
        summary.contains(&format!(
            "{n} cases: {n} passed (0 non-strict), 0 failed, 0 skipped"
        )),
        "{summary}"
    );
    assert_eq!(ids(&std::fs::read(&merged_json).unwrap()), whole);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), whole.len(), "{xml}");

    // The same shard twice is not a whole run: refused, naming the case.
    let twice = harness(&["report", "merge", &names[0], &names[0]], &[]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("not shards of one run"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_shard_is_refused_with_what_to_write() {
    let out = harness(&["run", "--shard", "4/3"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("K/N"));
    let out = harness(&["fuzz", "--cases", "1"], &[("CI_NODE_INDEX", "2")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CI_NODE_TOTAL"));
}
