//! The `config.toml` the runner under test gets: GitLab Runner's format, with
//! only keys that GitLab Runner and `session-server` both read.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::actors::gitlab::RUNNER_TOKEN;
use crate::scenario::{Executor, RunnerSpec};

/// Where the runner's session server listens, and what it tells GitLab (CFG-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAddress {
    pub listen: String,
    pub advertise: String,
}

impl SessionAddress {
    /// `listen`, or 127.0.0.1 on a port free right now; advertised as itself
    /// unless `advertise` says otherwise.
    pub fn choose(listen: Option<&str>, advertise: Option<&str>) -> anyhow::Result<Self> {
        let listen = match listen {
            Some(l) => l.to_string(),
            None => free_local_address()?,
        };
        let advertise = advertise
            .map(str::to_string)
            .unwrap_or_else(|| listen.clone());
        Ok(SessionAddress { listen, advertise })
    }
}

/// A port of 127.0.0.1 that is free now. A fixed one rather than port 0:
/// GitLab Runner would advertise `:0`.
pub fn free_local_address() -> anyhow::Result<String> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port on 127.0.0.1 for the runner's session server")?;
    Ok(format!("127.0.0.1:{}", probe.local_addr()?.port()))
}

/// The config of a runner that polls `coordinator` (`http://host:port`).
/// `session_timeout` is in whole seconds, as config.toml has it (CFG-3).
/// A docker runner gets `job_image` as its default image, used without a
/// pull when its engine has it (`pull_policy = "if-not-present"`); its
/// engine is its environment's (`DOCKER_HOST`). Its first line says which
/// command wrote it and why (`about`: `serve`, `conform: scenario …`).
pub fn config_toml(
    runner: &RunnerSpec,
    session_timeout: u64,
    coordinator: &str,
    session: &SessionAddress,
    job_image: Option<&str>,
    about: &str,
) -> String {
    let mut toml = format!(
        "# Written by session-harness {about}.\nconcurrent = {}\ncheck_interval = 1\n\n",
        runner.concurrent
    );
    if runner.session_server {
        let _ = write!(
            toml,
            "[session_server]\n  listen_address = \"{}\"\n  advertise_address = \"{}\"\n  session_timeout = {session_timeout}\n\n",
            session.listen, session.advertise
        );
    }
    let _ = write!(
        toml,
        "[[runners]]\n  name = \"session-harness-conform\"\n  url = \"{coordinator}\"\n  token = \"{RUNNER_TOKEN}\"\n  executor = \"{}\"\n",
        runner.executor
    );
    if let (Some(image), Executor::Docker) = (job_image, runner.executor) {
        let _ = write!(
            toml,
            "  [runners.docker]\n    image = \"{image}\"\n    pull_policy = \"if-not-present\"\n"
        );
    }
    toml
}

pub fn write(path: &Path, toml: &str) -> anyhow::Result<()> {
    std::fs::write(path, toml)
        .with_context(|| format!("writing the runner's config to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_server_is_written_only_when_the_scenario_has_one() {
        let address = SessionAddress {
            listen: "127.0.0.1:8093".into(),
            advertise: "127.0.0.1:8093".into(),
        };
        let spec = RunnerSpec::default();
        let toml = config_toml(&spec, 3, "http://127.0.0.1:1", &address, None, "test");
        let config = session_server::config::Config::parse(&toml).unwrap();
        let server = config.session_server.unwrap();
        assert_eq!(server.session_timeout.as_secs(), 3);
        assert_eq!(server.advertised_url(), "https://127.0.0.1:8093");
        assert_eq!(config.runners[0].token, RUNNER_TOKEN);

        let off = RunnerSpec {
            session_server: false,
            ..RunnerSpec::default()
        };
        let toml = config_toml(&off, 3, "http://127.0.0.1:1", &address, None, "test");
        assert!(session_server::config::Config::parse(&toml)
            .unwrap()
            .session_server
            .is_none());
    }

    #[test]
    fn a_docker_runner_gets_the_job_image_as_gitlab_runner_reads_it() {
        let address = SessionAddress {
            listen: "127.0.0.1:8093".into(),
            advertise: "127.0.0.1:8093".into(),
        };
        let docker = RunnerSpec {
            executor: Executor::Docker,
            ..RunnerSpec::default()
        };
        let toml = config_toml(
            &docker,
            3,
            "http://127.0.0.1:1",
            &address,
            Some("img:1"),
            "t",
        );
        let config = session_server::config::Config::parse(&toml).unwrap();
        let read = &config.runners[0].docker;
        assert_eq!(read.image.as_deref(), Some("img:1"));
        assert_eq!(
            read.pull_policy,
            session_server::config::PullPolicy::IfNotPresent
        );
        let shell = config_toml(
            &RunnerSpec::default(),
            3,
            "http://127.0.0.1:1",
            &address,
            Some("img:1"),
            "t",
        );
        assert!(!shell.contains("[runners.docker]"), "{shell}");
    }
}
