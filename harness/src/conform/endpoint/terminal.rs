//! An open terminal as the endpoint-level cases use it: opened like Workhorse
//! opens it, given time for its shell to start, typed into, and closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::{failure, handshake, Target, TERMINAL};
use crate::actors::ws::{self, Dialed, Ws};
use crate::expect::Failure;

/// Longest to wait for a shell's answer or a close.
pub const ANSWER: Duration = Duration::from_secs(5);
/// Longest to wait for a new terminal's first output (its shell's prompt)
/// before typing: a login shell that reads slow dotfiles is judged on what it
/// does once it is there, not on keystrokes it never saw.
pub const FIRST_OUTPUT: Duration = Duration::from_secs(20);
/// A runner frees the session's terminal slot (EX-4) as the previous connection
/// ends, which a client cannot observe: an open meets 423 for this long at most.
const SLOT_FREED: Duration = Duration::from_secs(3);

pub struct Terminal {
    pub ws: Ws,
    pub protocol: Option<String>,
    /// The kinds of the data frames seen: `binary`, `text`, `text that is not base64`.
    pub kinds: Vec<&'static str>,
}

/// An upgrade of the session's exec offering `offered`, with its token.
pub async fn dial(t: &Target, offered: &[&str]) -> Dialed {
    let headers = [("authorization", t.session.authorization.clone())];
    handshake::open(&t.exec(), &t.session.certificate, &headers, offered).await
}

/// An open terminal offering `offered` whose shell has printed something.
pub async fn open(t: &Target, offered: &[&str]) -> Result<Terminal, Failure> {
    let give_up = Instant::now() + SLOT_FREED;
    let check = format!("a terminal request offering {offered:?}");
    let (ws, protocol) = loop {
        match dial(t, offered).await {
            Dialed::Open { ws, protocol } => break (ws, protocol),
            Dialed::Refused { status: 423, .. } if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Dialed::Refused { status, body } => {
                let hint = if status == 404 {
                    " (is the session's job still running its script?)"
                } else {
                    ""
                };
                return Err(failure(&check, "101", format!("{status} {body}{hint}")));
            }
            Dialed::Failed(why) => return Err(failure(&check, "101", why)),
        }
    };
    let mut terminal = Terminal {
        ws,
        protocol,
        kinds: Vec::new(),
    };
    terminal.first_output().await?;
    Ok(terminal)
}

impl Terminal {
    /// Waits, bounded, for the shell's first output before anything is typed.
    async fn first_output(&mut self) -> Result<(), Failure> {
        let check = "the terminal's first output (its shell's prompt), before typing";
        let mut seen = String::new();
        let got =
            tokio::time::timeout(FIRST_OUTPUT, self.read_until(&mut seen, |s| !s.is_empty())).await;
        match got {
            Ok(true) => Ok(()),
            Ok(false) => Err(failure(
                check,
                "output",
                "the connection ended before any output",
            )),
            Err(_) => Err(failure(
                check,
                format!("output within {} s", FIRST_OUTPUT.as_secs()),
                format!(
                    "nothing in {} s: no shell started, or a login shell that starts this slowly (its dotfiles?)",
                    FIRST_OUTPUT.as_secs()
                ),
            )),
        }
    }

    /// Reads data into `output` until `done(output)`; false if the connection ended first.
    pub async fn read_until(&mut self, output: &mut String, done: impl Fn(&str) -> bool) -> bool {
        while !done(output) {
            match self.ws.next().await {
                Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                    let kind = if m.is_binary() { "binary" } else { "text" };
                    match ws::payload(self.protocol.as_deref(), &m) {
                        Some(bytes) => output.push_str(&String::from_utf8_lossy(&bytes)),
                        None => self.kinds.push("text that is not base64"),
                    }
                    self.kinds.push(kind);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return false,
            }
        }
        true
    }

    /// Sends `bytes` as one data message of the terminal's subprotocol.
    pub async fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), Failure> {
        self.ws
            .send(ws::data(self.protocol.as_deref(), bytes))
            .await
            .map_err(|e| failure(what, "sent", e.to_string()))
    }

    /// Types `command` (whose `""` the shell removes), then waits up to `within`
    /// for the output `needle`, which the echo of the command cannot contain.
    pub async fn run(
        &mut self,
        command: &str,
        needle: &str,
        within: Duration,
    ) -> Result<String, Failure> {
        let check = format!("the output of `{command}`");
        self.send(format!("{command}\r").as_bytes(), &check).await?;
        let mut output = String::new();
        let read = self.read_until(&mut output, |o| o.contains(needle));
        match tokio::time::timeout(within, read).await {
            Ok(true) => Ok(output),
            outcome => {
                let how = if outcome.is_ok() {
                    "the connection ended".to_string()
                } else {
                    format!("{} s passed", within.as_secs())
                };
                Err(failure(
                    &check,
                    format!("{needle:?}"),
                    format!("{how}; the output ended {:?}", tail(&output, 120)),
                ))
            }
        }
    }

    /// Types a command whose output differs from its echo, and waits for the output.
    pub async fn echo(&mut self, what: &str) -> Result<(), Failure> {
        let needle = format!("conform-{what}-{}", nonce());
        let command = format!("echo {}", needle.replacen('-', "\"\"-", 1));
        self.run(&command, &needle, ANSWER).await.map(drop)
    }

    /// Sends close 1000, and waits for the answer.
    pub async fn close(mut self) -> End {
        close(&mut self.ws).await
    }
}

/// Unique in this run: tells one case's output from another's.
pub fn nonce() -> String {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// The last `n` characters of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let skip = text.chars().count().saturating_sub(n);
    text.chars().skip(skip).collect()
}

/// How a connection ended.
pub enum End {
    /// A close frame came, with this code (if it had one).
    Frame(Option<u16>),
    /// It ended without a close frame.
    Dropped,
    /// Nothing within 5 s.
    StillOpen,
}

impl End {
    pub fn describe(&self) -> String {
        match self {
            End::Frame(Some(code)) => format!("close {code}"),
            End::Frame(None) => "a close frame without a code".into(),
            End::Dropped => "the connection ended without a close frame".into(),
            End::StillOpen => "neither a close frame nor the end within 5 s".into(),
        }
    }
}

/// Sends close 1000, and waits for the answer.
pub async fn close(ws: &mut Ws) -> End {
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = ws.send(Message::Close(Some(normal))).await;
    end_of(ws).await
}

/// Waits (5 s at most) for the connection to end, reading past any output.
pub async fn end_of(ws: &mut Ws) -> End {
    let ended = tokio::time::timeout(ANSWER, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break End::Frame(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break End::Dropped,
            }
        }
    });
    let end = ended.await.unwrap_or(End::StillOpen);
    if let End::Frame(_) = end {
        // Reading on sends the answer to the close, so that the server need
        // not wait for it before it lets the session's terminal go (EX-4).
        let rest = async { while let Some(Ok(_)) = ws.next().await {} };
        let _ = tokio::time::timeout(ANSWER, rest).await;
    }
    end
}

/// The terminal's subprotocol, for a case's default.
pub const DEFAULT: &[&str] = &[TERMINAL];
