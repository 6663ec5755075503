//! Executors: how a job's build runs and what its terminal is attached to.
//!
//! - `shell`: the script and the terminal run on the machine; the terminal
//!   outlives the script (LC-1).
//! - `docker`: on a real machine, a build container on a Docker Engine
//!   ([`engine`]); under simulation, a model of it ([`docker`]), where the
//!   "build container" is the process tree that runs the script. Either way
//!   terminals are execs into it (DK-2) that wait up to 15 s for it to run
//!   (DK-1) and are ended when it stops with the script (DK-3).
//! - `custom`: no terminal at all (EX-5: "not yet supported").

pub mod docker;
pub mod engine;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{DockerConfig, ExecutorKind};
use crate::machine::{JobTimings, Machine, ScriptRun, ScriptSpec};
use crate::session::{Opening, TerminalSource, TerminalUnavailable};
use crate::terminal::TerminalSpec;

pub use docker::Container;
use engine::build::{BuildContainer, ContainerSpec};
use engine::{Engine, EngineSlot, SetupFailed};

/// An executor of one `[[runners]]` entry.
#[derive(Clone)]
pub struct Executor {
    pub kind: ExecutorKind,
    machine: Arc<dyn Machine>,
    shell: Option<String>,
    builds_dir: Option<PathBuf>,
    docker: DockerConfig,
    /// Docker on a machine that runs containers: its engine.
    engine: Option<Arc<EngineSlot>>,
}

/// Why a build could not be set up.
#[derive(Debug)]
pub enum BuildError {
    /// The build directory could not be made: the job fails as a script would.
    Io(io::Error),
    /// The executor cannot run the job (no engine, no image): a system failure.
    Setup(SetupFailed),
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
    /// The images of the job's `services:`.
    pub services: Vec<String>,
}

impl Executor {
    /// `runner_token` names this runner on the Docker Engine (labels).
    pub fn new(
        kind: ExecutorKind,
        machine: Arc<dyn Machine>,
        shell: Option<String>,
        builds_dir: Option<PathBuf>,
        docker: DockerConfig,
        runner_token: &str,
    ) -> Self {
        let engine = (kind == ExecutorKind::Docker && machine.runs_containers())
            .then(|| Arc::new(EngineSlot::new(docker.clone(), runner_token)));
        Executor {
            kind,
            machine,
            shell,
            builds_dir,
            docker,
            engine,
        }
    }

    /// Docker: removes every container of job `job_id` (a build cut short).
    pub async fn remove_job(&self, job_id: u64) {
        if let Some(Ok(engine)) = self.engine.as_deref().map(EngineSlot::get) {
            engine.remove_job(job_id).await;
        }
    }

    /// Docker: removes the containers a previous run of this runner left (it
    /// was killed before its jobs ended). Returns how many.
    pub async fn clean_up(&self) -> usize {
        match self.engine.as_deref().map(EngineSlot::get) {
            Some(Ok(engine)) => engine.clean_up().await,
            _ => 0,
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
                .or(self.docker.image.as_deref())
                .unwrap_or("(none)");
            lines.push(format!("Using Docker executor with image {image} ..."));
        }
        lines
    }

