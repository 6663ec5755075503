//! Scenario files: `scenarios/<family>/<name>.toml`. A scenario says what it
//! checks (SPEC ids), what a user would see, the world it runs in, a timeline
//! of steps at virtual times, and what must be observed.

mod load;
mod request;
mod step;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::duration::Dur;
pub use load::{browser_names, browser_plans, hosts, load, load_str, BrowserPlan, LoadError};
pub use request::{ProxyTarget, Shape};

/// A small valid scenario for tests to vary: alice, a developer, opens the
/// terminal of her job 1 at 1 s.
#[cfg(test)]
pub(crate) const TEST_SCENARIO: &str = r#"
title = "t"
user_sees = "u"
spec = ["LC-1"]
[users.alice]
role = "developer"
[[job]]
id = 1
owner = "alice"
script = ["sleep 1"]
[[step]]
at = "1s"
do = "open"
browser = "alice"
job = 1
"#;
pub use step::{Action, BrowserStep, Link, Open, Step, StopMode, Token, Via};

/// A scenario, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    /// One line: what a user would see.
    pub user_sees: String,
    /// The SPEC rule ids it checks.
    pub spec: Vec<String>,
    #[serde(default = "one")]
    pub seed: u64,
    /// Simulation tick; longer scenarios run faster with a coarser one.
    #[serde(default)]
    pub tick: Option<Dur>,
    /// When the run stops at the latest (default: an hour after the last step).
    #[serde(default)]
    pub end: Option<Dur>,
    /// Also check the lifecycle invariants (those the fuzzer checks) on this run.
    #[serde(default)]
    pub invariants: bool,
    /// Why the scenario cannot run against a third party's runner, if it cannot.
    #[serde(default)]
    pub conformance_skip: Option<String>,
    #[serde(default)]
    pub runner: RunnerSpec,
    #[serde(default)]
    pub gitlab: GitlabSpec,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub users: BTreeMap<String, UserSpec>,
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSpec>,
    #[serde(default, rename = "job")]
    pub jobs: Vec<JobSpec>,
    /// Browsers by name; a browser whose name is a user's needs no entry.
    #[serde(default)]
    pub browsers: BTreeMap<String, BrowserSpec>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Expect,
    /// Where it was read from (set by the loader).
    #[serde(skip)]
    pub path: PathBuf,
    /// `family/name`, from the path (set by the loader).
    #[serde(skip)]
    pub id: String,
    /// Whether it lives under `scenarios/` (and so has a snapshot).
    #[serde(skip)]
    pub in_catalogue: bool,
}

impl Scenario {
    /// When the timeline's last step happens.
    pub fn last_step(&self) -> std::time::Duration {
        self.steps.iter().map(|s| s.at.0).max().unwrap_or_default()
    }

    /// When the run stops at the latest: its `end`, else an hour after its
    /// last step.
    pub fn ends_by(&self) -> std::time::Duration {
        self.end
            .map(|d| d.0)
            .unwrap_or(self.last_step() + std::time::Duration::from_secs(3600))
    }
}

fn one() -> u64 {
    1
}

/// A project member's role; Developer and above may open a terminal (AU-2).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    #[serde(default)]
    pub executor: Executor,
    /// `[session_server] session_timeout`; absent: not set (CFG-3).
    #[serde(default)]
    pub session_timeout: Option<i64>,
    /// Absent: the session server is on. `false`: no `listen_address` (CFG-1).
    #[serde(default = "yes")]
    pub session_server: bool,
    /// Runner processes behind one load balancer (DP-3).
    #[serde(default = "one_u32")]
    pub replicas: u32,
    #[serde(default = "four")]
    pub concurrent: u32,
    /// Seconds between the runner's job requests while GitLab has none for
    /// it (`check_interval`; GitLab Runner's default, 3). In simulation
    /// only: `conform` asks a real runner for a request every second.
    #[serde(default = "three")]
    pub check_interval: u32,
}

impl RunnerSpec {
    /// The runner's hosts in the world: `runner`, or `runner-1..N` for replicas.
    pub fn hosts(&self) -> Vec<String> {
        if self.replicas <= 1 {
            vec!["runner".into()]
        } else {
            (1..=self.replicas).map(|i| format!("runner-{i}")).collect()
        }
    }
}

impl Default for RunnerSpec {
    fn default() -> Self {
        RunnerSpec {
            executor: Executor::Shell,
            session_timeout: None,
            session_server: true,
            replicas: 1,
            concurrent: 4,
            check_interval: 3,
        }
    }
}

/// The runner's executor (`[[runners]] executor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    #[default]
    Shell,
    Docker,
    Custom,
}

impl Executor {
    /// As config.toml writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::Shell => "shell",
            Executor::Docker => "docker",
            Executor::Custom => "custom",
        }
    }
}

