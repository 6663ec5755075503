//! The runner API as GitLab answers it (JOB-1..4):
//! - `POST /api/v4/jobs/request`: 201 with the full job ([`payload`]), 204 when
//!   no job waits, 403 for an unknown runner token;
//! - `PUT /api/v4/jobs/:id`: 200 with `Job-Status`, the job's real status
//!   after the update; 403 (with `Job-Status`) once the job is no longer running;
//! - `PATCH /api/v4/jobs/:id/trace` with `Content-Range: <from>-<to>`: 202 with
//!   `Range: 0-<size>`, `Job-Status` and `X-GitLab-Trace-Update-Interval`; 416
//!   with `Range` when the chunk does not continue the trace; `Job-Status:
//!   canceled` once the job was cancelled.
//!
//! Requests are decoded with the harness's own tolerant types ([`wire`]).

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::payload::{self, Server};
use super::wire::{JobRequest, UpdateJob};
use super::{reply, Gitlab, Job, JobStatus};
use crate::actors::exchange::body_or_empty;
use crate::trace::What;

/// `X-GitLab-Trace-Update-Interval`: GitLab asks for an update every 3 s while
/// someone watches the job's page, as a user who opens its terminal does.
pub const TRACE_UPDATE_INTERVAL_SECONDS: u64 = 3;

impl Gitlab {
    /// The runner API (`/api/v4/...`). `peer` names the runner that called.
    pub async fn api(&self, request: Request<Incoming>, peer: &str) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body_or_empty(body).await;
        let response = self.answer(&parts.method, parts.uri.path(), &parts.headers, &body, peer);
        self.changed.notify_waiters();
        response
    }

    /// One API call, already read (also what fixture tests call).
    pub fn answer(
        &self,
        method: &http::Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        peer: &str,
    ) -> Response<Full<Bytes>> {
        let job_path = path.strip_prefix("/api/v4/jobs/");
        match (method.as_str(), job_path) {
            ("POST", Some("request")) => self.request_job(headers, body, peer),
            ("PATCH", Some(rest)) if rest.ends_with("/trace") => {
                self.patch_trace(rest.trim_end_matches("/trace"), headers, body)
            }
            ("PUT", Some(id)) => self.update_job(id, body),
            _ => reply(
                StatusCode::NOT_FOUND,
                format!("{method} {path}: not part of the runner API").into_bytes(),
            ),
        }
    }

    fn request_job(&self, headers: &HeaderMap, body: &[u8], peer: &str) -> Response<Full<Bytes>> {
        let request = match serde_json::from_slice::<JobRequest>(body) {
            Ok(request) => request,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("invalid job request: {e}").into_bytes(),
                )
            }
        };
        if request.token != self.runner_token {
            return reply(StatusCode::FORBIDDEN, b"403 Forbidden".to_vec());
        }
        let server = Server::from_host_header(
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("gitlab"),
        );
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
        let session_url = request.session.as_ref().map(|s| s.url.as_str());
        let response = payload::job_response(&job.def, &server, session_url);
        let mut r = reply(
            StatusCode::CREATED,
            serde_json::to_vec(&response).expect("serializable"),
        );
        r.headers_mut()
            .insert("content-type", "application/json".parse().expect("ascii"));
        r
    }

    fn patch_trace(&self, id: &str, headers: &HeaderMap, body: &[u8]) -> Response<Full<Bytes>> {
        let mut state = self.state.lock().expect("gitlab lock");
        let job = match running_job(&mut state.jobs, id, job_token_header(headers)) {
            Ok(job) => job,
            Err(refusal) => return refusal,
        };
        let Some(from) = headers
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(range_start)
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                b"Content-Range: <from>-<to> is required".to_vec(),
            );
        };
        // GitLab checks where a chunk starts, not where it claims to end.
        if from != job.trace.len() {
            let mut r = reply(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
            r.headers_mut().insert(
                "range",
                format!("0-{}", job.trace.len()).parse().expect("ascii"),
            );
            return r;
        }
        job.trace.extend_from_slice(body);
        self.record_lines(job, false);
        let mut r = reply(StatusCode::ACCEPTED, Vec::new());
        let h = r.headers_mut();
        h.insert(
            "range",
            format!("0-{}", job.trace.len()).parse().expect("ascii"),
        );
        h.insert(
            "job-status",
            job.status.header(job.canceled).parse().expect("ascii"),
        );
        h.insert(
            "x-gitlab-trace-update-interval",
            TRACE_UPDATE_INTERVAL_SECONDS.into(),
        );
        r
    }

    fn update_job(&self, id: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let update = match serde_json::from_slice::<UpdateJob>(body) {
            Ok(update) => update,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("invalid job update: {e}").into_bytes(),
                )
            }
        };
        let mut state = self.state.lock().expect("gitlab lock");
        let job = match running_job(&mut state.jobs, id, Some(update.token.as_str())) {
            Ok(job) => job,
            Err(refusal) => return refusal,
        };
        if matches!(update.state.as_str(), "success" | "failed") {
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
        r.headers_mut().insert(
            "job-status",
            job.status.header(job.canceled).parse().expect("ascii"),
        );
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

fn job_token_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("job-token").and_then(|v| v.to_str().ok())
}

/// The job `id` if it runs and `token` is its token; else GitLab's refusal:
/// 404 for no such job, 403 for a wrong token or a job no longer running
/// (with its `Job-Status`, as GitLab answers).
#[allow(clippy::result_large_err)] // the refusal is the answer, made once per call
fn running_job<'a>(
    jobs: &'a mut std::collections::BTreeMap<u64, Job>,
    id: &str,
    token: Option<&str>,
) -> Result<&'a mut Job, Response<Full<Bytes>>> {
    let Some(job) = id.parse().ok().and_then(|id: u64| jobs.get_mut(&id)) else {
        return Err(reply(StatusCode::NOT_FOUND, b"404 Job Not Found".to_vec()));
    };
    if token != Some(payload::job_token(job.def.id).as_str()) {
        return Err(reply(StatusCode::FORBIDDEN, b"403 Forbidden".to_vec()));
    }
    if job.status != JobStatus::Running {
        let mut r = reply(
            StatusCode::FORBIDDEN,
            b"403 Forbidden - Job is not processing on runner".to_vec(),
        );
        r.headers_mut().insert(
            "job-status",
            job.status.header(job.canceled).parse().expect("ascii"),
        );
        return Err(r);
    }
    Ok(job)
}

/// `<from>` of `<from>-<to>` (inclusive byte offsets).
fn range_start(value: &str) -> Option<usize> {
    let (from, to) = value.trim().split_once('-')?;
    to.trim().parse::<usize>().ok()?;
    from.trim().parse().ok()
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
