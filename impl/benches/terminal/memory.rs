//! Part 4: memory per idle session, 1,000 sessions, in a separate runner
//! process ([`crate::server_process`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use session_server::coordinator::api::SessionInfo;
use session_server::net::{Net, TokioNet};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{read_until, Browser, BINARY};
use crate::server_process::{count, free_port, kill_all, ServerProcess, TempDir};
use crate::support::{self, connect, job, Gitlab};
use crate::{figure, heading, within};

const IDLE_SESSIONS: u64 = 1_000;
/// Job variable put on every job of the memory run: its processes (scripts and
/// terminal shells inherit the job's variables) are found by it in /proc.
const MARKER_VARIABLE: &str = "SESSION_SERVER_BENCH_RUN";

/// RSS of a separate `session-server run` process with 1,000 running jobs:
/// before any job, with the jobs running, and with a terminal connected to
/// each (idle, the prompt read).
pub(crate) async fn memory_per_idle_session() -> anyhow::Result<()> {
    heading(
        "4. Memory per idle session, 1,000 sessions, separate session-server process (sh = dash)",
    );
    let dir = TempDir::new()?;
    let marker = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let gitlab = Gitlab::default();
    let listener = TokioNet.bind("127.0.0.1:0").await?;
    let gitlab_address = support::local(listener.local_addr()?);
    gitlab.serve(listener);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        memory_config(&gitlab_address, free_port()?, dir.path()),
    )
    .context("writing config.toml")?;
    let mut server = ServerProcess::start(
        &config,
        &dir.path().join("server.log"),
        MARKER_VARIABLE,
        marker,
    )?;
    // The idle browsers stay up until the runner's shutdown closes them.
    let result = measure_idle_sessions(&gitlab, &mut server).await;
    if result.is_err() {
        eprintln!(
            "--- session-server log (last lines) ---\n{}",
            server.log_tail()
        );
    }
    // Stop and count leftovers even after a failure, so nothing of this run stays.
    let stopped = stop_and_count_leftovers(&mut server).await;
    let idle_browsers = result?;
    for task in idle_browsers {
        task.abort();
    }
    stopped
}

/// Stops the runner (it aborts its jobs and kills their processes), then
/// prints how many processes of this run are left, and kills them.
async fn stop_and_count_leftovers(server: &mut ServerProcess) -> anyhow::Result<()> {
    let (status, took) = server.stop().await?;
    figure(
        took.as_secs_f64(),
        "s",
        &format!("from SIGTERM to the runner's exit ({status})"),
    );
    let leftovers = server.processes();
    figure(
        leftovers.len() as f64,
        "processes",
        &format!(
            "of this run left after the runner exited (sleep: {}, sh: {}; should be 0)",
            count(&leftovers, "sleep"),
            count(&leftovers, "sh")
        ),
    );
    if !leftovers.is_empty() {
        kill_all(&leftovers);
        bail!(
            "{} processes of this run outlived the runner (killed now)",
            leftovers.len()
        );
    }
    Ok(())
}

fn memory_config(gitlab: &str, port: u16, dir: &Path) -> String {
    format!(
        "concurrent = {IDLE_SESSIONS}\ncheck_interval = 1\n\n\
         [session_server]\nlisten_address = \"127.0.0.1:{port}\"\nsession_timeout = 1800\n\n\
         [[runners]]\nname = \"bench\"\nurl = \"http://{gitlab}\"\ntoken = \"runner-token\"\n\
         executor = \"shell\"\nshell = \"sh\"\nbuilds_dir = \"{}\"\n",
        dir.join("builds").display()
    )
}

