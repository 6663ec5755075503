//! The simulated GitLab: the coordinator API that runners poll (JOB-1..3), and
//! the state that Rails authorizes terminals from (AU-1/2).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use session_server::coordinator::api::{
    JobRequest, JobResponse, JobRunnerInfo, SessionInfo, Step, UpdateJob, Variable,
};
use tokio::sync::Notify;

use crate::trace::{Recorder, What};

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

/// A job as defined by the scenario.
#[derive(Clone, Debug)]
pub struct JobDef {
    pub id: u64,
    pub owner: String,
    pub project: String,
    pub script: Vec<String>,
    pub timeout: Duration,
    pub variables: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    /// The runner's final state: `success` or `failed`.
    Done(String),
}

struct Job {
    def: JobDef,
    status: JobStatus,
    session: Option<SessionInfo>,
    canceled: bool,
    trace: Vec<u8>,
    /// Bytes of the log after its last newline, not yet recorded as a line.
    partial: usize,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<u64, Job>,
    queue: VecDeque<u64>,
    users: BTreeMap<String, Role>,
    archived: BTreeMap<String, bool>,
}

/// Shared by the coordinator, Rails and Workhorse, and by the scenario runner.
#[derive(Clone)]
pub struct Gitlab {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    recorder: Recorder,
    pub runner_token: String,
    /// WH-4: Workhorse ends sessions after this; `None`: no limit.
    pub max_session_time: Option<Duration>,
}

/// What Rails hands Workhorse for a terminal (WH-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalSpec {
    pub subprotocols: Vec<String>,
    pub url: String,
    pub authorization: String,
    pub ca_pem: String,
    pub max_session_time: Option<Duration>,
}

/// Rails' refusal: a status and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub reason: &'static str,
}

impl Gitlab {
    pub fn new(recorder: Recorder, runner_token: &str, max_session_time: Option<Duration>) -> Self {
        Gitlab {
            state: Arc::default(),
            changed: Arc::default(),
            recorder,
            runner_token: runner_token.to_string(),
            max_session_time,
        }
    }

    pub fn add_user(&self, name: &str, role: Role) {
        self.state
            .lock()
            .expect("gitlab lock")
            .users
            .insert(name.to_string(), role);
    }

    pub fn set_archived(&self, project: &str, archived: bool) {
        self.state
            .lock()
            .expect("gitlab lock")
            .archived
            .insert(project.to_string(), archived);
    }

    /// Queues a job for the runners.
    pub fn add_job(&self, def: JobDef) {
        let mut state = self.state.lock().expect("gitlab lock");
        state.queue.push_back(def.id);
        let job = Job {
            def,
            status: JobStatus::Pending,
            session: None,
            canceled: false,
            trace: Vec::new(),
            partial: 0,
        };
        state.jobs.insert(job.def.id, job);
    }

    /// Adds a variable to a queued job's payload.
    pub fn add_variable(&self, id: u64, key: &str, value: &str) {
        if let Some(job) = self.state.lock().expect("gitlab lock").jobs.get_mut(&id) {
            job.def.variables.push((key.to_string(), value.to_string()));
        }
    }

    /// The job is cancelled; the runner learns it from its next update (LC-4).
    pub fn cancel(&self, id: u64) {
        if let Some(job) = self.state.lock().expect("gitlab lock").jobs.get_mut(&id) {
            job.canceled = true;
        }
    }

    pub fn session(&self, id: u64) -> Option<SessionInfo> {
        self.state
            .lock()
            .expect("gitlab lock")
            .jobs
            .get(&id)?
            .session
            .clone()
    }

    pub fn status(&self, id: u64) -> Option<JobStatus> {
        Some(
            self.state
                .lock()
                .expect("gitlab lock")
                .jobs
                .get(&id)?
                .status
                .clone(),
        )
    }

