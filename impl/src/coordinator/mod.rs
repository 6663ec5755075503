//! The coordinator client: GitLab's runner API over HTTP/1.1 (JOB-1..3).
//!
//! One connection per call: calls are seconds apart, and a fresh connection
//! survives coordinator restarts and network faults without any pool logic.

pub mod api;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::net::Net;
use api::{JobRequest, JobResponse, UpdateJob};

/// No call may take longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a job request got.
#[derive(Debug)]
pub enum Handout {
    /// No job for now (204).
    NoJob,
    Job(Box<JobResponse>),
    /// JOB-4: a job this runner cannot read, whose id and token could be
    /// recovered: it must be failed, not dropped.
    Unreadable {
        id: u64,
        token: String,
        why: String,
    },
    /// A job this runner cannot read, without an id and token to fail it with.
    Lost {
        why: String,
    },
}

/// What the coordinator said about a running job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// The job was cancelled (or is no longer running) on GitLab's side.
    pub canceled: bool,
    /// `X-GitLab-Trace-Update-Interval`: how often GitLab wants updates.
    pub update_interval: Option<Duration>,
    /// After a 416, the trace offset GitLab has.
    pub trace_offset: Option<usize>,
}

/// A GitLab coordinator, e.g. `http://gitlab:80`.
pub struct Coordinator<N: Net> {
    net: N,
    /// `host:port` to dial.
    address: String,
    host: String,
    prefix: String,
    tls: Option<TlsConnector>,
}