impl std::fmt::Display for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn yes() -> bool {
    true
}
fn one_u32() -> u32 {
    1
}
fn three() -> u32 {
    3
}

fn four() -> u32 {
    4
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabSpec {
    /// WH-4: Workhorse's MaxSessionTime.
    #[serde(default)]
    pub max_session_time: Option<Dur>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Message latency range, `[min, max]`.
    #[serde(default)]
    pub latency: Option<[Dur; 2]>,
    /// A reverse proxy in front of GitLab (WH-6).
    #[serde(default)]
    pub front_proxy: Option<FrontProxy>,
    /// A TLS-terminating proxy in front of the runner (TLS-2).
    #[serde(default)]
    pub runner_tls_proxy: bool,
    /// Only GitLab may reach the runner (DP-2).
    #[serde(default)]
    pub firewall: bool,
    /// The runner advertises an address GitLab cannot reach (DP-1).
    #[serde(default)]
    pub unreachable_advertise: bool,
}

/// What a reverse proxy in front of GitLab does with a WebSocket upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrontProxy {
    /// Passes it on.
    Pass,
    /// Drops the `Upgrade` and `Connection` headers, as a misconfigured proxy does.
    StripUpgrade,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub role: Role,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    #[serde(default)]
    pub archived: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub id: u64,
    /// The user who started it.
    pub owner: String,
    #[serde(default = "demo")]
    pub project: String,
    pub script: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Time the executor takes to prepare, before the job runs (EX-3).
    #[serde(default)]
    pub prepare: Option<Dur>,
    /// Docker: when the build container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_start: Option<ContainerStart>,
    /// A Web IDE terminal job (WI-1): the `terminal` job of a `webide` pipeline.
    #[serde(default)]
    pub webide: bool,
    /// The job's `services:` (WI-1); absent: the pipeline's default service.
    #[serde(default, rename = "service")]
    pub services: Option<Vec<ServiceSpec>>,
}

impl JobSpec {
    /// The job's `timeout`, else GitLab's default: an hour.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(|d| d.0)
            .unwrap_or(std::time::Duration::from_secs(3600))
    }
}

/// One entry of a job's `services:`. In the simulation each service host (its
/// alias, else its name) is a host of the world that answers on its ports.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub alias: Option<String>,
    /// `ports:`, as the job declares them.
    pub ports: Vec<u16>,
    /// Declared ports on which nothing listens (WI-5).
    #[serde(default)]
    pub closed_ports: Vec<u16>,
}

impl ServiceSpec {
    /// The host the runner dials for it (WI-5).
    pub fn host(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// When a docker job's build container runs: after a duration, or `"never"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStart {
    After(Dur),
    Never,
}

impl<'de> Deserialize<'de> for ContainerStart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "never" {
            return Ok(ContainerStart::Never);
        }
        Dur::parse(&text).map(ContainerStart::After).map_err(|e| {
            serde::de::Error::custom(format!("{e}; or \"never\" for a container that never runs"))
        })
    }
}

impl Serialize for ContainerStart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContainerStart::After(d) => d.serialize(s),
            ContainerStart::Never => s.serialize_str("never"),
        }
    }
}

fn demo() -> String {
    "demo".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSpec {
    /// The GitLab user it is signed in as; absent: not signed in.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub browser: BTreeMap<String, BrowserExpect>,
    #[serde(default)]
    pub job: BTreeMap<String, JobExpect>,
}

/// What a browser must observe.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserExpect {
    /// The answers to its opens, in order (101, 423, 502, ...; 0: no HTTP answer).
    #[serde(default)]
    pub answers: Option<Vec<u16>>,
    /// Text that appears in its output (and the bodies of successful
    /// `fetch`es), in this order.
    #[serde(default)]
    pub sees: Vec<String>,
    #[serde(default)]
    pub never_sees: Vec<String>,
    /// How each of its connections closed: "1001 reason", "1000", "1006".
    #[serde(default)]
    pub closes: Option<Vec<String>>,
    /// When each close happened.
    #[serde(default)]
    pub closed_at: Option<Vec<Dur>>,
    #[serde(default)]
    pub tolerance: Option<Dur>,
}

/// What GitLab must have received about a job.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobExpect {
    #[serde(default)]
    pub state: Option<JobState>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Log lines (substrings), in this order.
    #[serde(default)]
    pub log: Vec<String>,
    #[serde(default)]
    pub no_log: Vec<String>,
    #[serde(default)]
    pub finished_at: Option<Dur>,
    #[serde(default)]
    pub tolerance: Option<Dur>,
    /// Whether the runner offered a session with the job (JOB-1).
    #[serde(default)]
    pub session_offered: Option<bool>,
}

/// A job's state at the end of a run, as GitLab holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Success,
    Failed,
    /// No final state by the end.
    Running,
}

impl JobState {
    /// As the runner reports it (`running`: it reported none).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Running => "running",
        }
    }
}
