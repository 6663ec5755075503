//! Scenario files: `scenarios/<family>/<name>.toml`. A scenario says what it
//! checks (SPEC ids), what a user would see, the world it runs in, a timeline
//! of steps at virtual times, and what must be observed.

mod duration;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use duration::Dur;
pub use load::{browser_names, hosts, load, load_str, LoadError};

use crate::world::gitlab::Role;

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
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    #[serde(default = "shell")]
    pub executor: String,
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
}

impl Default for RunnerSpec {
    fn default() -> Self {
        RunnerSpec {
            executor: shell(),
            session_timeout: None,
            session_server: true,
            replicas: 1,
            concurrent: 4,
        }
    }
}

fn shell() -> String {
    "shell".into()
}
fn yes() -> bool {
    true
}
fn one_u32() -> u32 {
    1
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
    /// A reverse proxy in front of GitLab: `pass` or `strip-upgrade` (WH-6).
    #[serde(default)]
    pub front_proxy: Option<String>,
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
    /// Docker: time until the build container runs; `"never"` for one that does not.
    #[serde(default)]
    pub container_start: Option<String>,
    /// A Web IDE terminal job (WI-1): the `terminal` job of a `webide` pipeline.
    #[serde(default)]
    pub webide: bool,
    /// The job's `services:` (WI-1); absent: the pipeline's default service.
    #[serde(default, rename = "service")]
    pub services: Option<Vec<ServiceSpec>>,
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

/// One step of the timeline. `do` says what; the other keys depend on it:
/// - `open` (browser, job, via = "gitlab"|"direct", token = "own"|"none"|"empty"|"wrong"|"bearer"|"prefix"|"appended"|"other-case"|"job:N",
///   protocols = [...], insecure; proxy = "<service>/<port>/<path>": the job's service
///   through Workhorse's `proxy.ws` instead of its terminal, WI-3),
///   `fetch` (browser, job, proxy: an HTTP GET through Workhorse's proxy, WI-4),
///   `type` (browser, text, repeat = N: the text N times in
///   one message, a paste), `close` (browser), `vanish` (browser)
/// - `cancel` (job), `signal` (mode = "abort"|"graceful"), `revoke` (user, role), `archive` (project)
/// - `partition`, `repair`, `hold`, `release` (a, b), `crash`, `bounce` (host)
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: Dur,
    #[serde(rename = "do")]
    pub action: String,
    #[serde(default)]
    pub browser: Option<String>,
    #[serde(default)]
    pub job: Option<u64>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub repeat: Option<usize>,
    #[serde(default)]
    pub via: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub protocols: Option<Vec<String>>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub a: Option<String>,
    #[serde(default)]
    pub b: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// `open` only: the request's shape, `upgrade` (the default) or one that is
    /// not a WebSocket upgrade, sent directly: `get`, `post` (EX-2's 405), or
    /// `http10-upgrade` (an upgrade as HTTP/1.0: WS-8 refuses it).
    #[serde(default)]
    pub request: Option<String>,
    /// `<service>/<port>/<path>` of a job's service (steps `open` and `fetch`).
    #[serde(default)]
    pub proxy: Option<String>,
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
    /// `success`, `failed`, or `running` (no final state by the end).
    #[serde(default)]
    pub state: Option<String>,
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
