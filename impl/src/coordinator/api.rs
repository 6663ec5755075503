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
}

/// JOB-2: where the session lives and how to get in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub url: String,
    pub certificate: String,
    pub authorization: String,
}

/// The job GitLab hands out (201), with the fields this runner uses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobResponse {
    pub id: u64,
    pub token: String,
    #[serde(default)]
    pub job_info: JobInfo,
    #[serde(default)]
    pub runner_info: JobRunnerInfo,
    #[serde(default)]
    pub variables: Vec<Variable>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub image: Option<Image>,
    #[serde(default)]
    pub services: Vec<Image>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub project_id: u64,
    #[serde(default)]
    pub project_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct JobRunnerInfo {
    /// The job's timeout in seconds; its deadline counts from when the runner takes it.
    #[serde(default)]
    pub timeout: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Variable {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub masked: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Step {
    pub name: String,
    #[serde(default)]
    pub script: Vec<String>,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub when: String,
}

/// `image:` or an entry of `services:`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Image {
    pub name: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub ports: Vec<Port>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Port {
    pub number: u16,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
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
