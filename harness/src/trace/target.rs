//! What a browser asks for (an open or a fetch): typed, so that judging knows
//! a request straight at the runner from one through GitLab without reading
//! the sentence the snapshot shows.

use std::fmt;

use serde::Serialize;

/// A request's target: job `job`'s `endpoint`, and a note on how it was asked
/// (a request shape, or the browser that made it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub job: u64,
    pub endpoint: Endpoint,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "endpoint", rename_all = "snake_case")]
pub enum Endpoint {
    /// GitLab's `/-/jobs/<id>/terminal.ws` (WH-1).
    Terminal,
    /// GitLab's `/-/jobs/<id>/proxy.ws` to a job's service (WI-3).
    ServiceWebSocket { proxy: String },
    /// GitLab's `/-/jobs/<id>/proxy` to a job's service, plain HTTP (WI-4).
    ServiceHttp { proxy: String },
    /// The runner's session URL, straight, bypassing GitLab (EX-1).
    Session,
}

impl Target {
    pub fn new(job: u64, endpoint: Endpoint) -> Target {
        Target {
            job,
            endpoint,
            note: None,
        }
    }

    pub fn noting(mut self, note: impl Into<String>) -> Target {
        self.note = Some(note.into());
        self
    }

    /// The job, when the request goes straight at the runner's session.
    pub fn direct_job(&self) -> Option<u64> {
        (self.endpoint == Endpoint::Session).then_some(self.job)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = self.job;
        match &self.endpoint {
            Endpoint::Terminal => write!(f, "GitLab /-/jobs/{job}/terminal.ws")?,
            Endpoint::ServiceWebSocket { proxy } => {
                write!(f, "GitLab /-/jobs/{job}/proxy.ws to {proxy}")?
            }
            Endpoint::ServiceHttp { proxy } => write!(f, "GitLab /-/jobs/{job}/proxy to {proxy}")?,
            Endpoint::Session => write!(f, "the runner's session of job {job} directly")?,
        }
        match &self.note {
            Some(note) => write!(f, " ({note})"),
            None => Ok(()),
        }
    }
}
