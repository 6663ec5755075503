//! Part 3: TLS + WebSocket upgrade setups per second against one session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use session_server::coordinator::api::SessionInfo;
use session_server::machine::sim::SimMachine;
use session_server::net::TokioNet;
use session_server::session::Session;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{open_job_terminal, Browser, BINARY};
use crate::cpu::cpu_seconds;
use crate::support::{self, connect, world, World};
use crate::{figure, heading, stop, within};

const SETUP_PERIOD: Duration = Duration::from_secs(3);
const SETUP_PERIOD_REAL_PTY: Duration = Duration::from_secs(2);

/// Setups against a real PTY's session: job 3 of the in-process runner.
pub(crate) async fn real_pty(world: &World) -> anyhow::Result<()> {
    setups_per_second(world, 3, SETUP_PERIOD_REAL_PTY, "bash in a real PTY").await
}

/// Setups against a session of the simulated machine: its shell is a task, so
/// the figure is the server's (TLS, HTTP, upgrade, relay, close), not fork/exec.
pub(crate) async fn simulated() -> anyhow::Result<()> {
    heading("3. TLS + WebSocket upgrade setups per second, sequential, one session");
    let sim = world("shell", 600, Arc::new(SimMachine), |_| {}).await;
    let result = setups_per_second(&sim, 1, SETUP_PERIOD, "simulated shell (SimMachine)").await;
    stop(sim).await?;
    result
}

/// Repeats full setups on job `id`'s session for `period`; prints setups/s.
async fn setups_per_second(
    world: &World,
    id: u64,
    period: Duration,
    machine: &str,
) -> anyhow::Result<()> {
    let (session, ws) = open_job_terminal(world, id).await?;
    // The server's side of the session, to know when its terminal slot is free.
    let server_side = world
        .runner
        .sessions()
        .route(&support::path(&session, "/exec"))
        .map(|(session, _)| session)
        .context("the runner has no such session")?;
    close_and_wait(ws, &server_side).await?;
    for _ in 0..10 {
        one_setup(&session, &server_side).await?; // warm-up
    }
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let mut setups = 0u32;
    while start.elapsed() < period {
        one_setup(&session, &server_side)
            .await
            .with_context(|| format!("setup {}", setups + 1))?;
        setups += 1;
    }
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    figure(
        f64::from(setups) / seconds,
        "setups/s",
        &format!(
            "{machine}: TCP connect, TLS handshake (trusting only the session cert), upgrade to 101, close frame, wait for the close; {setups} in {seconds:.1} s"
        ),
    );
    figure(
        seconds * 1e3 / f64::from(setups),
        "ms",
        &format!("{machine}: mean time of one such setup"),
    );
    // Both ends run here, on 2 threads or more: which share is the server's.
    figure(
        (cpu.process - cpu.main_thread) * 1e3 / f64::from(setups),
        "CPU ms",
        &format!("{machine}: per setup, runtime workers (the runner's server)"),
    );
    figure(
        cpu.main_thread * 1e3 / f64::from(setups),
        "CPU ms",
        &format!("{machine}: per setup, the client (bench main thread)"),
    );
    Ok(())
}

/// One full setup: TCP connect, TLS handshake, upgrade, close, wait for the close.
async fn one_setup(session: &SessionInfo, server_side: &Session) -> anyhow::Result<()> {
    // `connect` dials, shakes hands trusting only the session certificate
    // (a fresh client config each time: no TLS resumption) and expects the 101.
    let ws = within(
        Duration::from_secs(10),
        "a terminal upgrade",
        connect(&TokioNet, session, BINARY),
    )
    .await?;
    close_and_wait(ws, server_side).await
}

/// Sends a close frame and waits for the server's: its close frame, the end of
/// the transport (TLS close_notify or FIN), and its release of the session's
/// single terminal slot, without which the next setup would get 423.
async fn close_and_wait(mut ws: Browser, server_side: &Session) -> anyhow::Result<()> {
    let closed = async {
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .context("sending the close frame")?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
                other => bail!("no close frame from the server: {other:?}"),
            }
        }
        let mut buf = [0u8; 512];
        while let Ok(1..) = ws.get_mut().read(&mut buf).await {}
        server_side.disconnected().await;
        Ok(())
    };
    within(Duration::from_secs(10), "the server's close", closed).await?
}
