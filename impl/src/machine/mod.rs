//! Machines: where a job's script and its terminals actually run.
//!
//! Executors (shell, docker, custom) decide *when* things run and how they are tied
//! together; a [`Machine`] decides *how* a process runs. [`os::OsMachine`] starts real
//! processes and PTYs; [`sim::SimMachine`] interprets scripts and shells in-process
//! on `tokio::time`, so that a whole runner can live inside turmoil.

pub mod os;
pub mod sim;
pub mod timed;

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::AsyncRead;

use crate::terminal::{Closing, Terminal, TerminalSpec};

/// A job script to run: the lines of the job's steps, in order.
#[derive(Clone, Debug, Default)]
pub struct ScriptSpec {
    pub lines: Vec<String>,
    /// Shell to interpret the lines (`bash`, `sh`); the machine's default if `None`.
    pub shell: Option<String>,
    pub cwd: Option<std::path::PathBuf>,
    pub env: Vec<(String, String)>,
}

/// How a script ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptExit {
    /// Exited with this code.
    Code(i32),
    /// Killed (by signal, or by `kill`).
    Killed,
}

impl ScriptExit {
    pub fn success(self) -> bool {
        self == ScriptExit::Code(0)
    }
}

/// A running script.
pub struct ScriptRun {
    /// Standard output and error, merged, in the order written. EOF when the
    /// script's process tree has closed it.
    pub output: Box<dyn AsyncRead + Send + Unpin>,
    /// Resolves with the script's exit.
    pub exit: Pin<Box<dyn Future<Output = io::Result<ScriptExit>> + Send>>,
    /// Kills the script's whole process tree at once.
    pub kill: Box<dyn Fn() -> Closing + Send + Sync>,
}

/// How long a job's executor takes before the job runs, on this machine.
///
/// A machine takes the time it takes: both are zero by default, and nothing a
/// job sends can change them. A world builder (the harness, a test) wraps a
/// machine in [`timed::Timed`] to stand for an executor that prepares slowly or
/// a build container that starts late (see ARCHITECTURE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobTimings {
    /// Preparing the executor, before the job runs (EX-3's attach wait).
    pub prepare: std::time::Duration,
    /// Docker: from the job running to its build container running; `None`:
    /// it never runs (DK-1).
    pub container_start: Option<std::time::Duration>,
}

impl Default for JobTimings {
    fn default() -> Self {
        JobTimings {
            prepare: std::time::Duration::ZERO,
            container_start: Some(std::time::Duration::ZERO),
        }
    }
}

/// Where processes run.
pub trait Machine: Send + Sync + 'static {
    fn run_script(&self, spec: &ScriptSpec) -> io::Result<ScriptRun>;
    fn open_terminal(&self, spec: &TerminalSpec) -> io::Result<Terminal>;
    /// Where job directories go when `builds_dir` is not configured; `None`:
    /// the machine has no file system of its own (simulation).
    fn default_builds_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether docker jobs on this machine run in containers of a Docker
    /// Engine (a real machine), or in the executor's model of a container
    /// (simulation: no engine, and nothing may leave simulated time).
    fn runs_containers(&self) -> bool {
        false
    }
    /// The executor's timings for job `job_id` on this machine.
    fn job_timings(&self, job_id: u64) -> JobTimings {
        let _ = job_id;
        JobTimings::default()
    }
}