    /// True once every job has a final state.
    pub fn all_done(&self) -> bool {
        self.state
            .lock()
            .expect("gitlab lock")
            .jobs
            .values()
            .all(|j| matches!(j.status, JobStatus::Done(_)))
    }

    /// Waits until job `id` runs with a session; `None` if it ended without one.
    pub async fn wait_session(&self, id: u64) -> Option<SessionInfo> {
        loop {
            let notified = self.changed.notified();
            {
                let state = self.state.lock().expect("gitlab lock");
                let job = state.jobs.get(&id)?;
                match (&job.status, &job.session) {
                    (JobStatus::Running, Some(s)) => return Some(s.clone()),
                    (JobStatus::Done(_), _) => return job.session.clone(),
                    _ => {}
                }
            }
            notified.await;
        }
    }

    /// Rails: may `user` open job `id`'s terminal? (AU-1, AU-2)
    pub fn authorize(&self, user: Option<&str>, id: u64) -> Result<TerminalSpec, Denied> {
        let state = self.state.lock().expect("gitlab lock");
        let Some(user) = user else {
            return Err(Denied {
                status: 401,
                reason: "not signed in",
            });
        };
        let Some(job) = state.jobs.get(&id) else {
            return Err(Denied {
                status: 404,
                reason: "no such job",
            });
        };
        if state
            .archived
            .get(&job.def.project)
            .copied()
            .unwrap_or(false)
        {
            return Err(Denied {
                status: 403,
                reason: "the project is archived",
            });
        }
        if job.def.owner != user {
            return Err(Denied {
                status: 403,
                reason: "only the user who started the job may open its terminal",
            });
        }
        if state.users.get(user).copied().unwrap_or(Role::Guest) < Role::Developer {
            return Err(Denied {
                status: 403,
                reason: "opening a terminal needs the Developer role",
            });
        }
        match (&job.status, &job.session) {
            (JobStatus::Running, Some(session)) => Ok(TerminalSpec {
                subprotocols: vec![
                    "terminal.gitlab.com".into(),
                    "base64.terminal.gitlab.com".into(),
                ],
                url: session.url.clone(),
                authorization: session.authorization.clone(),
                ca_pem: session.certificate.clone(),
                max_session_time: self.max_session_time,
            }),
            _ => Err(Denied {
                status: 404,
                reason: "the job has no terminal (not running, or no session)",
            }),
        }
    }

