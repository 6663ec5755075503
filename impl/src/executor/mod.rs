//! Executors: how a job's build runs and what its terminal is attached to.
//!
//! - `shell`: the script and the terminal run on the machine; the terminal
//!   outlives the script (LC-1).
//! - `docker` ([`docker`]): a model of GitLab Runner's docker executor without a
//!   Docker engine. The "build container" is the process tree that runs the
//!   script; terminals are execs that join it (DK-2), wait up to 15 s for it to
//!   run (DK-1), and are ended when it stops with the script (DK-3).
//! - `custom`: no terminal at all (EX-5: "not yet supported").

pub mod docker;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ExecutorKind;
use crate::machine::{JobTimings, Machine, ScriptRun, ScriptSpec};
use crate::session::{Opening, TerminalSource, TerminalUnavailable};
use crate::terminal::TerminalSpec;

pub use docker::Container;

/// An executor of one `[[runners]]` entry.
#[derive(Clone)]
pub struct Executor {
    pub kind: ExecutorKind,
    machine: Arc<dyn Machine>,
    shell: Option<String>,
    builds_dir: Option<PathBuf>,
    docker_image: Option<String>,
}

/// What a build needs from the job.
#[derive(Clone, Debug, Default)]
pub struct BuildSpec {
    pub job_id: u64,
    pub script: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Docker: how long the build container takes to start; `None`: it never runs.
    pub container_start: Option<Duration>,
    /// `image:` of the job, if any.
    pub image: Option<String>,
}

impl Executor {
    pub fn new(
        kind: ExecutorKind,
        machine: Arc<dyn Machine>,
        shell: Option<String>,
        builds_dir: Option<PathBuf>,
        docker_image: Option<String>,
    ) -> Self {
        Executor {
            kind,
            machine,
            shell,
            builds_dir,
            docker_image,
        }
    }

    /// How long this job's executor takes on its machine before the job runs.
    pub fn timings(&self, job_id: u64) -> JobTimings {
        self.machine.job_timings(job_id)
    }

    /// Where job `job_id`'s file variables go (GitLab Runner's `<build dir>.tmp`);
    /// `None` when the machine has no file system.
    pub fn temp_dir(&self, job_id: u64) -> Option<PathBuf> {
        self.builds_dir
            .as_ref()
            .map(|dir| dir.join(format!("{job_id}.tmp")))
    }

    /// JOB-1: `info.features.terminal` (shell on non-Windows and docker: true; custom: false).
    pub fn supports_terminal(&self) -> bool {
        !matches!(self.kind, ExecutorKind::Custom)
    }

    /// The job log lines of the prepare stage.
    pub fn prepare_log(&self, spec: &BuildSpec) -> Vec<String> {
        let mut lines = vec![format!("Preparing the \"{}\" executor", self.kind.name())];
        if self.kind == ExecutorKind::Docker {
            let image = spec
                .image
                .as_deref()
                .or(self.docker_image.as_deref())
                .unwrap_or("(none)");
            lines.push(format!("Using Docker executor with image {image} ..."));
        }
        lines
    }

    /// Sets up the build of one job: its working directory, its container (docker)
    /// and the terminal source that the session gets when the job runs (EX-3).
    pub fn build(&self, spec: &BuildSpec) -> io::Result<Build> {
        let cwd = match &self.builds_dir {
            Some(dir) => {
                let dir = dir.join(spec.job_id.to_string());
                std::fs::create_dir_all(&dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("creating build directory {}: {e}", dir.display()),
                    )
                })?;
                Some(dir)
            }
            None => None,
        };
        let script = ScriptSpec {
            lines: spec.script.clone(),
            shell: self.shell.clone(),
            cwd: cwd.clone(),
            env: spec.env.clone(),
        };
        let terminal_spec = TerminalSpec {
            command: self.shell.iter().cloned().collect(),
            cwd,
            env: spec.env.clone(),
            ..TerminalSpec::default()
        };
        let (terminal, container): (Arc<dyn TerminalSource>, _) = match self.kind {
            ExecutorKind::Shell => (
                Arc::new(ShellTerminals {
                    machine: self.machine.clone(),
                    spec: terminal_spec,
                }),
                None,
            ),
            ExecutorKind::Docker => {
                let container = Container::create(spec.container_start);
                let source = docker::ExecTerminals::new(
                    container.clone(),
                    self.machine.clone(),
                    terminal_spec,
                );
                (Arc::new(source), Some(container))
            }
            ExecutorKind::Custom => (Arc::new(NoTerminal), None),
        };
        Ok(Build {
            terminal,
            container,
            machine: self.machine.clone(),
            script,
        })
    }
}

/// One job's build.
pub struct Build {
    /// Attached to the session when the job runs (EX-3).
    pub terminal: Arc<dyn TerminalSource>,
    /// Docker only: the build container.
    pub container: Option<Arc<Container>>,
    machine: Arc<dyn Machine>,
    script: ScriptSpec,
}

impl Build {
    /// Starts the job script (in the build container, for docker).
    pub fn run_script(&self) -> io::Result<ScriptRun> {
        self.machine.run_script(&self.script)
    }
}

/// Shell executor: a terminal is a new login shell on the machine.
struct ShellTerminals {
    machine: Arc<dyn Machine>,
    spec: TerminalSpec,
}

impl TerminalSource for ShellTerminals {
    fn open(&self) -> Opening {
        let opened = self
            .machine
            .open_terminal(&self.spec)
            .map_err(|e| TerminalUnavailable(e.to_string()));
        Box::pin(std::future::ready(opened))
    }
}

/// Custom executor: the reference has no terminal for it.
struct NoTerminal;

impl TerminalSource for NoTerminal {
    fn open(&self) -> Opening {
        Box::pin(std::future::ready(Err(TerminalUnavailable(
            "interactive terminal is not yet supported by the custom executor".into(),
        ))))
    }
}
