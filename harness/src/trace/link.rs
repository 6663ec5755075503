//! Workhorse's connection to the runner, as Workhorse sees it (WH-2..5,
//! WI-3..6, TLS-2): typed, so that judging reads what happened and only the
//! snapshot renders it as a sentence.

use std::fmt;

use serde::Serialize;

/// What a connection of Workhorse's to the runner carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Carries {
    /// A job's terminal (`terminal.ws`).
    Terminal,
    /// A job's service, through the runner's proxy (`proxy.ws`, WI-3).
    Service,
}

impl Carries {
    /// The connection, as the trace names it.
    fn connection(self) -> &'static str {
        match self {
            Carries::Terminal => "the terminal",
            Carries::Service => "the proxied connection",
        }
    }

    /// What answers at the runner's end.
    fn peer(self) -> &'static str {
        match self {
            Carries::Terminal => "shell",
            Carries::Service => "service",
        }
    }
}

/// What happened to one of Workhorse's connections to the runner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum Link {
    /// The runner refused the upgrade with an HTTP status.
    Refused { status: u16, body: String },
    /// No HTTP answer: the connection or its TLS failed, as the client says.
    Unreachable { why: String },
    /// The runner upgraded Workhorse's request to its terminal.
    Connected,
    /// The runner upgraded Workhorse's request to a job's service (WI-3).
    ConnectedToService { target: String },
    /// The session's MaxSessionTime ran out: Workhorse closed both sides (WH-4).
    MaxSessionTime,
    /// Rails no longer allows the user: Workhorse closed both sides (WH-3).
    ReauthorizationFailed { why: String },
    /// Sending to the runner failed.
    Lost,
    /// The browser went away: EOT to the runner, then a close (WH-5).
    BrowserLeft { pings: String },
    /// What the runner still sent after the browser left (WH-5).
    LastOutput { carries: Carries, preview: String },
    /// The runner's close frame; `code`: `None` for a close frame without one.
    RunnerClosed {
        carries: Carries,
        code: Option<u16>,
        reason: String,
        pings: String,
    },
    /// The runner's connection ended without a close frame.
    EndedWithoutClose { pings: String },
    /// A service's HTTP answer through the runner's proxy (WI-4).
    ProxiedGet { target: String, status: u16 },
    /// The runner's proxy could not be reached (WI-4).
    ProxyUnreachable { why: String },
    /// The runner's proxy did not answer in time (WI-4).
    ProxySilent { seconds: u64 },
}

impl Link {
    /// Whether this ends a connection that was up: the runner's side of it
    /// is over (or will be, at the runner's read deadline).
    pub fn ends(&self) -> bool {
        matches!(
            self,
            Link::RunnerClosed { .. }
                | Link::Lost
                | Link::EndedWithoutClose { .. }
                | Link::BrowserLeft { .. }
                | Link::MaxSessionTime
                | Link::ReauthorizationFailed { .. }
        )
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Refused { status, body } => write!(f, "runner answered {status} {body}"),
            Link::Unreachable { why } => f.write_str(why),
            Link::Connected => f.write_str("connected"),
            Link::ConnectedToService { target } => {
                write!(f, "connected to the service proxy {target}")
            }
            Link::MaxSessionTime => f.write_str("MaxSessionTime reached: closing both sides"),
            Link::ReauthorizationFailed { why } => {
                write!(f, "re-authorization failed: {why}; closing both sides")
            }
            Link::Lost => f.write_str("runner connection lost"),
            Link::BrowserLeft { pings } => write!(
                f,
                "browser left: sending EOT (0x04) to the runner, then closing{pings}"
            ),
            Link::LastOutput { carries, preview } => {
                write!(f, "the {}'s last output: \"{preview}\"", carries.peer())
            }
            Link::RunnerClosed {
                carries,
                code: Some(code),
                reason,
                pings,
            } => write!(
                f,
                "runner closed {}: {}{pings}",
                carries.connection(),
                format!("{code} {reason}").trim_end()
            ),
            Link::RunnerClosed {
                carries,
                code: None,
                pings,
                ..
            } => write!(
                f,
                "runner closed {}: without a code{pings}",
                carries.connection()
            ),
            Link::EndedWithoutClose { pings } => {
                write!(f, "runner connection ended without a close frame{pings}")
            }
            Link::ProxiedGet { target, status } => {
                write!(f, "proxied GET {target}: runner answered {status}")
            }
            Link::ProxyUnreachable { why } => write!(f, "cannot reach the runner's proxy: {why}"),
            Link::ProxySilent { seconds } => {
                write!(f, "the runner's proxy gave no answer within {seconds} s")
            }
        }
    }
}
