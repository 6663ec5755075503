//! `conform` against a runner this project did not write: gitlab-python-runner
//! (PyPI, pure Python; `.ci/run` installs it, pinned), through the wrapper
//! `tests/foreign/python_runner.py` that turns the harness's config.toml into
//! its own. It advertises `features.session` and `terminal` but offers no
//! session: the suite must run to completion against it, start with a profile
//! that says so, explain every failure, and never panic, whether the harness
//! starts it per scenario (`--runner-cmd`) or it keeps running (`--listen`),
//! where it sleeps 40 s after an empty answer unless job requests are held.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use session_harness::catalogue;
use session_harness::conform::{conform, Options, Progress, Runner};
use session_harness::report::{human, Outcome, Report, Status};

static PANICS: AtomicUsize = AtomicUsize::new(0);
/// The tests count panics process-wide: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn wrapper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/foreign/python_runner.py")
}

/// The Python runner must be installed: a CI that lacks it fails here, never skips.
fn python_runner_is_installed() {
    let found = std::process::Command::new("python3")
        .args(["-c", "import GitlabPyRunner, gitlabemu"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "gitlab-python-runner is not installed for python3: \
         pip install gitlab-python-runner==14.3.20 gitlab-emulator==1.1.9 (.ci/run does)"
    );
}

/// Its shell must not read this machine's dotfiles (they can stall): a HOME
/// in the target dir's folder for tests (one, reused: none left behind).
fn home() -> PathBuf {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conform-foreign-home");
    std::fs::create_dir_all(&home).expect("a HOME for the runner");
    home
}

/// The scenarios whose id starts with one of `prefixes` (none: all of them).
fn options(runner: Runner, prefixes: &[&str]) -> Options {
    let all = catalogue::discover(&catalogue::root(), &[]).expect("the catalogue loads");
    let scenarios = all
        .into_iter()
        .filter(|s| prefixes.is_empty() || prefixes.iter().any(|p| s.id.starts_with(p)))
        .collect();
    Options {
        runner,
        scenarios,
        listen: "127.0.0.1:0".into(),
        session_listen: None,
        session_advertise: None,
        config_path: Some(std::env::temp_dir().join(format!(
            "session-harness-conform-python-{}.toml",
            std::process::id()
        ))),
        scale: 0.01,
        slack: Duration::from_millis(500),
        wait_runner: Duration::from_secs(20),
        pings: false,
        endpoint: true,
        job_image: None,
        engine_holds_starts: false,
        browser: None,
    }
}

/// What every report against this runner must show.
fn judged_as_sessionless(report: &Report) {
    let profile = report
        .profile
        .as_ref()
        .expect("a profile from its job request");
    assert!(
        profile.line().contains("no session offered"),
        "{}",
        profile.line()
    );
    assert_eq!(profile.name, "gitlab-python-runner");
    assert_eq!(profile.version, "14.3.20");
    let first = &report.cases[0];
    assert_eq!(first.id, "runner/job-request");
    assert_eq!(first.status, Status::Failed);
    assert_eq!(first.cause.as_deref(), Some("no session offered"));
    let unexplained: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.failed() && c.cause.is_none())
        .map(|c| human(c, 1, 1))
        .collect();
    assert!(
        unexplained.is_empty(),
        "failures without a cause:\n{}",
        unexplained.join("")
    );
    assert!(report
        .summary()
        .contains("runner profile: gitlab-python-runner 14.3.20"));
    // It clones although its jobs say GIT_STRATEGY=none: the harness's GitLab
    // serves the job's commit, so no job fails before its script.
    let crashed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.cause.as_deref().is_some_and(|c| c.starts_with("job ")))
        .map(|c| human(c, 1, 1))
        .collect();
    assert!(
        crashed.is_empty(),
        "jobs that failed:\n{}",
        crashed.join("")
    );
}

fn the_python_runner() -> Runner {
    Runner::Command {
        command: format!("python3 '{}' {{config}}", wrapper().display()),
        env: vec![("HOME".into(), home().display().to_string())],
    }
}

fn show(progress: Progress<'_>) {
    match progress {
        Progress::Case { case, index, total } => print!("{}", human(case, index, total)),
        Progress::Profile(profile) => println!("runner profile: {}", profile.line()),
        Progress::Waiting { .. } => {}
    }
}

