//! A job's life around its terminal (LC-1..7, DK-1/3), over real sockets.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use session_server::coordinator::api::SessionInfo;
use session_server::machine::sim::SimMachine;
use session_server::machine::timed::Timed;
use session_server::machine::JobTimings;
use session_server::net::TokioNet;
use session_server::runner::StopMode;
use support::*;
use tokio_tungstenite::tungstenite::Message;

async fn start(
    executor: &str,
    session_timeout: i64,
    job: session_server::coordinator::api::JobResponse,
) -> (World, SessionInfo) {
    let world = world(executor, session_timeout, Arc::new(SimMachine), |_| {}).await;
    let id = job.id;
    world.gitlab.push(job);
    let session = world.session(id).await;
    (world, session)
}

#[tokio::test]
async fn connected_terminal_holds_the_job_until_the_session_timeout() {
    let (world, session) = start("shell", 1, job(1, &["sleep 0.3"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    world
        .gitlab
        .trace_contains(1, "Terminal is connected, will time out in 1s...")
        .await;
    let close = read_close(&mut ws).await;
    assert_eq!(
        close,
        Some((
            1001,
            "terminal session timed out (maximum time allowed - 1s)".into()
        ))
    );
    let end = world.gitlab.finished(1).await;
    assert_eq!(
        end.state, "success",
        "LC-6: the timeout does not fail the job"
    );
    assert!(world
        .gitlab
        .trace(1)
        .contains("terminal session timed out (maximum time allowed - 1s)"));
}

#[tokio::test]
async fn the_wait_is_capped_by_the_job_deadline() {
    let mut j = job(1, &["sleep 1"], &[]);
    j.runner_info.timeout = 3;
    let (world, session) = start("shell", 1800, j).await;
    let _ws = connect(&TokioNet, &session, &[]).await;
    world
        .gitlab
        .trace_contains(1, "Terminal is connected, will time out in 2s...")
        .await;
    assert_eq!(world.gitlab.finished(1).await.state, "success");
}

#[tokio::test]
async fn disconnect_ends_the_wait_early() {
    let (world, session) = start("shell", 1800, job(1, &["sleep 0.3"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    world
        .gitlab
        .trace_contains(1, "Terminal is connected, will time out in 30m0s...")
        .await;
    let left = Instant::now();
    ws.send(Message::Close(None)).await.unwrap();
    assert_eq!(world.gitlab.finished(1).await.state, "success");
    assert!(left.elapsed() < Duration::from_secs(10));
    assert!(world.gitlab.trace(1).contains("Terminal disconnected"));
}

#[tokio::test]
async fn a_vanished_browser_also_ends_the_wait() {
    let (world, session) = start("shell", 1800, job(1, &["sleep 0.3"], &[])).await;
    let ws = connect(&TokioNet, &session, &[]).await;
    world
        .gitlab
        .trace_contains(1, "Terminal is connected")
        .await;
    drop(ws); // a bare TCP drop, no close frame (WS-7)
    assert_eq!(world.gitlab.finished(1).await.state, "success");
    assert!(world.gitlab.trace(1).contains("Terminal disconnected"));
}

#[tokio::test]
async fn no_terminal_means_the_job_finishes_at_once() {
    let (world, _session) = start("shell", 1800, job(1, &["sleep 0.2"], &[])).await;
    assert_eq!(world.gitlab.finished(1).await.state, "success");
    assert!(!world.gitlab.trace(1).contains("Terminal is connected"));
}

#[tokio::test]
async fn a_terminal_that_left_before_the_end_does_not_hold_the_job() {
    let (world, session) = start("shell", 1800, job(1, &["sleep 1"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    ws.send(Message::Close(None)).await.unwrap();
    assert_eq!(world.gitlab.finished(1).await.state, "success");
    assert!(!world.gitlab.trace(1).contains("Terminal is connected"));
}

#[tokio::test]
async fn a_failed_script_stays_failed_with_a_terminal() {
    let (world, session) = start("shell", 1, job(1, &["sleep 0.5", "exit 3"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_close(&mut ws).await;
    let end = world.gitlab.finished(1).await;
    assert_eq!((end.state.as_str(), end.exit_code), ("failed", Some(3)));
}

#[tokio::test]
async fn cancel_kills_the_terminal_at_once() {
    let (world, session) = start("shell", 1800, job(1, &["sleep 0.2"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    world
        .gitlab
        .trace_contains(1, "Terminal is connected")
        .await;
    world.gitlab.cancel(1);
    assert_eq!(
        read_close(&mut ws).await,
        Some((1001, "job canceled".into()))
    );
    assert_eq!(
        world.gitlab.finished(1).await.failure_reason.as_deref(),
        Some("job_canceled")
    );
}

#[tokio::test]
async fn runner_stop_kills_the_terminal_at_once() {
    let (world, session) = start("shell", 1800, job(1, &["sleep 600"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
    let World { gitlab, runner, .. } = world;
    let stopping = tokio::spawn(runner.stop(StopMode::Abort));
    assert_eq!(
        read_close(&mut ws).await,
        Some((1001, "runner shutting down".into()))
    );
    stopping.await.unwrap();
    assert_eq!(
        gitlab.finished(1).await.failure_reason.as_deref(),
        Some("runner_system_failure")
    );
}

#[tokio::test]
async fn after_the_job_its_session_is_404() {
    let (world, session) = start("shell", 1800, job(1, &["true"], &[])).await;
    world.gitlab.finished(1).await;
    let auth = ("Authorization", session.authorization.as_str());
    assert_eq!(status(&TokioNet, &session, "/exec", &[auth]).await, 404);
}

#[tokio::test]
async fn docker_terminal_drops_when_the_script_ends_and_the_job_is_not_held() {
    let (world, session) = start("docker", 1800, job(1, &["sleep 0.5"], &[])).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
    assert_eq!(
        read_close(&mut ws).await,
        Some((1001, "build container exited".into()))
    );
    assert_eq!(world.gitlab.finished(1).await.state, "success");
    assert!(!world.gitlab.trace(1).contains("Terminal is connected"));
}

#[tokio::test]
async fn docker_terminal_waits_for_the_container_to_run() {
    let late = JobTimings {
        container_start: Some(Duration::from_millis(500)),
        ..JobTimings::default()
    };
    let machine = Timed::new(SimMachine).with_job(1, late);
    let world = world("docker", 1800, Arc::new(machine), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 30"], &[]));
    let session = world.session(1).await;
    let asked = Instant::now();
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
    assert!(
        asked.elapsed() >= Duration::from_millis(400),
        "answered before the container ran"
    );
}

#[tokio::test]
async fn session_timeout_counts_from_the_script_end_not_the_connection() {
    let (world, session) = start("shell", 1, job(1, &["sleep 1"], &[])).await;
    let connected = Instant::now();
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_close(&mut ws).await;
    // Script (1 s) + timeout (1 s): about 2 s after connecting, not 1 s.
    assert!(
        connected.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        connected.elapsed()
    );
    world.gitlab.finished(1).await;
}
