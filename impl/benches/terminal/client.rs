//! The browser's side of a terminal, as the parts use it: open a job's
//! terminal, type, read output until a mark, wait for the shell to go quiet.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use session_server::coordinator::api::SessionInfo;
use session_server::net::TokioNet;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::{connect, job, World};
use crate::within;

/// A browser's end of a terminal connection.
pub(crate) type Browser = WebSocketStream<TlsStream<tokio::net::TcpStream>>;

/// The subprotocol offered by every client here: raw bytes in binary frames.
pub(crate) const BINARY: &[&str] = &["terminal.gitlab.com"];

/// The next output frame's bytes; an error if the connection ends.
pub(crate) async fn next_output(ws: &mut Browser) -> anyhow::Result<Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Text(t))) => return Ok(Bytes::from(t.as_str().to_owned())),
            Some(Ok(Message::Close(frame))) => bail!("the server closed the terminal: {frame:?}"),
            Some(Ok(_)) => continue, // ping, pong
            Some(Err(e)) => bail!("terminal connection failed: {e}"),
            None => bail!("terminal connection ended"),
        }
    }
}

/// Reads output until `done` holds for everything read so far; returns it.
pub(crate) async fn read_until(
    ws: &mut Browser,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        while !done(&seen) {
            seen.extend_from_slice(&next_output(ws).await?);
        }
        Ok::<_, anyhow::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(result) => result.with_context(|| {
            format!(
                "reading until {what}; saw {:?}",
                String::from_utf8_lossy(&seen)
            )
        })?,
        Err(_) => bail!(
            "no {what} within 30 s; saw {:?}",
            String::from_utf8_lossy(&seen)
        ),
    }
    Ok(seen)
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads and discards output until none came for `quiet` (e.g. a prompt after
/// the output that was waited for), so that the next measure starts clean.
pub(crate) async fn drain(ws: &mut Browser, quiet: Duration) -> anyhow::Result<()> {
    let drained = async {
        while let Ok(frame) = tokio::time::timeout(quiet, next_output(ws)).await {
            frame?;
        }
        Ok::<_, anyhow::Error>(())
    };
    within(Duration::from_secs(30), "the terminal to go quiet", drained).await?
}

pub(crate) async fn type_text(ws: &mut Browser, text: &str) -> anyhow::Result<()> {
    ws.send(Message::binary(text.as_bytes().to_vec()))
        .await
        .context("sending keystrokes")
}

/// Runs `echo` of a marker and waits for its output: the shell is up and idle.
/// The typed line echoes as `MARK''-N`; only the output has `MARK-N` + CRLF.
pub(crate) async fn sync(ws: &mut Browser, n: u32) -> anyhow::Result<()> {
    type_text(ws, &format!("echo SYNC''-{n}\n")).await?;
    let needle = format!("SYNC-{n}\r\n");
    read_until(ws, &needle, |seen| contains(seen, needle.as_bytes())).await?;
    drain(ws, Duration::from_millis(100)).await
}

/// Queues job `id` (script `sleep 600`) and connects a terminal to its session.
pub(crate) async fn open_job_terminal(
    world: &World,
    id: u64,
) -> anyhow::Result<(SessionInfo, Browser)> {
    world.gitlab.push(job(id, &["sleep 600"], &[]));
    let session = within(
        Duration::from_secs(30),
        "the runner to take the job",
        world.session(id),
    )
    .await?;
    let ws = within(
        Duration::from_secs(30),
        "the terminal upgrade",
        connect(&TokioNet, &session, BINARY),
    )
    .await?;
    Ok((session, ws))
}
