//! The terminal protocol (WS-1..7): subprotocols, the relay between a WebSocket
//! and a terminal, pings, the read deadline, and how the server ends a connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::duration::go_format;
use crate::faults::{self, Fault};
use crate::session::ConnectionGuard;
use crate::terminal::Terminal;

/// WS-2: raw bytes in binary frames.
pub const BINARY_SUBPROTOCOL: &str = "terminal.gitlab.com";
/// WS-3: base64 of the bytes in text frames.
pub const BASE64_SUBPROTOCOL: &str = "base64.terminal.gitlab.com";

/// Largest message accepted from a browser. The reference cuts messages at
/// 32 KiB and silently drops the rest (WS-5); this server delivers a message
/// whole up to this size and refuses a larger one with close 1009.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Bytes read from a terminal at once: one frame's worth. Kept small because an
/// idle session holds one such buffer.
const READ_CHUNK: usize = 4 * 1024;

/// The subprotocol chosen for a connection (WS-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subprotocol {
    Binary,
    Base64,
    /// The client offered neither: no subprotocol header, raw bytes as with Binary.
    Unspecified,
}

impl Subprotocol {
    /// Picks by the server's preference, binary first, like the reference's upgrader.
    pub fn select<'a>(offered: impl IntoIterator<Item = &'a str>) -> Subprotocol {
        let offered: Vec<&str> = offered
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if offered.contains(&BINARY_SUBPROTOCOL) {
            Subprotocol::Binary
        } else if offered.contains(&BASE64_SUBPROTOCOL) {
            Subprotocol::Base64
        } else {
            Subprotocol::Unspecified
        }
    }

    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Subprotocol::Binary => Some(BINARY_SUBPROTOCOL),
            Subprotocol::Base64 => Some(BASE64_SUBPROTOCOL),
            Subprotocol::Unspecified => None,
        }
    }

    fn encode(self, bytes: Bytes) -> Message {
        match self {
            Subprotocol::Base64 => {
                Message::text(base64::engine::general_purpose::STANDARD.encode(&bytes))
            }
            _ => Message::Binary(bytes),
        }
    }

    /// The terminal input a data message carries. WS-2: on the binary protocol
    /// a text frame is taken as data, like the reference does.
    fn decode(self, payload: Bytes) -> Result<Bytes, CloseReason> {
        match self {
            Subprotocol::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&payload)
                .map(Bytes::from)
                .map_err(|_| CloseReason::InvalidPayload("invalid base64")),
            _ => Ok(payload),
        }
    }
}

/// Why a terminal connection ended; the server's close frame says it (WS-6:
/// project-defined, the reference sends no close frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The shell exited; all its output was sent (WS-7).
    ShellExited,
    /// The browser sent a close frame; it was answered with the same code (WS-7).
    ClientClosed,
    /// The connection dropped without a close frame (WS-7).
    ClientGone,
    /// Nothing came from the browser within the read deadline (project-defined).
    PeerUnresponsive,
    /// LC-3: the session timeout after the script ended.
    SessionTimeout(Duration),
    /// DK-3: the build container stopped.
    ContainerExited,
    /// LC-4: the job was cancelled.
    JobCancelled,
    /// LC-4: the runner is stopping.
    RunnerShutdown,
    /// LC-7: the job ended and its session is gone.
    JobFinished,
    /// WS-5: a message over [`MAX_MESSAGE`].
    MessageTooBig,
    /// A frame the protocol cannot take (bad base64, bad UTF-8, protocol violation).
    InvalidPayload(&'static str),
}

impl CloseReason {
    /// The close frame the server sends, if one can still be sent.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            CloseReason::ClientClosed | CloseReason::ClientGone => return None,
            CloseReason::ShellExited => (CloseCode::Normal, "shell exited".to_string()),
            CloseReason::PeerUnresponsive => (CloseCode::Away, "no answer to ping".to_string()),
            CloseReason::SessionTimeout(d) => (
                CloseCode::Away,
                format!(
                    "terminal session timed out (maximum time allowed - {})",
                    go_format(*d)
                ),
            ),
            CloseReason::ContainerExited => (CloseCode::Away, "build container exited".to_string()),
            CloseReason::JobCancelled => (CloseCode::Away, "job canceled".to_string()),
            CloseReason::RunnerShutdown => (CloseCode::Away, "runner shutting down".to_string()),
            CloseReason::JobFinished => (CloseCode::Away, "job finished".to_string()),
            CloseReason::MessageTooBig => {
                (CloseCode::Size, format!("message over {MAX_MESSAGE} bytes"))
            }
            CloseReason::InvalidPayload(what) => (CloseCode::Invalid, what.to_string()),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Ping cadence and read deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// WS-4: a Ping every 30 s.
    pub ping_interval: Duration,
    /// Project-defined: a browser that sends nothing (not even a Pong) for
    /// `ping_interval + pong_timeout` is taken as gone, and a write that cannot
    /// be made within `pong_timeout` ends the connection.
    pub pong_timeout: Duration,
    /// How long to wait for the browser's reply to the server's close frame.
    pub close_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            close_grace: Duration::from_secs(1),
        }
    }
}

/// The WebSocket settings of a terminal connection.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        // Small buffers: an idle session should cost little (see benches).
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Relays between `ws` and `terminal` until either ends or the session asks
/// the connection to end; then closes both. Returns why it ended.
pub async fn relay<S>(
    ws: WebSocketStream<S>,
    protocol: Subprotocol,
    terminal: Terminal,
    guard: &mut ConnectionGuard,
    timing: Timing,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut sink, mut stream) = ws.split();
    let mut terminal = terminal;
    let (reader, writer) = (&mut terminal.reader, &mut terminal.writer);
    let clock = Clock::new();

    let reason = tokio::select! {
        biased;
        r = guard.stop_requested() => r,
        r = upstream(&mut stream, &mut **writer, protocol, &clock) => r,
        r = downstream(&mut sink, &mut **reader, protocol, &clock, timing) => r,
    };

    let mut ws = sink
        .reunite(stream)
        .expect("both halves come from one stream");
    close_websocket(&mut ws, &reason, timing).await;
    terminal.control.close().await;
    reason
}

