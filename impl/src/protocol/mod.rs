//! The terminal protocol (WS-1..8): subprotocols, close reasons, pings and
//! deadlines, the limits of what a peer can make the server queue; the relay
//! itself is [`relay`], its input queue `input`.

mod input;
mod relay;

pub use input::INPUT_QUEUE_BYTES;
pub use relay::{relay, MAX_OUTPUT_FRAME, MAX_PINGS_PER_INTERVAL};

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::duration::go_format;
use crate::faults::{self, Fault};

/// WS-2: raw bytes in binary frames.
pub const BINARY_SUBPROTOCOL: &str = "terminal.gitlab.com";
/// WS-3: base64 of the bytes in text frames.
pub const BASE64_SUBPROTOCOL: &str = "base64.terminal.gitlab.com";

/// Largest message accepted from a browser. The reference cuts messages at
/// 32 KiB and silently drops the rest (WS-5); this server delivers a message
/// whole up to this size and refuses a larger one with close 1009.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Most bytes the server keeps queued for a browser's socket (WS-8): one
/// output frame (base64 makes it 4/3 larger) and what it owes besides (pongs,
/// a close frame). Pongs owed beyond it are collapsed into the latest one
/// (RFC 6455 5.5.3 allows answering only the most recent Ping), so a Ping
/// flood that never reads costs this much, not memory without limit; such a
/// peer is closed by the write deadline ([`Timing::pong_timeout`]), and one
/// that sends more than [`MAX_PINGS_PER_INTERVAL`] with 1008 at once.
pub const MAX_WRITE_BUFFER: usize = 2 * MAX_OUTPUT_FRAME;

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
            Subprotocol::Base64 if !faults::active(Fault::Base64AsBinary) => {
                Message::text(base64::engine::general_purpose::STANDARD.encode(&bytes))
            }
            _ => Message::Binary(bytes),
        }
    }

    /// The terminal input a data message carries. WS-2: on the binary protocol
    /// a text frame is taken as data, like the reference does.
    fn decode(self, payload: Bytes) -> Result<Bytes, CloseReason> {
        match self {
            Subprotocol::Base64 if !faults::active(Fault::Base64InputRaw) => {
                base64::engine::general_purpose::STANDARD
                    .decode(&payload)
                    .map(Bytes::from)
                    .map_err(|_| CloseReason::InvalidPayload("invalid base64"))
            }
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
    /// WS-8: the browser took nothing the server sent for `pong_timeout`,
    /// or left its bounded write buffer full.
    PeerNotReading,
    /// WS-8: more Pings than [`MAX_PINGS_PER_INTERVAL`] in one ping interval.
    TooManyPings,
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
    /// WS-8: data the protocol cannot take (bad base64, bad UTF-8): 1007.
    InvalidPayload(&'static str),
    /// WS-8: a frame that breaks RFC 6455 (unmasked, reserved bits, unknown
    /// opcode, fragmented or oversized control frame): 1002.
    ProtocolViolation(String),
}

impl CloseReason {
    /// The close frame the server sends, if one can still be sent.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            CloseReason::ClientClosed | CloseReason::ClientGone => return None,
            CloseReason::ShellExited => (CloseCode::Normal, "shell exited".to_string()),
            CloseReason::PeerUnresponsive => (CloseCode::Away, "no answer to ping".to_string()),
            CloseReason::PeerNotReading => (CloseCode::Policy, "peer does not read".to_string()),
            CloseReason::TooManyPings => (
                CloseCode::Policy,
                format!("more than {MAX_PINGS_PER_INTERVAL} pings in a ping interval"),
            ),
            CloseReason::SessionTimeout(d) => (
                if faults::active(Fault::TimeoutCloseNormal) {
                    CloseCode::Normal
                } else {
                    CloseCode::Away
                },
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
            CloseReason::ProtocolViolation(what) => (CloseCode::Protocol, what.clone()),
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
            ping_interval: Duration::from_secs(if faults::active(Fault::SlowPings) {
                60
            } else {
                30
            }),
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
        .max_write_buffer_size(MAX_WRITE_BUFFER)
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
