//! Conformance mode end to end: the impl's `session-server` binary, as a
//! separate process, is held to the contract over real sockets on 127.0.0.1 by
//! `conform::conform`, the function behind `session-harness conform
//! --runner-cmd`. Every case that is not skipped passes, the endpoint-level
//! cases included.
//!
//! The same run against the impl's binary with its test-only faults
//! (`session-server-faulty`, package impl/faulty) must fail exactly the cases
//! each fault breaks: [`runner_binary`] builds either package's binary and
//! [`impl_runner`] sets the runner's environment (`SESSION_SERVER_FAULTS`).
//! That test builds a second binary and runs the suite twice, so it is
//! ignored by default: `cargo test -p session-harness --test conform -- --ignored`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use session_harness::catalogue;
use session_harness::conform::report::human;
use session_harness::conform::{conform, Options, Progress, Report, Runner, Status};

/// Builds the binary of `package` (`session-server`, or `session-server-faulty`
/// with the test-only faults), whose binary has the package's name (a no-op
/// when it is fresh), and says where it is. It is another package's binary, so
/// `CARGO_BIN_EXE_*` does not name it.
fn runner_binary(package: &str) -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "-p",
        package,
        "--bin",
        package,
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let output = build.output().expect("running cargo build");
    assert!(
        output.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["target"]["name"] == package)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the executable it built")
}

/// The impl, started by the harness for each case with `env`.
fn impl_runner(binary: &std::path::Path, env: &[(&str, &str)]) -> Runner {
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Terminals run $SHELL; an interactive bash reads the user's ~/.bashrc,
    // which on some machines takes seconds (e.g. `pyenv init`). The contract
    // does not depend on the shell.
    env.push(("SHELL".into(), "/bin/sh".into()));
    // Nor may its shells and scripts read this host's dotfiles: a HOME of its own.
    let home = std::env::temp_dir().join(format!(
        "session-harness-conform-home-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&home).expect("creating a private HOME for the runner");
    env.push(("HOME".into(), home.display().to_string()));
    env.push(("RUST_LOG".into(), "session_server=info".into()));
    Runner::Command {
        command: format!("'{}' run --config {{config}}", binary.display()),
        env,
    }
}

/// Runs every case against `runner`; `name` tells its config file apart.
async fn conform_impl(runner: Runner, name: &str) -> Report {
    let scenarios = catalogue::discover(&catalogue::root(), &[]).expect("the catalogue loads");
    let config = std::env::temp_dir().join(format!(
        "session-harness-conform-{name}-{}.toml",
        std::process::id()
    ));
    let options = Options {
        runner,
        scenarios,
        listen: "127.0.0.1:0".into(),
        session_listen: None,
        session_advertise: None,
        config_path: Some(config.clone()),
        scale: 0.01,
        slack: Duration::from_millis(500),
        wait_runner: Duration::from_secs(30),
    };
    let mut show = |progress: Progress<'_>| {
        if let Progress::Case { case, index, total } = progress {
            print!("{}", human(case, index, total));
        }
    };
    let report = tokio::time::timeout(Duration::from_secs(15 * 60), conform(&options, &mut show))
        .await
        .expect("conformance ends")
        .expect("conformance runs");
    let _ = std::fs::remove_file(config);
    print!("{}", report.summary());
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn the_impl_passes_every_case_that_is_not_skipped() {
    let binary = runner_binary("session-server");
    let report = conform_impl(impl_runner(&binary, &[]), "impl").await;
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.failed())
        .map(|c| human(c, 1, 1))
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("")
    );
    let ran = |prefix: &str| {
        report
            .cases
            .iter()
            .filter(|c| c.id.starts_with(prefix) && c.status != Status::Skipped)
            .count()
    };
    // Nothing passes by being skipped: most scenarios run for real, and every endpoint case.
    assert!(ran("") - ran("endpoint/") >= 25, "too few scenarios ran");
    assert_eq!(ran("endpoint/"), session_harness::conform::endpoint::COUNT);
    let skipped_without_reason = report
        .cases
        .iter()
        .filter(|c| c.status == Status::Skipped && c.skipped.as_deref().unwrap_or("").is_empty())
        .count();
    assert_eq!(skipped_without_reason, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "builds session-server-faulty and runs the suite twice (minutes)"]
async fn a_faulty_impl_fails_exactly_the_cases_its_fault_breaks() {
    let binary = runner_binary("session-server-faulty");
    for (fault, breaks) in [
        (
            "no-lock",
            &[
                "disconnects/second-tab-gets-423",
                "endpoint/second-terminal",
            ][..],
        ),
        ("uncapped-timeout", &["timeouts/capped-by-job-deadline"][..]),
    ] {
        let runner = impl_runner(&binary, &[("SESSION_SERVER_FAULTS", fault)]);
        let report = conform_impl(runner, fault).await;
        let failed: Vec<&str> = report
            .cases
            .iter()
            .filter(|c| c.failed())
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(failed, breaks, "with the fault {fault}");
    }
}