/// Browser to terminal.
async fn upstream<S>(
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    writer: &mut (dyn AsyncWrite + Send + Unpin),
    protocol: Subprotocol,
    clock: &Clock,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    while let Some(message) = stream.next().await {
        clock.saw_peer();
        let payload = match message {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => Bytes::from(t),
            Ok(Message::Close(_)) => return CloseReason::ClientClosed,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(WsError::Capacity(_)) => return CloseReason::MessageTooBig,
            Err(WsError::Protocol(_)) => return CloseReason::InvalidPayload("protocol error"),
            Err(WsError::Utf8(_)) => return CloseReason::InvalidPayload("text frame is not UTF-8"),
            Err(_) => return CloseReason::ClientGone,
        };
        let mut input = match protocol.decode(payload) {
            Ok(input) => input,
            Err(reason) => return reason,
        };
        if faults::active(Fault::TruncateInput) && input.len() > 32 * 1024 {
            input.truncate(32 * 1024);
        }
        if writer.write_all(&input).await.is_err() || writer.flush().await.is_err() {
            // The shell is gone. Its last output may still be unread: let the
            // downstream drain it to EOF and end the connection then.
            std::future::pending::<()>().await;
        }
    }
    CloseReason::ClientGone
}

/// Terminal to browser, with pings and the read deadline.
async fn downstream<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    reader: &mut (dyn AsyncRead + Send + Unpin),
    protocol: Subprotocol,
    clock: &Clock,
    timing: Timing,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut ping =
        tokio::time::interval_at(clock.start + timing.ping_interval, timing.ping_interval);
    let mut buf = BytesMut::new();
    loop {
        let deadline = clock.last_seen() + timing.ping_interval + timing.pong_timeout;
        buf.reserve(READ_CHUNK);
        let message = tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => {
                // The deadline was computed before the browser's latest frame
                // (a Pong, say): only a deadline that still stands ends the relay.
                if clock.last_seen() + timing.ping_interval + timing.pong_timeout > tokio::time::Instant::now() {
                    continue;
                }
                return CloseReason::PeerUnresponsive;
            }
            _ = ping.tick() => Message::Ping(Bytes::new()),
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return CloseReason::ShellExited,
                Ok(_) => protocol.encode(buf.split().freeze()),
            },
        };
        match tokio::time::timeout(timing.pong_timeout, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return CloseReason::ClientGone,
            Err(_) => return CloseReason::PeerUnresponsive,
        }
    }
}

/// Sends the server's close frame (if the browser can still get one), waits
/// briefly for its reply, and shuts the transport down (TLS close_notify).
async fn close_websocket<S>(ws: &mut WebSocketStream<S>, reason: &CloseReason, timing: Timing)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let grace = timing.close_grace;
    match reason {
        CloseReason::ClientGone | CloseReason::PeerUnresponsive => {}
        CloseReason::ClientClosed => {
            // tungstenite queued the echo of the browser's close frame: send it.
            let _ = tokio::time::timeout(grace, ws.flush()).await;
        }
        other => {
            if tokio::time::timeout(grace, ws.close(other.close_frame()))
                .await
                .is_ok()
            {
                // Wait for the browser's close reply, then the transport may go.
                let _ = tokio::time::timeout(grace, async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        }
    }
    let _ = tokio::time::timeout(grace, ws.get_mut().shutdown()).await;
}

/// When the browser was last heard from, shared by both directions of a relay.
struct Clock {
    start: Instant,
    last_seen_nanos: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_seen_nanos: AtomicU64::new(0),
        }
    }

    fn saw_peer(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_seen_nanos.store(nanos, Ordering::Relaxed);
    }

    fn last_seen(&self) -> Instant {
        self.start + Duration::from_nanos(self.last_seen_nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_preferred_then_base64_then_none() {
        assert_eq!(
            Subprotocol::select(["base64.terminal.gitlab.com, terminal.gitlab.com"]),
            Subprotocol::Binary
        );
        assert_eq!(
            Subprotocol::select(["base64.terminal.gitlab.com"]),
            Subprotocol::Base64
        );
        assert_eq!(Subprotocol::select(["chat"]), Subprotocol::Unspecified);
        assert_eq!(Subprotocol::select([]), Subprotocol::Unspecified);
    }

    #[test]
    fn base64_input_is_decoded_and_bad_base64_refused() {
        assert_eq!(
            Subprotocol::Base64.decode(Bytes::from_static(b"aGk=")),
            Ok(Bytes::from_static(b"hi"))
        );
        assert_eq!(
            Subprotocol::Base64.decode(Bytes::from_static(b"!!")),
            Err(CloseReason::InvalidPayload("invalid base64"))
        );
        assert_eq!(
            Subprotocol::Binary.decode(Bytes::from_static(b"!!")),
            Ok(Bytes::from_static(b"!!"))
        );
    }

    #[test]
    fn timeout_close_frame_names_the_duration() {
        let frame = CloseReason::SessionTimeout(Duration::from_secs(1800))
            .close_frame()
            .unwrap();
        assert_eq!(u16::from(frame.code), 1001);
        assert_eq!(
            frame.reason.as_str(),
            "terminal session timed out (maximum time allowed - 30m0s)"
        );
        assert!(CloseReason::ClientGone.close_frame().is_none());
    }
}