    /// The runner API (`/api/v4/...`). `peer` names the runner that called.
    pub async fn api(&self, request: Request<Incoming>, peer: &str) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path();
        let response = if path == "/api/v4/jobs/request" && parts.method == http::Method::POST {
            self.request_job(&body, peer)
        } else if let Some(id) = path
            .strip_prefix("/api/v4/jobs/")
            .and_then(|r| r.strip_suffix("/trace"))
        {
            let range = parts
                .headers
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            self.patch_trace(id, range, &body)
        } else if let Some(id) = path.strip_prefix("/api/v4/jobs/") {
            self.update_job(id, &body)
        } else {
            reply(StatusCode::NOT_FOUND, Vec::new())
        };
        self.changed.notify_waiters();
        response
    }

    fn request_job(&self, body: &[u8], peer: &str) -> Response<Full<Bytes>> {
        let Ok(request) = serde_json::from_slice::<JobRequest>(body) else {
            return reply(StatusCode::BAD_REQUEST, b"invalid job request".to_vec());
        };
        if request.token != self.runner_token {
            return reply(StatusCode::FORBIDDEN, Vec::new());
        }
        let mut state = self.state.lock().expect("gitlab lock");
        let Some(id) = state.queue.pop_front() else {
            return reply(StatusCode::NO_CONTENT, Vec::new());
        };
        let job = state.jobs.get_mut(&id).expect("queued jobs exist");
        job.status = JobStatus::Running;
        job.session = request.session.clone();
        self.recorder.record(
            "gitlab",
            Some("JOB-1"),
            What::JobTaken {
                job: id,
                runner: peer.to_string(),
                session: request.session.is_some(),
                terminal: request.info.features.terminal,
            },
        );
        reply(
            StatusCode::CREATED,
            serde_json::to_vec(&job_response(&job.def)).expect("serializable"),
        )
    }

    fn patch_trace(&self, id: &str, range: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let mut state = self.state.lock().expect("gitlab lock");
        let Some(job) = id.parse().ok().and_then(|id: u64| state.jobs.get_mut(&id)) else {
            return reply(StatusCode::NOT_FOUND, Vec::new());
        };
        if job.status != JobStatus::Running {
            return reply(StatusCode::FORBIDDEN, Vec::new());
        }
        let start: usize = range
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        if start != job.trace.len() {
            let mut r = reply(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
            r.headers_mut().insert(
                "range",
                format!("0-{}", job.trace.len()).parse().expect("ascii"),
            );
            return r;
        }
        job.trace.extend_from_slice(body);
        self.record_lines(job, false);
        let status = if job.canceled { "canceled" } else { "running" };
        let mut r = reply(StatusCode::ACCEPTED, Vec::new());
        r.headers_mut()
            .insert("job-status", status.parse().expect("ascii"));
        r
    }

    fn update_job(&self, id: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(update) = serde_json::from_slice::<UpdateJob>(body) else {
            return reply(StatusCode::BAD_REQUEST, Vec::new());
        };
        let mut state = self.state.lock().expect("gitlab lock");
        let Some(job) = id.parse().ok().and_then(|id: u64| state.jobs.get_mut(&id)) else {
            return reply(StatusCode::NOT_FOUND, Vec::new());
        };
        if job.status != JobStatus::Running {
            return reply(StatusCode::FORBIDDEN, Vec::new());
        }
        if update.state != "running" {
            self.record_lines(job, true);
            job.status = JobStatus::Done(update.state.clone());
            self.recorder.record(
                "gitlab",
                Some("JOB-3"),
                What::JobState {
                    job: job.def.id,
                    state: update.state.clone(),
                    failure_reason: update.failure_reason.clone(),
                    exit_code: update.exit_code,
                },
            );
        }
        let mut r = reply(StatusCode::OK, Vec::new());
        let status = if job.canceled { "canceled" } else { "running" };
        r.headers_mut()
            .insert("job-status", status.parse().expect("ascii"));
        r
    }

    /// Records each complete new line of the job log (and the rest at the end).
    fn record_lines(&self, job: &mut Job, all: bool) {
        let pending = &job.trace[job.partial..];
        let complete = if all {
            pending.len()
        } else {
            pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        for line in String::from_utf8_lossy(&pending[..complete]).lines() {
            self.recorder.record(
                "gitlab",
                log_spec(line),
                What::JobLog {
                    job: job.def.id,
                    line: line.to_string(),
                },
            );
        }
        job.partial += complete;
    }
}

/// The SPEC rule a runner log line shows.
fn log_spec(line: &str) -> Option<&'static str> {
    if line.starts_with("Terminal is connected, will time out in") {
        Some("LC-1")
    } else if line.starts_with("Terminal disconnected") {
        Some("LC-2")
    } else if line.starts_with("terminal session timed out") {
        Some("LC-3")
    } else {
        None
    }
}

fn job_response(def: &JobDef) -> JobResponse {
    JobResponse {
        id: def.id,
        token: format!("job-token-{}", def.id),
        runner_info: JobRunnerInfo {
            timeout: def.timeout.as_secs(),
        },
        steps: vec![Step {
            name: "script".into(),
            script: def.script.clone(),
            timeout: def.timeout.as_secs(),
            when: "on_success".into(),
            allow_failure: false,
        }],
        variables: def
            .variables
            .iter()
            .map(|(k, v)| Variable {
                key: k.clone(),
                value: v.clone(),
                public: true,
                ..Variable::default()
            })
            .collect(),
        ..JobResponse::default()
    }
}

pub(crate) fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}
