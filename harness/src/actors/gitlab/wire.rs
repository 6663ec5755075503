//! The runner API's messages as GitLab itself sends and reads them (JOB-1..4),
//! written from GitLab's documentation of the runner API and from what GitLab
//! puts on the wire, never from the runner under test's own types: a runner
//! that chokes on a real payload must fail here as it would against GitLab.
//!
//! - What GitLab sends ([`JobResponse`]) is serialized in full, with `null`
//!   where GitLab sends `null` (an absent optional value) and fields a runner
//!   may not know (`hooks`, `job_info.time_in_queue_seconds`, ...).
//! - What a runner sends ([`JobRequest`], [`UpdateJob`]) is decoded tolerantly:
//!   any field may be missing or `null`, and unknown fields are ignored, as
//!   GitLab's Rails API does.

use serde::{Deserialize, Deserializer, Serialize};

// ---------------------------------------------------------------- runner -> GitLab

/// `POST /api/v4/jobs/request`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct JobRequest {
    #[serde(default, deserialize_with = "null_is_default")]
    pub token: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub info: RunnerInfo,
    /// JOB-1: where the runner's session lives, when its session server is on.
    #[serde(default)]
    pub session: Option<SessionInfo>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub last_update: String,
}

/// `info` of a job request: what the runner is and can do.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunnerInfo {
    #[serde(default, deserialize_with = "null_is_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub version: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub executor: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub shell: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub features: Features,
}

/// The features a runner announces; GitLab offers a terminal only with both.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Features {
    #[serde(default, deserialize_with = "null_is_default")]
    pub session: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    pub terminal: bool,
}

/// JOB-2: `session` of a job request; also what Rails hands Workhorse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SessionInfo {
    #[serde(default, deserialize_with = "null_is_default")]
    pub url: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub certificate: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub authorization: String,
}

/// `PUT /api/v4/jobs/:id`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UpdateJob {
    #[serde(default, deserialize_with = "null_is_default")]
    pub token: String,
    /// `running`, `success` or `failed`; empty when the runner only checks in.
    #[serde(default, deserialize_with = "null_is_default")]
    pub state: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Go's decoder and Rails take `null` for an absent value; so does the harness.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// ---------------------------------------------------------------- GitLab -> runner

/// The job GitLab hands out with `201 Created` (JOB-4), in full.
#[derive(Clone, Debug, Serialize)]
pub struct JobResponse {
    pub id: u64,
    pub token: String,
    pub allow_git_fetch: bool,
    pub job_info: JobInfo,
    pub git_info: GitInfo,
    pub runner_info: JobRunnerInfo,
    pub variables: Vec<Variable>,
    pub steps: Vec<Step>,
    /// `null` when the job names no image.
    pub image: Option<Image>,
    pub services: Vec<Service>,
    /// `null` when the job keeps no artifacts (the harness's jobs keep none:
    /// there is nowhere to upload them).
    pub artifacts: Option<Vec<serde_json::Value>>,
    /// The harness's jobs use no cache and depend on no other job's artifacts.
    pub cache: Vec<serde_json::Value>,
    pub credentials: Vec<Credentials>,
    pub dependencies: Vec<serde_json::Value>,
    pub features: JobFeatures,
    /// A field newer GitLab sends that older runners do not know.
    pub hooks: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobInfo {
    pub id: u64,
    pub name: String,
    pub stage: String,
    pub project_id: u64,
    pub project_name: String,
    /// Fields a runner may not know: GitLab adds them over time.
    pub time_in_queue_seconds: f64,
    pub project_jobs_running_on_instance_runners_count: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct GitInfo {
    pub repo_url: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
    pub before_sha: String,
    pub ref_type: String,
    pub refspecs: Vec<String>,
    pub depth: u32,
    pub protected: bool,
    pub repo_object_format: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobRunnerInfo {
    /// The job's timeout in seconds.
    pub timeout: u64,
    /// The session GitLab knows for this job: `null` until a runner offers one.
    pub runner_session_url: Option<String>,
}

/// A CI/CD variable: `public` ones are predefined, `masked` ones must never
/// show in the log (JOB-5), a `file` one's value goes to a file, a `raw` one is
/// not expanded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub public: bool,
    pub masked: bool,
    pub file: bool,
    pub raw: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub script: Vec<String>,
    pub timeout: u64,
    pub when: String,
    pub allow_failure: bool,
}

/// `image:`. GitLab sends `null` for what the job does not set.
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub name: String,
    pub entrypoint: Option<Vec<String>>,
    pub ports: Vec<Port>,
    pub pull_policy: Option<Vec<String>>,
    pub executor_opts: serde_json::Value,
}

/// An entry of `services:`; `alias` is `null` when the job gives none.
#[derive(Clone, Debug, Serialize)]
pub struct Service {
    pub name: String,
    pub alias: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub ports: Vec<Port>,
    pub variables: Vec<Variable>,
    pub pull_policy: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Port {
    pub number: u16,
    pub protocol: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Credentials {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobFeatures {
    pub trace_sections: bool,
    pub failure_reasons: Vec<String>,
}
