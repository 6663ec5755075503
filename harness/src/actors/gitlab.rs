//! The harness's GitLab: the state that Rails authorizes terminals from
//! (AU-1/2), the coordinator API that runners poll (`coordinator`, JOB-1..4),
//! the job it hands out (`payload`) and the runner API's messages in GitLab's
//! own shape (`wire`), the project's repository for a job that clones
//! (`repository`, served by `git_http`), a GitLab as a scenario describes it
//! (`seed`), and Rails' side of the service proxy
//! of Web IDE terminals (`webide`, WI-2/3). The same GitLab serves simulations
//! and `conform`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod coordinator;
mod git_http;
pub mod payload;
pub mod profile;
pub mod repository;
mod seed;
mod webide;
pub mod wire;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::sync::Notify;

use crate::scenario::{Role, ServiceSpec};
use crate::trace::Recorder;
pub use seed::{of_scenario, RUNNER_TOKEN};
pub use wire::SessionInfo;

/// A job as defined by the scenario.
#[derive(Clone, Debug)]
pub struct JobDef {
    pub id: u64,
    pub owner: String,
    pub project: String,
    pub script: Vec<String>,
    pub timeout: Duration,
    pub variables: Vec<(String, String)>,
    /// `image:` of the job; `None`: the pipeline's default definition (no
    /// image, one service), see `payload`.
    pub image: Option<String>,
    /// A Web IDE terminal job (WI-1); Rails authorizes it by WI-2.
    pub webide: bool,
    /// `services:`; `None`: the pipeline's default service (see `payload`).
    pub services: Option<Vec<ServiceSpec>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    /// The runner's final state: `success` or `failed`.
    Done(String),
}

impl JobStatus {
    /// The status GitLab's `Job-Status` header gives (JOB-3): a job cancelled
    /// in GitLab is `canceled` from then on, whatever the runner reports.
    pub fn header(&self, canceled: bool) -> &str {
        match self {
            _ if canceled => "canceled",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done(state) => state,
        }
    }
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

/// A job as GitLab's pages show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JobView {
    pub id: u64,
    pub owner: String,
    pub project: String,
    /// GitLab's word for it: `pending`, `running`, `success`, `failed`, `canceled`.
    pub status: String,
    /// The runner offered a session with it (JOB-1).
    pub has_session: bool,
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

    /// A queued job runs in `image`, with no services: for a runner whose
    /// Docker Engine has that image and cannot pull (conform's `--job-image`).
    pub fn set_image(&self, id: u64, image: &str) {
        if let Some(job) = self.state.lock().expect("gitlab lock").jobs.get_mut(&id) {
            job.def.image = Some(image.to_string());
        }
    }

    /// Does what a scenario step asks of GitLab (cancel, revoke, archive);
    /// any other step is not GitLab's and is left alone.
    pub fn act(&self, action: &crate::scenario::Action) {
        use crate::scenario::Action;
        match action {
            Action::Cancel { job } => self.cancel(*job),
            Action::Revoke { user, role } => self.add_user(user, *role),
            Action::Archive { project } => self.set_archived(project, true),
            _ => {}
        }
    }

    /// The job is cancelled; the runner learns it from its next update (LC-4).
    pub fn cancel(&self, id: u64) {
        if let Some(job) = self.state.lock().expect("gitlab lock").jobs.get_mut(&id) {
            job.canceled = true;
        }
    }

    /// What `read` takes from job `id`; `None` for a job GitLab does not have.
    fn job<T>(&self, id: u64, read: impl FnOnce(&Job) -> T) -> Option<T> {
        self.state
            .lock()
            .expect("gitlab lock")
            .jobs
            .get(&id)
            .map(read)
    }

    pub fn session(&self, id: u64) -> Option<SessionInfo> {
        self.job(id, |j| j.session.clone())?
    }

    pub fn status(&self, id: u64) -> Option<JobStatus> {
        self.job(id, |j| j.status.clone())
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

    /// The sessions of the jobs that have ended, by job id.
    pub fn ended_sessions(&self) -> Vec<(u64, SessionInfo)> {
        let state = self.state.lock().expect("gitlab lock");
        state
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.status, JobStatus::Done(_)))
            .filter_map(|(id, j)| Some((*id, j.session.clone()?)))
            .collect()
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

    /// Every job, in id order, as a job list shows it.
    pub fn jobs(&self) -> Vec<JobView> {
        let state = self.state.lock().expect("gitlab lock");
        state
            .jobs
            .values()
            .map(|j| JobView {
                id: j.def.id,
                owner: j.def.owner.clone(),
                project: j.def.project.clone(),
                status: j.status.header(j.canceled).to_string(),
                has_session: j.session.is_some(),
            })
            .collect()
    }

    /// The job's log as the runner has sent it so far.
    pub fn log(&self, id: u64) -> Option<Vec<u8>> {
        self.job(id, |j| j.trace.clone())
    }

    /// The users and their roles, by name.
    pub fn users(&self) -> Vec<(String, Role)> {
        let state = self.state.lock().expect("gitlab lock");
        state.users.iter().map(|(n, r)| (n.clone(), *r)).collect()
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
        let role = state.users.get(user).copied().unwrap_or(Role::Guest);
        if job.def.webide && role < Role::Maintainer {
            return Err(Denied {
                status: 403,
                reason: "a Web IDE terminal needs the Maintainer role",
            });
        }
        if role < Role::Developer {
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
}

pub(crate) fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}
