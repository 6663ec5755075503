//! Terminals (EX-6, DK-2): what a WebSocket is attached to.
//!
//! A terminal is a byte stream both ways plus a control handle. Two kinds stand
//! behind the same type: a real PTY ([`pty`]) and a deterministic in-process shell
//! for simulation ([`sim_shell`]), because a pending `spawn_blocking` or a real
//! process would freeze or break simulated time.

mod hangup;
pub mod pty;
pub mod sim_shell;

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A future that resolves once a terminal's processes are gone.
pub type Closing = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A future that resolves when a terminal's shell exits (WS-7), even while a
/// background job it left holds the terminal open; pending forever where the
/// exit cannot be watched (then EOF on the output ends the terminal).
pub type ShellExit = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

impl Default for Size {
    /// The reference does not transmit the browser's size; xterm.js starts at 80x24.
    fn default() -> Self {
        Size { cols: 80, rows: 24 }
    }
}

/// Control of a running terminal, separate from its byte streams so that the
/// relay can own the streams while the session keeps the power to end it.
pub trait TerminalControl: Send + Sync {
    fn resize(&self, size: Size) -> io::Result<()>;
    /// Ends the terminal: its whole process tree is killed and reaped. Idempotent.
    /// Closing starts at the call; the future only reports completion.
    fn close(&self) -> Closing;
}

/// An open terminal. Dropping it closes it (without waiting for the reap).
pub struct Terminal {
    /// Output of the terminal; EOF once the shell and everything holding the
    /// terminal have exited.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Input to the terminal (keystrokes, pastes).
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// The end of the terminal: its shell's exit.
    pub exited: ShellExit,
    pub control: Box<dyn TerminalControl>,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        drop(self.control.close());
    }
}

/// What to start in a terminal.
#[derive(Clone, Debug, Default)]
pub struct TerminalSpec {
    /// Program and arguments, e.g. `["bash", "--login"]`. Empty: the machine's default shell.
    pub command: Vec<String>,
    /// Working directory; `None` keeps the runner's.
    pub cwd: Option<std::path::PathBuf>,
    /// Extra environment (the job's variables), in order.
    pub env: Vec<(String, String)>,
    pub size: Size,
}
