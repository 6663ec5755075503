//! The relay between a terminal WebSocket and its terminal (WS-2..8).
//!
//! One task, four branches polled together: the session's stop request, the
//! frame reader (browser to input queue), the input writer (queue to terminal)
//! and the output side (terminal to browser, with pings and the read
//! deadline). The frame reader never waits on the terminal, so control frames
//! are read and answered while a paste drains into a busy shell (WS-8).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::input::InputQueue;
use super::{CloseReason, Subprotocol, Timing};
use crate::faults::{self, Fault};
use crate::session::ConnectionGuard;
use crate::terminal::{ShellExit, Terminal};

/// Bytes read from a terminal at once. Small, because an idle session holds
/// one such buffer while it waits for output.
const READ_CHUNK: usize = 4 * 1024;
/// Output read while more is immediately available goes out as one frame, up
/// to this size: fewer frames (and TLS records' overhead) under a flood of
/// output, no added latency for a keystroke's echo.
pub const MAX_OUTPUT_FRAME: usize = 64 * 1024;
/// After the shell exited: output that arrives within this of the previous
/// read is still sent (it is the shell's last words, already in the terminal).
const EXIT_DRAIN_IDLE: Duration = Duration::from_millis(50);
/// ... for at most this long: a background job may write forever.
const EXIT_DRAIN_LIMIT: Duration = Duration::from_millis(500);
/// Pings a peer may send per ping interval (WS-8). Browsers and Workhorse
/// send one per 30 s; each Ping makes the server owe a Pong, so a flood is
/// cut off with 1008 rather than answered without end.
pub const MAX_PINGS_PER_INTERVAL: u32 = 100;

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// Relays between `ws` and `terminal` until either ends or the session asks
/// the connection to end; then frees the session's slot, closes both, and
/// returns why it ended.
pub async fn relay<S>(
    ws: WebSocketStream<S>,
    protocol: Subprotocol,
    mut terminal: Terminal,
    mut guard: ConnectionGuard,
    timing: Timing,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut sink, mut stream) = ws.split();
    let clock = Clock::new();
    let both = Both {
        protocol,
        clock: &clock,
        timing,
    };
    let input = InputQueue::new();
    let Terminal {
        reader,
        writer,
        exited,
        ..
    } = &mut terminal;

    let reason = tokio::select! {
        biased;
        r = guard.stop_requested() => r,
        r = both.upstream(&mut stream, &input) => r,
        r = both.downstream(&mut sink, &mut **reader, exited) => r,
        never = input.drain_into(&mut **writer) => match never {},
    };

    // EX-4, WS-7: the slot is free before the close reply leaves, so that a
    // browser that reconnects as soon as it sees it gets 101.
    guard.free_slot();
    let mut ws = sink
        .reunite(stream)
        .expect("both halves come from one stream");
    close_websocket(&mut ws, &reason, timing).await;
    terminal.control.close().await;
    drop(guard);
    reason
}

/// What both directions of a relay go by: the subprotocol's framing, the
/// clock of the peer's liveness, and the timings.
#[derive(Clone, Copy)]
struct Both<'a> {
    protocol: Subprotocol,
    clock: &'a Clock,
    timing: Timing,
}

impl Both<'_> {
    /// Browser to input queue.
    async fn upstream<S>(self, stream: &mut Stream<S>, input: &InputQueue) -> CloseReason
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut pings = PingBudget::new(self.timing.ping_interval);
        loop {
            if !input.has_room() {
                // Backpressure: the server stops reading, so the browser's
                // silence meanwhile is not held against it.
                self.clock.pause();
                input.room().await;
                self.clock.resume();
            }
            let Some(message) = stream.next().await else {
                return CloseReason::ClientGone;
            };
            self.clock.saw_peer();
            let payload = match message {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Text(t)) => Bytes::from(t),
                // tungstenite queued the reply; `close_websocket` sends it.
                Ok(Message::Close(_)) => return CloseReason::ClientClosed,
                Ok(Message::Ping(_)) if !pings.take() => return CloseReason::TooManyPings,
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(e) => return read_error(e),
            };
            let mut decoded = match self.protocol.decode(payload) {
                Ok(decoded) => decoded,
                Err(reason) => return reason,
            };
            if faults::active(Fault::TruncateInput) && decoded.len() > 32 * 1024 {
                decoded.truncate(32 * 1024);
            }
            input.push(decoded);
        }
    }
}

/// How many Pings the peer sent in the current window of one ping interval.
struct PingBudget {
    window: Duration,
    started: Instant,
    taken: u32,
}

impl PingBudget {
    fn new(window: Duration) -> Self {
        PingBudget {
            window,
            started: Instant::now(),
            taken: 0,
        }
    }

    /// Counts a Ping; false once the window holds more than allowed.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.started + self.window {
            self.started = now;
            self.taken = 0;
        }
        self.taken += 1;
        self.taken <= MAX_PINGS_PER_INTERVAL
    }
}

/// WS-8: what a frame the reader could not take says to the browser.
fn read_error(error: WsError) -> CloseReason {
    match error {
        WsError::Capacity(_) => CloseReason::MessageTooBig,
        WsError::Utf8(_) => CloseReason::InvalidPayload("text frame is not UTF-8"),
        // RFC 6455 7.4.1: 1002 for a protocol error. A peer that left
        // mid-frame is just gone.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::ClientGone,
        WsError::Protocol(violation) => CloseReason::ProtocolViolation(violation.to_string()),
        _ => CloseReason::ClientGone,
    }
}

