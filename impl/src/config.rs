//! Runner configuration: a GitLab Runner style `config.toml` (CFG-1..3).
//!
//! Only the keys this runner uses are read; other GitLab Runner keys are ignored
//! so that an existing config.toml loads unchanged. Every bad value stops start-up
//! with an error naming the key, the value and what is expected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::faults::{self, Fault};

/// CFG-3: the session timeout when none (or a value <= 0) is configured.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(1800);
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// A configuration error: which key, which value, what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("{key} = {value:?}: {expected}")]
    Value {
        key: String,
        value: String,
        expected: String,
    },
}

fn bad(key: &str, value: impl ToString, expected: impl ToString) -> ConfigError {
    ConfigError::Value {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// The whole runner configuration, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Jobs run at once, over all runner entries (`concurrent`).
    pub concurrent: usize,
    /// How often to ask the coordinator for a job (`check_interval`).
    pub check_interval: Duration,
    /// `None` when `[session_server]` has no listen_address (CFG-1).
    pub session_server: Option<SessionServerConfig>,
    pub runners: Vec<RunnerConfig>,
}

/// `[session_server]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionServerConfig {
    pub listen_address: String,
    /// `host:port` that GitLab dials (CFG-2).
    pub advertise_address: String,
    pub session_timeout: Duration,
}

impl SessionServerConfig {
    /// The advertised URL: `https://` + advertise_address (CFG-2).
    pub fn advertised_url(&self) -> String {
        format!("https://{}", self.advertise_address)
    }

    /// The host the certificate is made for (TLS-1).
    pub fn public_host(&self) -> &str {
        split_host_port(&self.advertise_address)
            .map(|(h, _)| h)
            .unwrap_or(&self.advertise_address)
    }
}

/// The executors this runner has (see ARCHITECTURE.md for how they map to GitLab Runner's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    Shell,
    Docker,
    Custom,
}

impl ExecutorKind {
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Shell => "shell",
            ExecutorKind::Docker => "docker",
            ExecutorKind::Custom => "custom",
        }
    }
}

/// One `[[runners]]` entry, validated.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    pub name: String,
    /// Coordinator base URL, e.g. `http://gitlab:80` or `https://gitlab.example.com`.
    pub url: String,
    pub token: String,
    pub executor: ExecutorKind,
    /// Shell for scripts and terminals; `None`: the machine's default.
    pub shell: Option<String>,
    /// Where job directories are made (shell executor); `None`: the system temp dir.
    pub builds_dir: Option<PathBuf>,
    /// `[runners.docker]`: used when `executor = "docker"`.
    pub docker: DockerConfig,
    /// `tls-ca-file`: roots to trust for an https coordinator (else Mozilla's).
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawConfig {
    concurrent: Option<i64>,
    check_interval: Option<i64>,
    #[serde(default)]
    session_server: RawSessionServer,
    #[serde(default)]
    runners: Vec<RawRunner>,
}

#[derive(Deserialize, Default)]
struct RawSessionServer {
    listen_address: Option<String>,
    advertise_address: Option<String>,
    session_timeout: Option<i64>,
}

#[derive(Deserialize)]
struct RawRunner {
    name: Option<String>,
    url: Option<String>,
    token: Option<String>,
    executor: Option<String>,
    shell: Option<String>,
    builds_dir: Option<PathBuf>,
    docker: Option<RawDocker>,
    #[serde(rename = "tls-ca-file")]
    tls_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawDocker {
    host: Option<String>,
    image: Option<String>,
    pull_policy: Option<RawPullPolicy>,
    privileged: Option<bool>,
    volumes: Option<Vec<String>>,
}

/// GitLab Runner takes `pull_policy` as one policy or a list tried in order.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPullPolicy {
    One(String),
    Many(Vec<String>),
}

/// `[runners.docker]`, validated (GitLab Runner's keys and defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig {
    /// The Docker Engine to use; `None`: `DOCKER_HOST`, else the local socket.
    pub host: Option<String>,
    /// The image of jobs that name none.
    pub image: Option<String>,
    pub pull_policy: PullPolicy,
    /// Build containers run privileged (GitLab Runner's default: false).
    pub privileged: bool,
    /// Binds (`/host:/container[:ro]`) and anonymous volumes (`/path`) of build containers.
    pub volumes: Vec<String>,
}

