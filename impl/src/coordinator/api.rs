//! The GitLab runner API's messages, as GitLab Runner sends and reads them (JOB-1..3).

use serde::{Deserialize, Serialize};

/// `POST /api/v4/jobs/request`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobRequest {
    pub token: String,
    pub info: RunnerInfo,
    /// JOB-1: present only when the session server is enabled (CFG-1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session: Option<SessionInfo>,
    #[serde(default)]
    pub last_update: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerInfo {
    pub name: String,
    pub version: String,
    pub executor: String,
    #[serde(default)]
    pub shell: String,
    pub features: Features,
}

/// The features this runner announces; GitLab offers the terminal only with both.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Features {
    pub session: bool,
    pub terminal: bool,
    #[serde(default)]
    pub variables: bool,
    #[serde(default)]
    pub cancelable: bool,
    #[serde(default)]
    pub trace_reset: bool,
    #[serde(default)]
    pub trace_checksum: bool,
    /// JOB-5: masked variables are replaced with `[MASKED]` in the job log.
    #[serde(default)]
    pub masking: bool,
    /// The final update carries the script's `exit_code`.
    #[serde(default)]
    pub return_exit_code: bool,
}

/// JOB-2: where the session lives and how to get in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub url: String,
    pub certificate: String,
    pub authorization: String,
}

/// The job GitLab hands out (201): GitLab Runner's `JobResponse` (common/network.go).
///
/// GitLab sends `null` for absent optional values and adds fields over time;
/// Go's decoder takes both, and so does this: every field but `id` and `token`
/// accepts `null` or absence (as its default), and unknown fields are ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobResponse {
    pub id: u64,
    pub token: String,
    #[serde(default, deserialize_with = "nullable")]
    pub allow_git_fetch: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub job_info: JobInfo,
    #[serde(default, deserialize_with = "nullable")]
    pub git_info: GitInfo,
    #[serde(default, deserialize_with = "nullable")]
    pub runner_info: JobRunnerInfo,
    #[serde(default, deserialize_with = "nullable")]
    pub variables: Vec<Variable>,
    #[serde(default, deserialize_with = "nullable")]
    pub steps: Vec<Step>,
    /// `image:`; an empty name means none (Go's zero value).
    #[serde(default, deserialize_with = "nullable")]
    pub image: Image,
    #[serde(default, deserialize_with = "nullable")]
    pub services: Vec<Image>,
    #[serde(default, deserialize_with = "nullable")]
    pub artifacts: Vec<Artifact>,
    #[serde(default, deserialize_with = "nullable")]
    pub cache: Vec<Cache>,
    #[serde(default, deserialize_with = "nullable")]
    pub credentials: Vec<Credentials>,
    #[serde(default, deserialize_with = "nullable")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, deserialize_with = "nullable")]
    pub features: GitlabFeatures,
    #[serde(default, deserialize_with = "nullable")]
    pub hooks: Vec<Hook>,
}

/// Deserializes `null` as the type's default, as Go's decoder leaves a zero value.
/// (`#[serde(default)]` alone covers a missing field, not a `null` one.)
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobInfo {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub stage: String,
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub project_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub time_in_queue_seconds: f64,
    #[serde(default, deserialize_with = "nullable")]
    pub project_jobs_running_on_instance_runners_count: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct GitInfo {
    #[serde(default, deserialize_with = "nullable")]
    pub repo_url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub repo_object_format: String,
    #[serde(rename = "ref", default, deserialize_with = "nullable")]
    pub reference: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sha: String,
    #[serde(default, deserialize_with = "nullable")]
    pub before_sha: String,
    /// `branch` or `tag`.
    #[serde(default, deserialize_with = "nullable")]
    pub ref_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub refspecs: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub depth: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobRunnerInfo {
    /// The job's timeout in seconds; its deadline counts from when the runner takes it.
    #[serde(default, deserialize_with = "nullable")]
    pub timeout: u64,
}

/// A job variable (GitLab Runner's `JobVariable`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Variable {
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
    #[serde(default, deserialize_with = "nullable")]
    pub public: bool,
    /// JOB-5: never shown in the job log.
    #[serde(default, deserialize_with = "nullable")]
    pub masked: bool,
    /// JOB-5: the value goes to a file; the variable holds its path.
    #[serde(default, deserialize_with = "nullable")]
    pub file: bool,
    /// Not to be expanded (this runner expands no variable references).
    #[serde(default, deserialize_with = "nullable")]
    pub raw: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Step {
    /// `script`, `after_script`, `release`...
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub script: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub timeout: u64,
    /// `on_success`, `on_failure`, `always`.
    #[serde(default, deserialize_with = "nullable")]
    pub when: String,
    #[serde(default, deserialize_with = "nullable")]
    pub allow_failure: bool,
}

/// `image:` or an entry of `services:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Image {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// One or more aliases, separated by commas or spaces (GitLab Runner's `Aliases`).
    #[serde(default, deserialize_with = "nullable")]
    pub alias: String,
    #[serde(default, deserialize_with = "nullable")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<Port>,
    #[serde(default, deserialize_with = "nullable")]
    pub variables: Vec<Variable>,
    #[serde(default, deserialize_with = "nullable")]
    pub pull_policy: Vec<String>,
    /// `{docker: {platform, user}, kubernetes: {user}}`: kept as sent, unused here.
    #[serde(default, deserialize_with = "nullable")]
    pub executor_opts: serde_json::Value,
}

impl Image {
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.alias
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Port {
    #[serde(default, deserialize_with = "nullable")]
    pub number: u16,
    #[serde(default, deserialize_with = "nullable")]
    pub protocol: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Artifact {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub untracked: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub paths: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub exclude: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub when: String,
    #[serde(default, deserialize_with = "nullable")]
    pub artifact_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub artifact_format: String,
    #[serde(default, deserialize_with = "nullable")]
    pub expire_in: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Cache {
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    #[serde(default, deserialize_with = "nullable")]
    pub untracked: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub policy: String,
    #[serde(default, deserialize_with = "nullable")]
    pub paths: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub when: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fallback_keys: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Credentials {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub url: String,
    #[serde(default, deserialize_with = "nullable")]
    pub username: String,
    #[serde(default, deserialize_with = "nullable")]
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Dependency {
    #[serde(default, deserialize_with = "nullable")]
    pub id: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub token: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub artifacts_file: ArtifactsFile,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ArtifactsFile {
    #[serde(default, deserialize_with = "nullable")]
    pub filename: String,
    #[serde(default, deserialize_with = "nullable")]
    pub size: u64,
}

/// What GitLab tells the runner about itself (GitLab Runner's `GitlabFeatures`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct GitlabFeatures {
    #[serde(default, deserialize_with = "nullable")]
    pub trace_sections: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub token_mask_prefixes: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub failure_reasons: Vec<String>,
}

/// `hooks:` (`pre_get_sources_script`...).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Hook {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub script: Vec<String>,
}

/// `PUT /api/v4/jobs/:id`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UpdateJob {
    pub token: String,
    /// `running`, `success` or `failed`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
}
