//! The docker executor on a real Docker Engine, through its API (bollard).
//!
//! - this module: the engine of one `[[runners]]` entry (`[runners.docker] host`,
//!   else `DOCKER_HOST`), its reachability, images and pull policy, and the
//!   labels that find every container this runner made, also those a killed
//!   runner left behind (removed at start);
//! - [`build`]: the build container, which runs the job's script (its output is
//!   the job log, its exit code the job's result) and stops with it (DK-3);
//! - [`exec`]: a terminal, an exec with a TTY in the build container (DK-2);
//! - `stream`: the engine's framed output as a byte stream.
//!
//! Only a real machine uses it ([`crate::machine::Machine::runs_containers`]):
//! under simulation the model of [`super::docker`] stands for the container.

pub mod build;
pub mod exec;
mod stream;

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::config::{DockerConfig, PullPolicy};

/// Every container this runner makes carries this label (value `true`):
/// `docker ps -a --filter label=com.gitlab.session-server.managed` lists them.
pub const MANAGED_LABEL: &str = "com.gitlab.session-server.managed";
/// Which runner made it: the first 8 characters of its token, as GitLab
/// Runner's own labels; stable across restarts, so that a runner finds what
/// its killed predecessor left.
pub const RUNNER_LABEL: &str = "com.gitlab.session-server.runner";
/// Which job it belongs to.
pub const JOB_LABEL: &str = "com.gitlab.session-server.job";

/// How long one engine request may take (a pull's stream excepted).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the engine gets to answer the first question of a job.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The local engine when neither `host` nor `DOCKER_HOST` names one.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Why a job cannot run in Docker: a job log line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailed(pub String);

impl std::fmt::Display for SetupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Docker Engine of one runner entry.
pub struct Engine {
    docker: Docker,
    host: String,
    config: DockerConfig,
    runner: String,
}

impl Engine {
    /// Does not connect yet: the first job (or the clean-up at start) does.
    /// `runner_token` only names the runner in labels (its first 8 characters).
    pub fn new(config: DockerConfig, runner_token: &str) -> Result<Engine, SetupFailed> {
        let host = config
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let docker = Docker::connect_with_host(&host)
            .map_err(|e| unreachable(&host, e.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        Ok(Engine {
            docker,
            host,
            config,
            runner: runner_token.chars().take(8).collect(),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The labels of a container of job `job_id`.
    fn labels(&self, job_id: u64) -> HashMap<String, String> {
        HashMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (RUNNER_LABEL.to_string(), self.runner.clone()),
            (JOB_LABEL.to_string(), job_id.to_string()),
        ])
    }

    /// Is the engine there? The error says where the runner looked and what to do.
    pub async fn ping(&self) -> Result<(), SetupFailed> {
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unreachable(&self.host, e.to_string())),
            Err(_) => Err(unreachable(
                &self.host,
                format!("no answer within {}s", PING_TIMEOUT.as_secs()),
            )),
        }
    }

    /// Makes `image` available as the pull policy says, or says why it is not.
    /// `what` names its use in the message ("the job's image", "service ...").
    pub async fn ensure_image(&self, image: &str, what: &str) -> Result<(), SetupFailed> {
        let policy = self.config.pull_policy;
        let present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => {
                return Err(SetupFailed(format!(
                    "asking the Docker Engine at {} about {what} {image:?}: {e}",
                    self.host
                )))
            }
        };
        match (present, policy) {
            (true, PullPolicy::Never | PullPolicy::IfNotPresent) => Ok(()),
            (false, PullPolicy::Never) => Err(SetupFailed(format!(
                "{what} {image:?} is not on the Docker Engine at {} and pull_policy is \
                 \"never\": load it there (docker pull, docker load or docker import) or \
                 choose an image it has",
                self.host
            ))),
            (_, PullPolicy::Always | PullPolicy::IfNotPresent) => {
                self.pull(image, what, present).await
            }
        }
    }