/// When an image is pulled. Offline, `never` and `if-not-present` use the
/// images the engine already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// GitLab Runner's default.
    #[default]
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn name(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::IfNotPresent => "if-not-present",
            PullPolicy::Never => "never",
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Syntax(msg) => ConfigError::Syntax(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let concurrent = match raw.concurrent {
            None => 1,
            Some(n) if n >= 1 => n as usize,
            Some(n) => return Err(bad("concurrent", n, "a whole number of jobs, at least 1")),
        };
        let check_interval = match raw.check_interval {
            None | Some(0) => DEFAULT_CHECK_INTERVAL,
            Some(n) if n > 0 => Duration::from_secs(n as u64),
            Some(n) => {
                return Err(bad(
                    "check_interval",
                    n,
                    "seconds, 0 or more (0: the default, 3)",
                ))
            }
        };
        let session_server = raw.session_server.validate()?;
        let runners = raw
            .runners
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            concurrent,
            check_interval,
            session_server,
            runners,
        })
    }
}

impl RawSessionServer {
    fn validate(self) -> Result<Option<SessionServerConfig>, ConfigError> {
        let listen = match self.listen_address.filter(|s| !s.trim().is_empty()) {
            None => return Ok(None), // CFG-1: no session server.
            Some(l) => l,
        };
        check_host_port("session_server.listen_address", &listen)?;
        let advertise = match self.advertise_address.filter(|s| !s.trim().is_empty()) {
            None => listen.clone(),
            Some(a) => {
                if a.starts_with("http://") || a.starts_with("https://") {
                    return Err(bad(
                        "session_server.advertise_address",
                        &a,
                        "host:port without a scheme (the runner always serves https)",
                    ));
                }
                check_host_port("session_server.advertise_address", &a)?;
                a
            }
        };
        let session_timeout = match self.session_timeout {
            Some(s) if s > 0 || (s == 0 && faults::active(Fault::ZeroTimeoutKept)) => {
                Duration::from_secs(s as u64)
            }
            _ => DEFAULT_SESSION_TIMEOUT, // CFG-3: absent, zero or negative.
        };
        Ok(Some(SessionServerConfig {
            listen_address: listen,
            advertise_address: advertise,
            session_timeout,
        }))
    }
}

impl RawRunner {
    fn validate(self, index: usize) -> Result<RunnerConfig, ConfigError> {
        let key = |k: &str| format!("runners[{index}].{k}");
        let url = self.url.unwrap_or_default();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(
                &key("url"),
                &url,
                "the GitLab URL, starting with http:// or https://",
            ));
        }
        let token = self.token.unwrap_or_default();
        if token.is_empty() {
            return Err(bad(&key("token"), "", "the runner's authentication token"));
        }
        let executor = match self.executor.as_deref().unwrap_or("") {
            "shell" => ExecutorKind::Shell,
            "docker" => ExecutorKind::Docker,
            "custom" => ExecutorKind::Custom,
            other => return Err(bad(&key("executor"), other, "one of shell, docker, custom")),
        };
        Ok(RunnerConfig {
            name: self.name.unwrap_or_else(|| format!("runner-{index}")),
            url: url.trim_end_matches('/').to_string(),
            token,
            executor,
            shell: self.shell.filter(|s| !s.is_empty()),
            builds_dir: self.builds_dir,
            docker: self
                .docker
                .map(|d| d.validate(&key("docker")))
                .transpose()?
                .unwrap_or_default(),
            tls_ca_file: self.tls_ca_file,
        })
    }
}

impl RawDocker {
    fn validate(self, key: &str) -> Result<DockerConfig, ConfigError> {
        let policies = match self.pull_policy {
            None => vec![],
            Some(RawPullPolicy::One(p)) => vec![p],
            Some(RawPullPolicy::Many(ps)) => ps,
        };
        // A list is tried in order; offline only the first policy matters,
        // and the first one decides whether a pull is attempted at all.
        let pull_policy = match policies.first().map(String::as_str) {
            None | Some("always") => PullPolicy::Always,
            Some("if-not-present") => PullPolicy::IfNotPresent,
            Some("never") => PullPolicy::Never,
            Some(other) => {
                return Err(bad(
                    &format!("{key}.pull_policy"),
                    other,
                    "one of always, if-not-present, never",
                ))
            }
        };
        let host = self.host.filter(|h| !h.is_empty());
        if let Some(host) = &host {
            if !["unix://", "tcp://", "http://"]
                .iter()
                .any(|scheme| host.starts_with(scheme))
            {
                return Err(bad(
                    &format!("{key}.host"),
                    host,
                    "a Docker Engine address: unix:///path/to/docker.sock or tcp://host:port",
                ));
            }
        }
        Ok(DockerConfig {
            host,
            image: self.image.filter(|i| !i.is_empty()),
            pull_policy,
            privileged: self.privileged.unwrap_or(false),
            volumes: self.volumes.unwrap_or_default(),
        })
    }
}

