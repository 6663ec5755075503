//! The build container: made from the job's image, it runs the job's script
//! and nothing else, so it stops when the script ends (DK-3). Its output is the
//! job log; its exit code is the job's result.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptions, WaitContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::stream::{self, Output};
use super::{remove_container, Engine, SetupFailed};
use crate::machine::{ScriptExit, ScriptRun};
use crate::terminal::Closing;

/// What a job's build container is made of.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    pub job_id: u64,
    pub image: String,
    /// The job's script, run by `sh -e` (every image with a shell has `sh`).
    pub script: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the script runs and terminals start; the engine creates it.
    pub working_dir: String,
    /// The job's file variables live here on the runner's host: it is mounted
    /// read-only at the same path, so the variables' paths hold inside.
    pub file_variables: Option<PathBuf>,
}

/// A created build container of one job.
pub struct BuildContainer {
    docker: Docker,
    id: String,
    /// The script's output, attached before the start so that nothing is lost;
    /// taken once by [`BuildContainer::run_script`].
    output: Mutex<Option<Output>>,
}

impl BuildContainer {
    /// Creates the container (not started). Every engine error is a
    /// [`SetupFailed`] that says what to do.
    pub async fn create(engine: &Engine, spec: &ContainerSpec) -> Result<Self, SetupFailed> {
        let config = engine.config();
        let (mut binds, volumes): (Vec<String>, Vec<String>) = config
            .volumes
            .iter()
            .cloned()
            .partition(|v| v.contains(':'));
        if let Some(dir) = spec.file_variables.as_ref().filter(|d| d.is_dir()) {
            binds.push(format!("{0}:{0}:ro", dir.display()));
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec![
                "sh".into(),
                "-e".into(),
                "-c".into(),
                spec.script.join("\n"),
            ]),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(spec.working_dir.clone()),
            labels: Some(engine.labels(spec.job_id)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            volumes: Some(volumes).filter(|v| !v.is_empty()),
            host_config: Some(HostConfig {
                privileged: Some(config.privileged),
                binds: Some(binds).filter(|b| !b.is_empty()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = engine
            .docker()
            .create_container(None, body)
            .await
            .map_err(|e| {
                SetupFailed(format!(
                    "creating the build container from {:?} on the Docker Engine at {}: {e}",
                    spec.image,
                    engine.host()
                ))
            })?;
        Ok(BuildContainer {
            docker: engine.docker().clone(),
            id: created.id,
            output: Mutex::new(None),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Attaches to its output, then starts it. Returns once the engine runs it.
    pub async fn start(&self) -> Result<(), SetupFailed> {
        let failed = |what: &str, e: DockerError| {
            SetupFailed(format!(
                "{what} the build container {}: {e}",
                short(&self.id)
            ))
        };
        let attach = AttachContainerOptions {
            logs: true,
            stream: true,
            stdout: true,
            stderr: true,
            ..AttachContainerOptions::default()
        };
        let attached = self
            .docker
            .attach_container(&self.id, Some(attach))
            .await
            .map_err(|e| failed("attaching to", e))?;
        *self.output.lock().expect("output lock") = Some(attached.output);
        self.docker
            .start_container(&self.id, None)
            .await
            .map_err(|e| failed("starting", e))
    }

    /// The running script: its output, its exit, and its kill (the container's
    /// removal). Call once, after [`BuildContainer::start`].
    pub fn run_script(&self) -> io::Result<ScriptRun> {
        let output = self
            .output
            .lock()
            .expect("output lock")
            .take()
            .ok_or_else(|| io::Error::other("the build container was not started"))?;
        let (output, _pump) = stream::reader(output, async {});
        let (docker, id) = (self.docker.clone(), self.id.clone());
        // "not-running": answered at once if the script has already ended.
        let wait = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let exit = Box::pin(async move {
            match docker.wait_container(&id, Some(wait)).next().await {
                Some(Ok(done)) => Ok(ScriptExit::Code(done.status_code as i32)),
                // bollard reports a non-zero exit code as an error.
                Some(Err(DockerError::DockerContainerWaitError { code, .. })) => {
                    Ok(ScriptExit::Code(code as i32))
                }
                Some(Err(e)) => Err(io::Error::other(format!(
                    "waiting for the build container {}: {e}",
                    short(&id)
                ))),
                None => Err(io::Error::other(format!(
                    "the Docker Engine ended the wait for the build container {} without an \
                     exit code",
                    short(&id)
                ))),
            }
        });
        let (docker, id) = (self.docker.clone(), self.id.clone());
        let kill = Box::new(move || -> Closing {
            let (docker, id) = (docker.clone(), id.clone());
            let removal = tokio::spawn(async move {
                remove_container(&docker, &id).await;
            });
            Box::pin(async move {
                let _ = removal.await;
            })
        });
        Ok(ScriptRun {
            output: Box::new(output),
            exit,
            kill,
        })
    }
}

/// Docker's short container id, for messages.
pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