impl Both<'_> {
    /// Terminal to browser, with pings, the read deadline, and the shell's exit.
    async fn downstream<S>(
        self,
        sink: &mut Sink<S>,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        exited: &mut ShellExit,
    ) -> CloseReason
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut ping = tokio::time::interval_at(
            self.clock.start + self.timing.ping_interval,
            self.timing.ping_interval,
        );
        let mut buf = BytesMut::new();
        loop {
            let deadline = self.clock.deadline(self.timing);
            buf.reserve(READ_CHUNK);
            let message = tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline) => {
                    // The deadline was computed before the browser's latest frame
                    // (a Pong, say) or a pause: only one that still stands ends it.
                    if self.clock.deadline(self.timing) > Instant::now() {
                        continue;
                    }
                    return CloseReason::PeerUnresponsive;
                }
                _ = ping.tick() => Message::Ping(Bytes::new()),
                // Output first: what the shell wrote before it exited goes out
                // in the frames it always had.
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return CloseReason::ShellExited,
                    Ok(_) => {
                        coalesce(reader, &mut buf);
                        self.protocol.encode(buf.split().freeze())
                    }
                },
                // WS-7: the shell's exit ends the terminal, even while a
                // background job it left holds the terminal open.
                () = &mut *exited => {
                    last_output(sink, reader, self.protocol, self.timing).await;
                    return CloseReason::ShellExited;
                }
            };
            if let Err(reason) = send(sink, message, self.timing).await {
                return reason;
            }
        }
    }
}

/// Adds to `buf` what the terminal has ready right now, up to one frame.
fn coalesce(reader: &mut (dyn AsyncRead + Send + Unpin), buf: &mut BytesMut) {
    while buf.len() < MAX_OUTPUT_FRAME {
        buf.reserve(READ_CHUNK.min(MAX_OUTPUT_FRAME - buf.len()));
        match reader.read_buf(buf).now_or_never() {
            Some(Ok(n)) if n > 0 => {}
            // Not ready, EOF or an error: the next read reports the latter two.
            _ => return,
        }
    }
}

/// Sends what the terminal still has after its shell exited, briefly.
async fn last_output<S>(
    sink: &mut Sink<S>,
    reader: &mut (dyn AsyncRead + Send + Unpin),
    protocol: Subprotocol,
    timing: Timing,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limit = Instant::now() + EXIT_DRAIN_LIMIT;
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_CHUNK);
        let idle = (Instant::now() + EXIT_DRAIN_IDLE).min(limit);
        match tokio::time::timeout_at(idle, reader.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => coalesce(reader, &mut buf),
            _ => return,
        }
        let message = protocol.encode(buf.split().freeze());
        if send(sink, message, timing).await.is_err() {
            return;
        }
    }
}

/// Sends one message; a browser that does not take it within `pong_timeout`
/// does not read what it is sent (WS-8).
async fn send<S>(sink: &mut Sink<S>, message: Message, timing: Timing) -> Result<(), CloseReason>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match tokio::time::timeout(timing.pong_timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        // Pongs owed to a Ping flood fill the buffer while the peer reads nothing.
        Ok(Err(WsError::WriteBufferFull(_))) => Err(CloseReason::PeerNotReading),
        Ok(Err(_)) => Err(CloseReason::ClientGone),
        Err(_) => Err(CloseReason::PeerNotReading),
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
            if let Ok(Ok(())) = tokio::time::timeout(grace, ws.close(other.close_frame())).await {
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

/// When the browser was last heard from, shared by both directions of a
/// relay; its deadline stands still while the server itself does not read.
struct Clock {
    start: Instant,
    last_seen_nanos: AtomicU64,
    paused: AtomicBool,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_seen_nanos: AtomicU64::new(0),
            paused: AtomicBool::new(false),
        }
    }

    fn saw_peer(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_seen_nanos.store(nanos, Ordering::Relaxed);
    }

    fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    /// The browser gets a whole deadline from when the server reads again.
    fn resume(&self) {
        self.saw_peer();
        self.paused.store(false, Ordering::Relaxed);
    }

    /// When the browser's silence ends the connection (project-defined, WS-4).
    fn deadline(&self, timing: Timing) -> Instant {
        let last_seen = if self.paused.load(Ordering::Relaxed) {
            Instant::now()
        } else {
            self.start + Duration::from_nanos(self.last_seen_nanos.load(Ordering::Relaxed))
        };
        last_seen + timing.ping_interval + timing.pong_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_read_deadline_stands_still_while_the_server_does_not_read() {
        let timing = Timing::default();
        let clock = Clock::new();
        let first = clock.deadline(timing);
        clock.pause();
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert!(clock.deadline(timing) > Instant::now());
        clock.resume();
        assert_eq!(clock.deadline(timing), first + Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_beyond_the_budget_of_one_interval_are_refused() {
        let mut budget = PingBudget::new(Duration::from_secs(30));
        assert!((0..MAX_PINGS_PER_INTERVAL).all(|_| budget.take()));
        assert!(!budget.take());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(budget.take(), "a new interval starts a new budget");
    }

    #[test]
    fn protocol_violations_are_1002_and_bad_utf8_1007() {
        let reason = read_error(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient));
        assert_eq!(u16::from(reason.close_frame().unwrap().code), 1002);
        let reason = read_error(WsError::Protocol(ProtocolError::NonZeroReservedBits));
        assert_eq!(u16::from(reason.close_frame().unwrap().code), 1002);
        let utf8 = String::from_utf8(vec![0xff]).unwrap_err().utf8_error();
        let reason = read_error(WsError::Utf8(utf8.to_string()));
        assert_eq!(u16::from(reason.close_frame().unwrap().code), 1007);
    }
}