/// Splits `host:port`, `[v6]:port`; `None` if there is no valid port.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

fn check_host_port(key: &str, value: &str) -> Result<(), ConfigError> {
    match split_host_port(value) {
        Some((_, _)) if !value.contains('/') => Ok(()),
        _ => Err(bad(key, value, "host:port, e.g. \"0.0.0.0:8093\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNER: &str =
        "[[runners]]\nurl = \"http://gitlab\"\ntoken = \"t\"\nexecutor = \"shell\"\n";

    fn parse(session: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("[session_server]\n{session}\n{RUNNER}"))
    }

    #[test]
    fn empty_listen_address_means_no_session_server() {
        assert!(parse("").unwrap().session_server.is_none());
        assert!(parse("listen_address = \"\"")
            .unwrap()
            .session_server
            .is_none());
    }

    #[test]
    fn advertise_address_defaults_to_listen_address() {
        let s = parse("listen_address = \"0.0.0.0:8093\"")
            .unwrap()
            .session_server
            .unwrap();
        assert_eq!(s.advertise_address, "0.0.0.0:8093");
        assert_eq!(s.advertised_url(), "https://0.0.0.0:8093");
    }

    #[test]
    fn advertise_address_with_a_scheme_is_a_startup_error() {
        let err =
            parse("listen_address = \"0.0.0.0:8093\"\nadvertise_address = \"https://runner:8093\"")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("session_server.advertise_address") && err.contains("without a scheme"),
            "{err}"
        );
    }

    #[test]
    fn session_timeout_zero_or_negative_is_the_default() {
        for v in ["0", "-5"] {
            let s = parse(&format!("listen_address = \"a:1\"\nsession_timeout = {v}")).unwrap();
            assert_eq!(
                s.session_server.unwrap().session_timeout,
                DEFAULT_SESSION_TIMEOUT
            );
        }
        let s = parse("listen_address = \"a:1\"\nsession_timeout = 90").unwrap();
        assert_eq!(
            s.session_server.unwrap().session_timeout,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn listen_address_without_port_names_the_key() {
        let err = parse("listen_address = \"runner\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("session_server.listen_address = \"runner\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_executor_is_refused_with_the_choices() {
        let err = Config::parse(
            "[[runners]]\nurl = \"http://g\"\ntoken = \"t\"\nexecutor = \"kubernetes\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("runners[0].executor") && err.contains("shell, docker, custom"),
            "{err}"
        );
    }

    #[test]
    fn docker_keys_are_read_as_gitlab_runner_writes_them() {
        let config = Config::parse(
            "[[runners]]\nurl = \"http://g\"\ntoken = \"t\"\nexecutor = \"docker\"\n\
             [runners.docker]\nhost = \"unix:///tmp/d.sock\"\nimage = \"alpine\"\n\
             pull_policy = [\"if-not-present\", \"always\"]\nprivileged = false\n\
             volumes = [\"/cache\"]\n",
        )
        .unwrap();
        let docker = &config.runners[0].docker;
        assert_eq!(docker.host.as_deref(), Some("unix:///tmp/d.sock"));
        assert_eq!(docker.image.as_deref(), Some("alpine"));
        assert_eq!(docker.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(docker.volumes, vec!["/cache".to_string()]);
    }

    #[test]
    fn unknown_pull_policy_is_refused_with_the_choices() {
        let err = Config::parse(
            "[[runners]]\nurl = \"http://g\"\ntoken = \"t\"\nexecutor = \"docker\"\n\
             [runners.docker]\npull_policy = \"sometimes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("runners[0].docker.pull_policy") && err.contains("never"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = Config::parse("[session_server\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn public_host_strips_port_and_brackets() {
        let s =
            parse("listen_address = \"[::]:8093\"\nadvertise_address = \"runner.example:9000\"")
                .unwrap()
                .session_server
                .unwrap();
        assert_eq!(s.public_host(), "runner.example");
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
    }
}
