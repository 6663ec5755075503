//! The CI templates' commands (docs/ci/session-harness-ci.sh, which
//! docs/ci/*.yml call) run here as CI would run them: `conform` against this
//! project's runner, writing JUnit and JSON and failing on any FAIL, and one
//! shard of the nightly fuzz job. Not the CI service: its commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn script() -> PathBuf {
    root().join("docs/ci/session-harness-ci.sh")
}

/// The script's subcommands the templates call.
fn called(template: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/ci").join(template)).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split("docs/ci/session-harness-ci.sh ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The project's runner (debug build: what `cargo test` has built).
fn runner() -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .args(["build", "-p", "session-server", "--bin", "session-server"])
        .args(["--message-format=json-render-diagnostics"])
        .output()
        .expect("cargo builds the runner");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "session-server")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the runner it built")
}

/// Runs the script in a fresh directory, as a CI job's, with `env`.
fn ci(subcommand: &str, env: &[(&str, String)]) -> (Output, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "session-harness-ci-{subcommand}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new("sh");
    command
        .arg(script())
        .arg(subcommand)
        .current_dir(&dir)
        .env("SESSION_HARNESS", env!("CARGO_BIN_EXE_session-harness"))
        .env_remove("CI_NODE_INDEX")
        .env_remove("CI_NODE_TOTAL")
        // The runner's shells must not read this machine's dotfiles.
        .env("HOME", &dir)
        .env("SHELL", "/bin/sh");
    for (k, v) in env {
        command.env(k, v);
    }
    (command.output().expect("sh runs the script"), dir)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_templates_call_the_scripts_conform_and_fuzz() {
    let all: BTreeSet<String> = ["conform", "fuzz"].map(String::from).into();
    assert_eq!(called("session-harness.gitlab-ci.yml"), all);
    assert_eq!(called("session-harness.github.yml"), all);
    let gitlab =
        std::fs::read_to_string(root().join("docs/ci/session-harness.gitlab-ci.yml")).unwrap();
    assert!(gitlab.contains("junit: reports/conform-junit.xml"));
    assert!(gitlab.contains("parallel: 8"));
}

#[test]
fn conform_writes_junit_and_json_and_fails_on_any_fail() {
    let runner = runner();
    let args = "--no-pings --filter unauthorized/wrong-token".to_string();
    let (passing, dir) = ci(
        "conform",
        &[
            (
                "RUNNER_CMD",
                format!("'{}' run --config {{config}}", runner.display()),
            ),
            ("CONFORM_ARGS", args),
        ],
    );
    assert!(passing.status.success(), "{}", text(&passing));
    let junit = std::fs::read_to_string(dir.join("reports/conform-junit.xml")).unwrap();
    assert!(
        junit.contains("unauthorized/wrong-token") && junit.contains("failures=\"0\""),
        "{junit}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reports/conform.json")).unwrap()).unwrap();
    assert!(json["cases"].as_array().is_some_and(|c| c.len() > 2));
    let _ = std::fs::remove_dir_all(&dir);

    // A runner that exits at once fails its cases: the job fails, reports written.
    let (failing, dir) = ci(
        "conform",
        &[
            ("RUNNER_CMD", "true".to_string()),
            (
                "CONFORM_ARGS",
                "--no-pings --filter unauthorized/wrong-token".into(),
            ),
        ],
    );
    assert_eq!(failing.status.code(), Some(1), "{}", text(&failing));
    let junit = std::fs::read_to_string(dir.join("reports/conform-junit.xml")).unwrap();
    assert!(!junit.contains("failures=\"0\""), "{junit}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_nightly_fuzz_shard_runs_its_own_cases_for_its_duration() {
    let (output, dir) = ci(
        "fuzz",
        &[
            ("CI_NODE_INDEX", "3".into()),
            ("CI_NODE_TOTAL", "8".into()),
            ("FUZZ_SEED", "7".into()),
            ("FUZZ_DURATION", "2s".into()),
        ],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("shard 3/8: cases 2, 2+8, ... of seed 7"),
        "{all}"
    );
    assert!(!all.contains('\r'), "{all:?}");
    let summary = std::fs::read_to_string(dir.join("reports/fuzz.txt")).unwrap();
    assert!(summary.contains("no invariant broken"), "{summary}");
    let junit = std::fs::read_to_string(dir.join("reports/fuzz-junit.xml")).unwrap();
    assert!(junit.contains("name=\"fuzz/EX-1 [EX-1]\""), "{junit}");
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let json = std::fs::read_to_string(dir.join("reports/fuzz.json")).unwrap();
    assert!(json.contains("\"command\": \"fuzz\""), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}
