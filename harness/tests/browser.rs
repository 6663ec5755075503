//! The job page and the terminal page of `session-harness serve` in headless
//! Chromium (Debian's `chromium` and `chromium-driver`), driven through
//! WebDriver: what a user of the Debug button sees, with this project's
//! runner on real sockets behind the harness's Workhorse.
//!
//! Without Chromium the tests are skipped with a message, unless `CI` is set:
//! then a missing browser fails them (`.ci/run` installs it). Screenshots of
//! each state go to `target/browser-screenshots/`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use session_harness::chromium::{Chromium, Programs, ENTER};
use session_harness::scenario::load_str;
use session_harness::serve::{self, Options, RunnerChoice, Served};

/// Chromium is heavy for a small CI machine: one browser test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// How long a page may take to show what a test waits for.
const SHOWS: Duration = Duration::from_secs(20);

/// The programs, or `None` (skip) when they are missing and CI is not set.
fn programs() -> Option<Programs> {
    match Programs::find() {
        Ok(programs) => Some(programs),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}; CI is set, so the browser tests must run")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A world with alice (developer, owner of the jobs), bob (developer) and
/// carol (reporter), the runner's `executor`, and `jobs` as TOML.
fn world(executor: &str, jobs: &str) -> session_harness::scenario::Scenario {
    let text = format!(
        r#"
title = "browser test"
user_sees = "-"
spec = ["AU-2"]
[runner]
executor = "{executor}"
session_timeout = 120
[users.alice]
role = "developer"
[users.bob]
role = "developer"
[users.carol]
role = "reporter"
{jobs}
"#
    );
    load_str(&text, std::path::Path::new("(test)"), "browser/test").expect("a valid world")
}

/// A job of alice's whose script keeps it running for the test.
const RUNNING_JOB: &str = r#"
[[job]]
id = 1
owner = "alice"
script = ["sleep 120"]
"#;

/// One page test's world: `serve` of `jobs` on a runner with `executor`
/// (over TLS with `tls`; a docker runner's jobs in `job_image`), and a
/// headless Chromium, one test at a time.
struct Page {
    served: Served,
    browser: Chromium,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Page {
    /// `None` (the test is skipped) without Chromium.
    async fn start(executor: &str, jobs: &str, tls: bool, job_image: Option<&str>) -> Option<Page> {
        let programs = programs()?;
        let one = ONE_AT_A_TIME.lock().await;
        let options = Options {
            scenario: world(executor, jobs),
            listen: "127.0.0.1:0".into(),
            tls,
            runner: RunnerChoice::InProcess,
            job_image: job_image.map(str::to_string),
        };
        let served = serve::start(&options).await.expect("serve starts");
        let browser = Chromium::launch(&programs).await.expect("Chromium starts");
        Some(Page {
            served,
            browser,
            _one: one,
        })
    }

    async fn stop(self) {
        self.browser.quit().await;
        self.served.stop().await;
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("browser-screenshots")
        .join(format!("{name}.png"))
}

async fn screenshot(browser: &Chromium, name: &str) {
    let path = screenshot_path(name);
    browser.screenshot(&path).await.expect("a screenshot");
}

/// What the job page shows now.
const JOB_PAGE: &str = "
    const s = document.getElementById('status');
    const d = document.getElementById('debug');
    if (!s || !d || s.textContent === '…') return null;
    // Debug as the user sees it: rendered on the page, whatever the DOM says.
    return { status: s.textContent, debug: d.getClientRects().length > 0,
             why: document.getElementById('no-debug').textContent,
             log: document.getElementById('log').textContent };";

/// The job page once `condition` (JS over `job`) holds.
async fn job_page_when(browser: &Chromium, what: &str, condition: &str) -> Value {
    let script = format!(
        "const job = (function() {{ {JOB_PAGE} }})(); return job && ({condition}) ? job : null;"
    );
    let last = format!("(function() {{ {JOB_PAGE} }})()");
    match browser.wait_for(what, &script, SHOWS).await {
        Ok(job) => job,
        Err(e) => {
            let now = browser
                .execute(&format!("return {last};"), Vec::new())
                .await;
            panic!("{e}; the job page shows {now:?}")
        }
    }
}

async fn log_in(browser: &Chromium, served: &Served, user: &str, job: u64) {
    let url = format!("{}/-/login?user={user}&back=/-/jobs/{job}", served.origin());
    browser.goto(&url).await.expect("the job page opens");
}

/// The lines of the terminal page's xterm.js screen once one of them is `line`.
async fn terminal_shows(browser: &Chromium, line: &str) -> Vec<String> {
    let script = format!(
        "const t = window.harnessTerminal; if (!t) return null;
         const b = t.buffer.active; const lines = [];
         for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
         return lines.some((l) => l.trim() === {line:?}) ? lines : null;"
    );
    let shown = browser
        .wait_for(
            &format!("the terminal shows a line {line:?}"),
            &script,
            SHOWS,
        )
        .await
        .expect("the terminal's screen");
    serde_json::from_value(shown).expect("lines")
}

async fn terminal_state_when(browser: &Chromium, what: &str, condition: &str) -> String {
    let script = format!(
        "const s = document.getElementById('state'); const state = s && s.textContent; return state && ({condition}) ? state : null;"
    );
    match browser.wait_for(what, &script, SHOWS).await {
        Ok(state) => state.as_str().unwrap_or_default().to_string(),
        Err(e) => {
            let now = browser
                .execute(
                    "const s = document.getElementById('state'); return s && s.textContent;",
                    Vec::new(),
                )
                .await;
            panic!("{e}; the terminal page's state is {now:?}")
        }
    }
}

/// Clicks Debug on the job page and switches to the tab it opens.
async fn open_terminal(browser: &Chromium) -> (String, String) {
    let job_tab = browser.window().await.expect("the job tab");
    let debug = browser
        .find("#debug")
        .await
        .expect("find")
        .expect("a Debug button");
    browser.click(&debug).await.expect("Debug can be clicked");
    let give_up = tokio::time::Instant::now() + SHOWS;
    let terminal_tab = loop {
        let tabs = browser.windows().await.expect("tabs");
        if let Some(tab) = tabs.into_iter().find(|t| *t != job_tab) {
            break tab;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "Debug opened no new tab"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.switch_to(&terminal_tab).await.expect("switch tab");
    (job_tab, terminal_tab)
}

/// Alice logs in, clicks Debug on job 1's page, and waits for the terminal
/// tab to connect: the job tab and the terminal tab.
async fn alice_connects_to_job_1(browser: &Chromium, served: &Served) -> (String, String) {
    log_in(browser, served, "alice", 1).await;
    job_page_when(browser, "Debug on job 1", "job.debug").await;
    let tabs = open_terminal(browser).await;
    terminal_state_when(browser, "the terminal connects", "state === 'connected'").await;
    tabs
}

/// Types a command into xterm.js as a user does: keys into its textarea.
async fn type_command(browser: &Chromium, command: &str) {
    let input = browser
        .find(".xterm-helper-textarea")
        .await
        .expect("find")
        .expect("xterm.js's input");
    browser
        .type_into(&input, &format!("{command}{ENTER}"))
        .await
        .expect("typing");
}

/// SPEC: AU-1, AU-2, WH-1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_sees_debug_on_a_running_job_and_not_on_a_finished_one() {
    let jobs = r#"
[[job]]
id = 1
owner = "alice"
script = ["echo 'Building...'", "sleep 120"]
[[job]]
id = 2
owner = "alice"
script = ["echo 'Lint passed'"]
"#;
    let Some(page) = Page::start("shell", jobs, false, None).await else {
        return;
    };
    let (browser, served) = (&page.browser, &page.served);

    log_in(browser, served, "alice", 1).await;
    let running = job_page_when(
        browser,
        "job 1 runs with Debug, its log shown",
        "job.status === 'running' && job.debug && job.log.includes('Building...')",
    )
    .await;
    assert!(
        running["log"].as_str().unwrap().contains("Building..."),
        "{running}"
    );
    screenshot(browser, "1-job-page-owner-running-debug").await;

    browser
        .goto(&format!("{}/-/jobs/2", served.origin()))
        .await
        .unwrap();
    let finished = job_page_when(browser, "job 2 succeeds", "job.status === 'success'").await;
    assert_eq!(finished["debug"], false, "{finished}");
    assert!(
        finished["why"].as_str().unwrap().contains("not running"),
        "{finished}"
    );
    screenshot(browser, "2-job-page-owner-finished-no-debug").await;

    page.stop().await;
}

/// SPEC: AU-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_developer_and_a_reporter_see_no_debug_button() {
    let jobs = RUNNING_JOB;
    let Some(page) = Page::start("shell", jobs, false, None).await else {
        return;
    };
    let (browser, served) = (&page.browser, &page.served);

    for (user, why) in [
        ("bob", "only the user who started the job"),
        ("carol", "only the user who started the job"),
    ] {
        log_in(browser, served, user, 1).await;
        let job = job_page_when(browser, "job 1 runs", "job.status === 'running'").await;
        assert_eq!(job["debug"], false, "{user}: {job}");
        assert!(job["why"].as_str().unwrap().contains(why), "{user}: {job}");
        screenshot(browser, &format!("3-job-page-{user}-no-debug")).await;
    }
    // The switcher shows whom one is: the reporter's own job would not
    // change the answer (AU-2 wants Developer), as Rails' unit tests check.
    let shown = browser
        .execute(
            "return document.getElementById('user').selectedOptions[0].textContent;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(shown, "carol (reporter)");

    page.stop().await;
}

/// SPEC: WH-1, WS-2, EX-6
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_opens_a_terminal_where_typing_echo_shows_42() {
    let jobs = RUNNING_JOB;
    // Over TLS: the page opens wss://, as on a GitLab served over HTTPS.
    let Some(page) = Page::start("shell", jobs, true, None).await else {
        return;
    };
    let (browser, served) = (&page.browser, &page.served);

    alice_connects_to_job_1(browser, served).await;
    let protocol = browser
        .execute(
            "const s = window.harnessSocket; return [s.url, s.protocol, s.binaryType];",
            Vec::new(),
        )
        .await
        .unwrap();
    let url = protocol[0].as_str().unwrap();
    assert!(
        url.starts_with("wss://") && url.ends_with("/-/jobs/1/terminal.ws"),
        "{protocol}"
    );
    assert_eq!(protocol[1], "terminal.gitlab.com");
    assert_eq!(protocol[2], "arraybuffer");

    type_command(browser, "echo $((6*7))").await;
    let screen = terminal_shows(browser, "42").await;
    assert!(
        screen.iter().any(|l| l.contains("echo $((6*7))")),
        "{screen:?}"
    );
    screenshot(browser, "4-terminal-echo-42").await;

    // Everything the page loaded came from the harness itself (no CDN).
    let foreign = browser
        .execute(
            "return performance.getEntriesByType('resource').map((e) => e.name)
               .filter((n) => !n.startsWith(location.origin) && !n.startsWith('wss://' + location.host));",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(foreign, serde_json::json!([]), "loaded from elsewhere");

    page.stop().await;
}

/// SPEC: LC-1, LC-2, LC-6, WH-5
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_open_when_the_script_ends_holds_the_job_until_its_tab_closes() {
    let jobs = r#"
[[job]]
id = 1
owner = "alice"
script = ["echo 'Building...'", "sleep 6", "echo 'Build finished'"]
"#;
    let Some(page) = Page::start("shell", jobs, false, None).await else {
        return;
    };
    let (browser, served) = (&page.browser, &page.served);

    let (job_tab, terminal_tab) = alice_connects_to_job_1(browser, served).await;

    browser.switch_to(&job_tab).await.unwrap();
    let held = job_page_when(
        browser,
        "the job is held by the terminal",
        "job.log.includes('Terminal is connected, will time out in')",
    )
    .await;
    assert_eq!(held["status"], "running", "{held}");
    assert!(
        held["log"].as_str().unwrap().contains("Build finished"),
        "{held}"
    );
    screenshot(browser, "5-job-page-held-by-terminal").await;
    // Still held a moment later: only the terminal's end lets it finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = job_page_when(browser, "job page", "true").await;
    assert_eq!(still["status"], "running", "{still}");

    browser.switch_to(&terminal_tab).await.unwrap();
    browser
        .close_window()
        .await
        .expect("the terminal's tab closes");
    browser.switch_to(&job_tab).await.unwrap();
    let done = job_page_when(browser, "the job succeeds", "job.status === 'success'").await;
    assert!(
        done["log"]
            .as_str()
            .unwrap()
            .contains("Terminal disconnected"),
        "{done}"
    );
    screenshot(browser, "6-job-page-success-after-terminal-closed").await;

    page.stop().await;
}

/// SPEC: DK-3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_docker_executor_the_terminal_closes_when_the_script_ends() {
    if !support::docker_engine_ready() {
        return;
    }
    // The script ends when the terminal's user says so, by a file written
    // from the terminal (the same container): not a race with page loads.
    let jobs = r#"
[[job]]
id = 1
owner = "alice"
script = ["for i in $(seq 1200); do [ -e done-debugging ] && exit 0; sleep 0.1; done; exit 1"]
"#;
    let image = Some(support::DOCKER_TEST_IMAGE);
    let Some(page) = Page::start("docker", jobs, false, image).await else {
        return;
    };
    let (browser, served) = (&page.browser, &page.served);

    let (job_tab, _) = alice_connects_to_job_1(browser, served).await;
    type_command(browser, "touch done-debugging").await;
    let closed =
        terminal_state_when(browser, "the terminal closes", "state.startsWith('closed')").await;
    assert_eq!(closed, "closed (1001 build container exited)");
    screenshot(browser, "7-terminal-closed-build-container-exited").await;

    browser.switch_to(&job_tab).await.unwrap();
    let done = job_page_when(browser, "the job succeeds", "job.status === 'success'").await;
    assert!(
        !done["log"]
            .as_str()
            .unwrap()
            .contains("Terminal is connected"),
        "{done}"
    );

    page.stop().await;
    // serve's runner token is glrt-session-harness: labelled glrt-ses.
    assert_eq!(support::containers_left("glrt-ses"), "", "containers left");
}

/// `conform --browser chromium`: the scenarios a page can play open their
/// terminals with Chromium's WebSocket stack, and a conforming runner passes
/// them (here this project's, in-process, started with the printed config).
/// SPEC: WH-1, WH-5, LC-2, WS-7
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_holds_a_runner_against_chromiums_websocket() {
    use session_harness::conform::{conform, Progress, Runner};
    use session_harness::report::{Outcome, Status};
    let Some(programs) = programs() else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let played = [
        "disconnects/browser-closes",
        "disconnects/shell-exit-then-new-shell",
    ];
    let root = session_harness::catalogue::root();
    let scenarios: Vec<_> = session_harness::catalogue::discover(&root, &[])
        .expect("the catalogue loads")
        .into_iter()
        .filter(|s| played.contains(&s.id.as_str()))
        .collect();
    assert_eq!(scenarios.len(), played.len());
    let options = session_harness::conform::Options {
        runner: Runner::Running,
        scenarios,
        listen: "127.0.0.1:0".into(),
        session_listen: None,
        session_advertise: None,
        config_path: None,
        // A page acts through WebDriver, tens of milliseconds per action.
        scale: 0.05,
        slack: Duration::from_millis(500),
        wait_runner: Duration::from_secs(30),
        pings: false,
        browser: Some(programs),
        endpoint: true,
        job_image: None,
        engine_holds_starts: false,
    };
    let home = std::env::temp_dir().join(format!(
        "session-harness-browser-home-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&home).unwrap();
    let mut runner = None;
    let mut start_runner = |progress: Progress<'_>| {
        if let Progress::Waiting { config, .. } = progress {
            let config = session_server::config::Config::parse(config).expect("the printed config");
            let machine = session_server::machine::os::OsMachine {
                home: Some(home.clone()),
                ..Default::default()
            };
            let parts = session_server::runner::RunnerParts::new(
                config,
                session_server::net::TokioNet,
                std::sync::Arc::new(machine),
                session_server::rng::Rng::from_os(),
            );
            runner = Some(tokio::spawn(session_server::runner::Runner::start(parts)));
        }
    };
    let report = tokio::time::timeout(
        Duration::from_secs(300),
        conform(&options, &mut start_runner),
    )
    .await
    .expect("conformance ends")
    .expect("conformance runs");
    let runner = runner
        .expect("conform printed a config")
        .await
        .unwrap()
        .unwrap();
    runner.stop(session_server::runner::StopMode::Abort).await;
    let _ = std::fs::remove_dir_all(&home);
    print!("{}", report.summary());
    for id in played {
        let case = report
            .cases
            .iter()
            .find(|c| c.id == id)
            .expect("the case ran");
        assert_eq!(case.status, Status::Passed, "{id}: {case:?}");
        assert!(
            case.notes.iter().any(|n| n.contains("headless Chromium")),
            "{id} was not played by Chromium: {:?}",
            case.notes
        );
    }
}