/// Returns the idle browsers' tasks, to be kept until the runner has stopped.
async fn measure_idle_sessions(
    gitlab: &Gitlab,
    server: &mut ServerProcess,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    // The first job request means the session server is bound and polling started.
    let first_poll = async {
        while gitlab.requests() == 0 {
            server.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, anyhow::Error>(())
    };
    within(
        Duration::from_secs(30),
        "the runner's first job request",
        first_poll,
    )
    .await??;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = server.rss_kib()?;

    for id in 1..=IDLE_SESSIONS {
        gitlab.push(job(
            id,
            &["sleep 600"],
            &[(MARKER_VARIABLE, &server.marker)],
        ));
    }
    let taken = async {
        let mut sessions = Vec::new();
        for id in 1..=IDLE_SESSIONS {
            sessions.push(gitlab.session(id).await);
        }
        sessions
    };
    let sessions = within(
        Duration::from_secs(60),
        "the runner to take 1,000 jobs",
        taken,
    )
    .await?;
    // Running: every script's `sleep 600` exists (scripts carry the marker).
    let running = async {
        loop {
            server.ensure_running()?;
            let sleeping = count(&server.processes(), "sleep");
            if sleeping as u64 >= IDLE_SESSIONS {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    within(
        Duration::from_secs(60),
        "1,000 `sleep 600` scripts",
        running,
    )
    .await??;
    // Each job reports its log every 3 s, all of them in the same second: let
    // that traffic happen once before measuring, or its buffers would be
    // counted as the terminals'.
    let reported = async {
        for id in 1..=IDLE_SESSIONS {
            gitlab.trace_contains(id, "step_script").await;
        }
    };
    within(
        Duration::from_secs(60),
        "every job's first log update",
        reported,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let jobs_running = server.rss_kib()?;

    let browsers = connect_idle_terminals(sessions).await;
    let connected = browsers.len() as u64;
    // Idle browsers that answer pings, as a real one would.
    let idle: Vec<_> = browsers
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.ensure_running()?;
    let terminals_connected = server.rss_kib()?;
    let still_connected = idle.iter().filter(|task| !task.is_finished()).count();
    let processes = server.processes();

    figure(baseline as f64, "KiB", "RSS of the runner before any job");
    figure(
        jobs_running as f64,
        "KiB",
        "RSS with 1,000 jobs running (sessions exist, no terminal connected)",
    );
    figure(
        terminals_connected as f64,
        "KiB",
        "RSS with the terminals connected and idle, after 2 s",
    );
    figure(
        still_connected as f64,
        "jobs",
        &format!("running with a connected terminal at that moment (of {IDLE_SESSIONS}; {connected} reached the prompt)"),
    );
    figure(
        count(&processes, "sh") as f64,
        "processes",
        "sh of this run at that moment (terminal shells, plus script shells that did not exec sleep)",
    );
    ensure!(
        connected > 0,
        "no terminal connected: no memory per session"
    );
    figure(
        (terminals_connected as f64 - jobs_running as f64) / connected as f64,
        "KiB/session",
        "RSS per idle connected terminal: (connected - jobs running) / connected (target < 64)",
    );
    figure(
        (terminals_connected as f64 - baseline as f64) / connected as f64,
        "KiB/session",
        "RSS per idle session, job included: (connected - before any job) / connected (target < 64)",
    );
    Ok(idle)
}

/// Connects a terminal to each session (a few at a time) and reads each until
/// the shell's prompt; returns those that got there.
async fn connect_idle_terminals(sessions: Vec<SessionInfo>) -> Vec<Browser> {
    let limit = Arc::new(Semaphore::new(32));
    let mut opening = JoinSet::new();
    for session in sessions {
        let limit = limit.clone();
        opening.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let open = async {
                let mut ws = connect(&TokioNet, &session, BINARY).await;
                // dash's prompt: `$ `, or `# ` for root.
                read_until(&mut ws, "the prompt", |seen| {
                    seen.ends_with(b"$ ") || seen.ends_with(b"# ")
                })
                .await?;
                Ok::<_, anyhow::Error>(ws)
            };
            within(Duration::from_secs(60), "a terminal and its prompt", open).await?
        });
    }
    let mut browsers = Vec::new();
    let mut failures = 0;
    while let Some(opened) = opening.join_next().await {
        match opened {
            Ok(Ok(ws)) => browsers.push(ws),
            Ok(Err(e)) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("a terminal did not reach its prompt: {e:#}");
                }
            }
            Err(e) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("a terminal connection failed: {e}");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of the terminals failed");
    }
    browsers
}