impl<N: Net> Coordinator<N> {
    /// `ca_pem`: for https, the roots to trust (`tls-ca-file`); else Mozilla's roots.
    pub fn new(net: N, url: &str, ca_pem: Option<&str>) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("coordinator url {url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("coordinator url {url:?}: use http:// or https://"),
        };
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("coordinator url {url:?} has no host"))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let config = match ca_pem {
                Some(pem) => crate::tls::client_config_trusting(pem)?,
                None => {
                    let roots = rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    };
                    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth()
                }
            };
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Coordinator {
            net,
            address: format!("{host}:{port}"),
            host: uri.authority().map(|a| a.to_string()).unwrap_or(host),
            prefix: uri.path().trim_end_matches('/').to_string(),
            tls,
        })
    }

    /// JOB-1: asks for a job.
    pub async fn request_job(&self, request: &JobRequest) -> anyhow::Result<Handout> {
        let body = serde_json::to_vec(request)?;
        let (status, _, body) = self
            .call(Method::POST, "/api/v4/jobs/request", &[], body.into())
            .await?;
        match status {
            StatusCode::CREATED => Ok(read_job(&body)),
            StatusCode::NO_CONTENT => Ok(Handout::NoJob),
            StatusCode::FORBIDDEN => {
                bail!("the coordinator refused the runner token (403): check [[runners]] token")
            }
            other => bail!(
                "job request answered {other}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// JOB-3: the job's state (`running` as a keep-alive, then `success` or `failed`).
    pub async fn update_job(&self, id: u64, update: &UpdateJob) -> anyhow::Result<Remote> {
        let body = serde_json::to_vec(update)?;
        let (status, headers, _) = self
            .call(Method::PUT, &format!("/api/v4/jobs/{id}"), &[], body.into())
            .await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => Ok(remote(&headers, false)),
            // The job is not running any more on GitLab's side.
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(Remote {
                canceled: true,
                ..remote(&headers, false)
            }),
            other => bail!("job update answered {other}"),
        }
    }

    /// JOB-3: appends `bytes` at `offset` of the job log.
    pub async fn patch_trace(
        &self,
        id: u64,
        job_token: &str,
        offset: usize,
        bytes: Bytes,
    ) -> anyhow::Result<Remote> {
        let end = (offset + bytes.len()).saturating_sub(1);
        let headers = [
            ("job-token", job_token.to_string()),
            ("content-range", format!("{offset}-{end}")),
        ];
        let path = format!("/api/v4/jobs/{id}/trace");
        let (status, headers, _) = self.call(Method::PATCH, &path, &headers, bytes).await?;
        match status {
            StatusCode::ACCEPTED | StatusCode::OK => Ok(remote(&headers, false)),
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let have = headers
                    .get(header::RANGE)
                    .and_then(|r| r.to_str().ok())
                    .and_then(|r| r.rsplit('-').next())
                    .and_then(|n| n.parse().ok());
                Ok(Remote {
                    trace_offset: Some(have.unwrap_or(0)),
                    ..remote(&headers, false)
                })
            }
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(Remote {
                canceled: true,
                ..remote(&headers, false)
            }),
            other => bail!("trace update answered {other}"),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.host)
            .header(
                header::USER_AGENT,
                concat!("session-server/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(body))?;
        let call = async {
            let stream = self.net.connect(&self.address).await?;
            match &self.tls {
                None => send(stream, request).await,
                Some(tls) => {
                    let name = ServerName::try_from(host_only(&self.address).to_string())?;
                    send(tls.connect(name, stream).await?, request).await
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| {
                anyhow!(
                    "the coordinator at {} did not answer within {CALL_TIMEOUT:?}",
                    self.address
                )
            })?
            .with_context(|| format!("calling the coordinator at {}", self.address))
    }
}

/// JOB-4: reads a handed-out job as Go's decoder would; when that fails, finds
/// at least the id and token that the job can be failed with.
pub fn read_job(body: &[u8]) -> Handout {
    let error = match serde_json::from_slice::<JobResponse>(body) {
        Ok(job) if job.id > 0 && !job.token.is_empty() => return Handout::Job(Box::new(job)),
        Ok(job) => format!(
            "job id {} and token {:?} cannot name a job",
            job.id, job.token
        ),
        Err(e) => e.to_string(),
    };
    let recovered = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|job| {
            let id = job.get("id")?.as_u64().filter(|id| *id > 0)?;
            let token = job.get("token")?.as_str().filter(|t| !t.is_empty())?;
            Some((id, token.to_string()))
        });
    match recovered {
        Some((id, token)) => Handout::Unreadable {
            id,
            token,
            why: format!(
                "its JSON does not match GitLab's job format: {}",
                culprit(body).unwrap_or(error)
            ),
        },
        None => Handout::Lost {
            why: format!(
                "the coordinator answered 201 with a body that is not a job ({error}; {} bytes), \
                 and without the job's id and token the runner cannot fail it: it stays \
                 running on GitLab until its timeout. Check that nothing between the runner \
                 and GitLab rewrites API answers",
                body.len()
            ),
        },
    }
}

/// The first top-level field that the job format refuses, and why: serde's
/// own error gives only a line and a column of a body nobody sees.
fn culprit(body: &[u8]) -> Option<String> {
    let serde_json::Value::Object(fields) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    fields
        .into_iter()
        .filter(|(key, _)| key != "id" && key != "token")
        .find_map(|(key, value)| {
            let alone = serde_json::json!({ "id": 1, "token": "t", key.as_str(): value });
            serde_json::from_value::<JobResponse>(alone)
                .err()
                .map(|e| format!("field `{key}`: {e}"))
        })
}

async fn send<S>(
    io: S,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    driver.abort();
    Ok((status, parts.headers, body))
}

fn host_only(address: &str) -> &str {
    crate::config::split_host_port(address)
        .map(|(h, _)| h)
        .unwrap_or(address)
}

fn remote(headers: &http::HeaderMap, canceled: bool) -> Remote {
    let status = headers
        .get("job-status")
        .and_then(|s| s.to_str().ok())
        .unwrap_or("");
    Remote {
        canceled: canceled || matches!(status, "canceled" | "canceling" | "failed"),
        update_interval: headers
            .get("x-gitlab-trace-update-interval")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        trace_offset: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_job_with_id_and_token_is_to_be_failed() {
        match read_job(br#"{"id": 3, "token": "t", "variables": {"not": "a list"}}"#) {
            Handout::Unreadable { id, token, why } => {
                assert_eq!((id, token.as_str()), (3, "t"));
                assert!(
                    why.contains("field `variables`: invalid type: map"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_without_id_and_token_is_lost_and_says_what_that_means() {
        for body in [
            &b"<html>502</html>"[..],
            br#"{"id": 3}"#,
            br#"{"id": 3, "token": ""}"#,
        ] {
            match read_job(body) {
                Handout::Lost { why } => {
                    assert!(why.contains("stays running on GitLab"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
