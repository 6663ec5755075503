//! Git over HTTP, as GitLab answers a job that clones its project: the job's
//! token as the password of `gitlab-ci-token` (what `git_info.repo_url`
//! carries), accepted only while the job runs; then the job's [`Repository`].
//!
//! The harness's jobs carry `GIT_STRATEGY=none`, so a runner that honours it
//! never comes here; one that clones anyway gets the commit its job names.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use super::payload::{self, job_token};
use super::repository::{Answer, Repository};
use super::{reply, Gitlab, JobStatus};

impl Gitlab {
    /// `GET /<namespace>/<project>.git/<rest>` (`rest` without its query string).
    pub fn git(&self, path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let Some((project, rest)) = path.trim_start_matches('/').split_once(".git/") else {
            return reply(StatusCode::NOT_FOUND, b"not a repository path".to_vec());
        };
        let Some(password) = basic_password(headers) else {
            // git sends the credentials of the URL once asked for them.
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"GitLab\"")
                .body(Full::new(Bytes::from_static(
                    b"HTTP Basic: Access denied\n",
                )))
                .expect("valid response");
        };
        let Some(repository) = self.repository_for(project, &password) else {
            // 403, not 401: git would prompt for other credentials after a 401.
            return reply(
                StatusCode::FORBIDDEN,
                format!(
                    "{project}.git: the token is no running job's of this project \
                     (a job token clones only while its job runs)\n"
                )
                .into_bytes(),
            );
        };
        match repository.serve(rest) {
            Answer::Found(content_type, body) => Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body)))
                .expect("valid response"),
            Answer::NotFound(why) => reply(StatusCode::NOT_FOUND, format!("{why}\n").into_bytes()),
        }
    }

    /// The repository of the running job whose token this is, if it is `project`'s.
    fn repository_for(&self, project: &str, token: &str) -> Option<Repository> {
        let state = self.state.lock().expect("gitlab lock");
        let job = state
            .jobs
            .values()
            .find(|j| j.status == JobStatus::Running && job_token(j.def.id) == token)?;
        (payload::project_path(&job.def) == project).then(|| payload::repository(&job.def))
    }
}

/// The password of an `Authorization: Basic` header.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (_, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(password.to_string())
}