    async fn pull(&self, image: &str, what: &str, present: bool) -> Result<(), SetupFailed> {
        let (from_image, tag) = split_tag(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_string()),
            tag: Some(tag.to_string()),
            ..CreateImageOptions::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                let hint = if present {
                    "the engine has a copy: set [runners.docker] pull_policy = \
                     \"if-not-present\" to use it without pulling"
                } else {
                    "make the registry reachable, or load the image on the engine (docker \
                     load or docker import) and set [runners.docker] pull_policy = \
                     \"if-not-present\""
                };
                return Err(SetupFailed(format!(
                    "pulling {what} {image:?} (pull_policy \"{}\") failed: {e}; {hint}",
                    self.config.pull_policy.name()
                )));
            }
        }
        Ok(())
    }

    /// Removes every container this runner made for job `job_id` (with its
    /// anonymous volumes), whatever state it is in. Errors are logged only:
    /// the next start cleans up what is left.
    pub async fn remove_job(&self, job_id: u64) {
        self.remove_labelled(Some(job_id)).await;
    }

    /// Removes every container this runner made: what a killed runner left.
    /// Returns how many were removed.
    pub async fn clean_up(&self) -> usize {
        self.remove_labelled(None).await
    }

    async fn remove_labelled(&self, job_id: Option<u64>) -> usize {
        let mut labels = vec![
            format!("{MANAGED_LABEL}=true"),
            format!("{RUNNER_LABEL}={}", self.runner),
        ];
        labels.extend(job_id.map(|id| format!("{JOB_LABEL}={id}")));
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            ..ListContainersOptions::default()
        };
        let containers = match self.docker.list_containers(Some(options)).await {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(host = %self.host, "listing this runner's containers: {e}");
                return 0;
            }
        };
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            if remove_container(&self.docker, &id).await {
                removed += 1;
            }
        }
        removed
    }
}

fn unreachable(host: &str, why: String) -> SetupFailed {
    SetupFailed(format!(
        "cannot reach the Docker Engine at {host}: {why}. Start dockerd there, or point \
         [runners.docker] host (or DOCKER_HOST) at a running engine (unix:///path/to/docker.sock \
         or tcp://host:port)"
    ))
}

/// The engine of a runner entry, connected on first use; a runner started
/// before its engine gets it as soon as it is there.
pub struct EngineSlot {
    config: DockerConfig,
    runner_token: String,
    engine: std::sync::Mutex<Option<std::sync::Arc<Engine>>>,
}

impl EngineSlot {
    pub fn new(config: DockerConfig, runner_token: &str) -> Self {
        EngineSlot {
            config,
            runner_token: runner_token.to_string(),
            engine: std::sync::Mutex::new(None),
        }
    }

    pub fn get(&self) -> Result<std::sync::Arc<Engine>, SetupFailed> {
        let mut slot = self.engine.lock().expect("engine lock");
        if let Some(engine) = &*slot {
            return Ok(engine.clone());
        }
        let engine = std::sync::Arc::new(Engine::new(self.config.clone(), &self.runner_token)?);
        *slot = Some(engine.clone());
        Ok(engine)
    }
}

/// Force-removes one container and its anonymous volumes; true if it was there.
pub(crate) async fn remove_container(docker: &Docker, id: &str) -> bool {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => true,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        // Already being removed (a kill raced the job's end).
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => false,
        Err(e) => {
            tracing::warn!(container = %id, "removing a build container: {e}");
            false
        }
    }
}

/// `name[:tag]` or `name@digest`: a pull without a tag would fetch every tag.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    // A colon before the last slash belongs to a registry's port.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => (&image[..image.len() - tag.len() - 1], tag),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_names_one_tag() {
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(split_tag("redis:7-alpine"), ("redis", "7-alpine"));
        assert_eq!(
            split_tag("registry:5000/group/img"),
            ("registry:5000/group/img", "latest")
        );
        assert_eq!(
            split_tag("registry:5000/img:1.2"),
            ("registry:5000/img", "1.2")
        );
        assert_eq!(split_tag("img@sha256:ab"), ("img@sha256:ab", ""));
    }

    #[test]
    fn labels_name_the_runner_by_its_token_prefix_and_the_job() {
        let engine = Engine::new(
            DockerConfig {
                host: Some("tcp://127.0.0.1:1".into()),
                ..DockerConfig::default()
            },
            "glrt-abcdefghijkl",
        )
        .unwrap();
        let labels = engine.labels(7);
        assert_eq!(labels[MANAGED_LABEL], "true");
        assert_eq!(labels[RUNNER_LABEL], "glrt-abc");
        assert_eq!(labels[JOB_LABEL], "7");
    }

    #[tokio::test]
    async fn an_unreachable_engine_is_named_with_what_to_do() {
        // Nothing listens on port 1: the ping is refused.
        let engine = Engine::new(
            DockerConfig {
                host: Some("tcp://127.0.0.1:1".into()),
                ..DockerConfig::default()
            },
            "t",
        )
        .unwrap();
        let err = engine.ping().await.unwrap_err().0;
        assert!(
            err.contains("tcp://127.0.0.1:1") && err.contains("Start dockerd"),
            "{err}"
        );
        let at_new = EngineSlot::new(
            DockerConfig {
                host: Some("unix:///nonexistent/docker.sock".into()),
                ..DockerConfig::default()
            },
            "t",
        )
        .get()
        .err()
        .expect("no socket there");
        assert!(
            at_new
                .0
                .starts_with("cannot reach the Docker Engine at unix:///nonexistent"),
            "{at_new}"
        );
    }
}