// SPEC: JOB-4
/// The Python runner clones its project although the job says
/// GIT_STRATEGY=none; with the repository the harness's GitLab serves, its
/// jobs run their scripts: their output reaches the job's trace and their
/// final state is the script's. (With no repository, every job failed in
/// `git clone`, before its script.)
#[tokio::test(flavor = "multi_thread")]
async fn the_python_runners_jobs_run_their_scripts_through_the_harness_gitlab() {
    python_runner_is_installed();
    let _one = ONE_AT_A_TIME.lock().await;
    count_panics();
    let options = options(
        the_python_runner(),
        &["deployment/no-session-server", "jobs/gitlabs-full-job"],
    );
    let report = tokio::time::timeout(Duration::from_secs(3 * 60), conform(&options, &mut show))
        .await
        .expect("the cases run to completion")
        .expect("the suite starts");
    print!("{}", report.summary());
    judged_as_sessionless(&report);
    let case = |id: &str| {
        report
            .cases
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no case {id}"))
    };
    // `sleep`, then success; no session offered, as its config has none.
    let no_session = case("deployment/no-session-server");
    assert_eq!(
        no_session.status,
        Status::Passed,
        "{}",
        human(no_session, 1, 1)
    );
    // `echo building`: its output is in the trace, and the job succeeded; only
    // what needs a terminal fails, for the one cause.
    let full = case("jobs/gitlabs-full-job");
    let failed_checks: Vec<(&str, &str)> = full
        .verdict
        .failures
        .iter()
        .map(|f| (f.check.as_str(), f.expected.as_str()))
        .collect();
    assert!(
        !failed_checks
            .iter()
            .any(|(check, expected)| *check == "job 1: state" || expected.contains("building")),
        "{}",
        human(full, 1, 1)
    );
    assert!(
        full.cause
            .as_deref()
            .unwrap_or("")
            .starts_with("no session offered"),
        "{}",
        human(full, 1, 1)
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the harness panicked");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_runner_is_judged_case_by_case_with_the_missing_session_named() {
    python_runner_is_installed();
    let _one = ONE_AT_A_TIME.lock().await;
    count_panics();
    let options = options(the_python_runner(), &[]);
    let report = tokio::time::timeout(Duration::from_secs(20 * 60), conform(&options, &mut show))
        .await
        .expect("the suite runs to completion")
        .expect("the suite starts");
    print!("{}", report.summary());
    judged_as_sessionless(&report);
    // Every endpoint-level case fails for the one reason, said first.
    for case in report
        .cases
        .iter()
        .filter(|c| c.id.starts_with("endpoint/"))
    {
        assert!(case.failed(), "{}", human(case, 1, 1));
        assert!(
            case.cause
                .as_deref()
                .unwrap_or("")
                .starts_with("no session offered"),
            "{}",
            human(case, 1, 1)
        );
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the harness panicked");
}

/// `--listen`: the runner keeps running; it sleeps 40 s after an empty answer,
/// so each scenario would wait for it unless its job requests are held.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_python_runner_gets_each_job_at_once_and_nothing_panics() {
    python_runner_is_installed();
    let _one = ONE_AT_A_TIME.lock().await;
    count_panics();
    let options = options(Runner::Running, &["disconnects/"]);
    let started: Mutex<Option<tokio::process::Child>> = Mutex::new(None);
    let mut show = |progress: Progress<'_>| match progress {
        Progress::Waiting { path, .. } => {
            let child = tokio::process::Command::new("python3")
                .arg(wrapper())
                .arg(path)
                .env("HOME", home())
                .kill_on_drop(true)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting the Python runner");
            *started.lock().unwrap() = Some(child);
        }
        Progress::Case { case, index, total } => print!("{}", human(case, index, total)),
        Progress::Profile(profile) => println!("runner profile: {}", profile.line()),
    };
    let report = tokio::time::timeout(Duration::from_secs(10 * 60), conform(&options, &mut show))
        .await
        .expect("the suite runs to completion")
        .expect("the suite starts");
    drop(started.lock().unwrap().take());
    print!("{}", report.summary());
    judged_as_sessionless(&report);
    let ran: Vec<_> = report.cases.iter().filter(|c| c.waited.is_some()).collect();
    assert!(!ran.is_empty(), "no scenario got its job to the runner");
    for case in ran {
        let waited = case.waited.unwrap();
        assert!(
            waited < Duration::from_secs(10),
            "{} waited {waited:?} for the runner to take its job: held job requests get it at once",
            case.id
        );
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the harness panicked");
}