    /// Sets up the build of one job: its working directory, its container (docker)
    /// and the terminal source that the session gets when the job runs (EX-3).
    pub async fn build(&self, spec: &BuildSpec) -> Result<Build, BuildError> {
        if let Some(slot) = &self.engine {
            let engine = slot.get().map_err(BuildError::Setup)?;
            return self
                .build_in_engine(engine, spec)
                .await
                .map_err(BuildError::Setup);
        }
        let cwd = match &self.builds_dir {
            Some(dir) => {
                let dir = dir.join(spec.job_id.to_string());
                std::fs::create_dir_all(&dir).map_err(|e| {
                    BuildError::Io(io::Error::new(
                        e.kind(),
                        format!("creating build directory {}: {e}", dir.display()),
                    ))
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
                let source = docker::ExecTerminals::modelled(
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
            runs: Runs::Machine {
                machine: self.machine.clone(),
                script,
            },
        })
    }

    /// Docker on a real engine: the engine answers, the services and the
    /// image are there (pull policy), the build container is created.
    async fn build_in_engine(
        &self,
        engine: Arc<Engine>,
        spec: &BuildSpec,
    ) -> Result<Build, SetupFailed> {
        engine.ping().await?;
        // GitLab Runner fails a job whose service images it cannot get; this
        // runner does not run service containers at all, so a job that needs
        // them fails the same way rather than run without them.
        for service in &spec.services {
            engine.ensure_image(service, "service image").await?;
        }
        if let Some(service) = spec.services.first() {
            return Err(SetupFailed(format!(
                "the job needs service {service:?}: this runner's docker executor does not \
                 run services; remove `services:` from the job, or run it on a GitLab Runner"
            )));
        }
        let image = spec
            .image
            .clone()
            .or_else(|| self.docker.image.clone())
            .ok_or_else(|| {
                SetupFailed(
                    "the job names no image and [runners.docker] image is not set: set one of them"
                        .into(),
                )
            })?;
        engine.ensure_image(&image, "the job's image").await?;
        let working_dir = format!("/builds/{}", spec.job_id);
        let created = BuildContainer::create(
            &engine,
            &ContainerSpec {
                job_id: spec.job_id,
                image,
                script: spec.script.clone(),
                env: spec.env.clone(),
                working_dir: working_dir.clone(),
                file_variables: self.temp_dir(spec.job_id),
            },
        )
        .await?;
        let container = Container::create(Some(std::time::Duration::ZERO));
        let exec_spec = TerminalSpec {
            cwd: Some(PathBuf::from(working_dir)),
            env: spec.env.clone(),
            ..TerminalSpec::default()
        };
        let (docker, id) = (engine.docker().clone(), created.id().to_string());
        let exec: docker::Exec = Arc::new(move || {
            Box::pin(engine::exec::open(
                docker.clone(),
                id.clone(),
                exec_spec.clone(),
            ))
        });
        Ok(Build {
            terminal: Arc::new(docker::ExecTerminals::new(container.clone(), exec)),
            container: Some(container),
            runs: Runs::Engine {
                build: Arc::new(created),
                job_id: spec.job_id,
                engine,
            },
        })
    }
}

/// One job's build.
pub struct Build {
    /// Attached to the session when the job runs (EX-3).
    pub terminal: Arc<dyn TerminalSource>,
    /// Docker only: the build container.
    pub container: Option<Arc<Container>>,
    runs: Runs,
}

/// Where the script runs.
enum Runs {
    /// On the machine (shell, custom, and the docker model).
    Machine {
        machine: Arc<dyn Machine>,
        script: ScriptSpec,
    },
    /// In a build container on a Docker Engine.
    Engine {
        build: Arc<BuildContainer>,
        job_id: u64,
        engine: Arc<Engine>,
    },
}

impl Build {
    /// Docker: starts the build container and returns once it runs. The
    /// model's may never run: the caller bounds the wait (deadline, cancel).
    pub async fn start(&self) -> Result<(), SetupFailed> {
        match (&self.runs, &self.container) {
            (Runs::Engine { build, .. }, Some(container)) => {
                build.start().await?;
                container.set_running();
            }
            (Runs::Machine { .. }, Some(container)) => container.start().await,
            (_, None) => {}
        }
        Ok(())
    }

    /// Starts the job script (in the build container, for docker).
    pub fn run_script(&self) -> io::Result<ScriptRun> {
        match &self.runs {
            Runs::Machine { machine, script } => machine.run_script(script),
            Runs::Engine { build, .. } => build.run_script(),
        }
    }

    /// The job is over: its containers are removed (nothing to do elsewhere).
    pub async fn remove(&self) {
        if let Runs::Engine { job_id, engine, .. } = &self.runs {
            engine.remove_job(*job_id).await;
        }
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
