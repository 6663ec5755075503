//! Workhorse's plain-HTTP route to a Web IDE terminal's services,
//! `GET /-/jobs/<id>/proxy?service=&port=&path=` (WI-4, project-defined: GitLab
//! routes only the WebSocket, `proxy.ws`). Rails authorizes it as the
//! WebSocket (WI-2); the request goes to the runner's
//! `<session>/proxy/<service>/<port>/<path>` with the session token, trusting
//! only the session certificate, and the browser gets the runner's answer.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use session_server::net::Net;

use super::exchange;
use super::gitlab::{reply, Gitlab, TerminalSpec};
use super::workhorse::{proxy_status_rule, record_authorization, user_of};
use super::ws::Trust;
use crate::scenario::ProxyTarget;
use crate::trace::{Link, Recorder, What};

/// How long the runner may take to answer a proxied request.
const RUNNER_TIMEOUT: Duration = Duration::from_secs(10);

/// WI-4: authorize, then forward the request to the runner's proxy.
pub async fn http<N: Net>(
    request: Request<Incoming>,
    net: N,
    gitlab: Gitlab,
    recorder: Recorder,
    job: u64,
) -> Response<Full<Bytes>> {
    let target = ProxyTarget::from_query(request.uri().query().unwrap_or(""));
    let user = user_of(request.headers());
    let authorized = gitlab.authorize_proxy(user.as_deref(), job, &[]);
    let service = Some(format!("{target}, HTTP"));
    record_authorization(
        &recorder,
        "WI-2",
        user.as_deref(),
        job,
        &authorized,
        service,
    );
    let spec = match authorized {
        Ok(spec) => spec,
        Err(denied) => {
            let status = StatusCode::from_u16(denied.status).unwrap_or(StatusCode::FORBIDDEN);
            return reply(status, denied.reason.as_bytes().to_vec());
        }
    };
    let note = |rule: &str, event: Link| {
        recorder.record("workhorse", Some(rule), What::RunnerLink { job, event });
    };
    let asked = tokio::time::timeout(RUNNER_TIMEOUT, get(&net, &spec, &target)).await;
    match asked {
        Ok(Ok((status, body))) => {
            let rule = if status.is_success() {
                "WI-4"
            } else {
                proxy_status_rule(status.as_u16())
            };
            note(
                rule,
                Link::ProxiedGet {
                    target: target.to_string(),
                    status: status.as_u16(),
                },
            );
            reply(status, body)
        }
        Ok(Err(why)) => {
            note("WI-4", Link::ProxyUnreachable { why });
            runner_unreachable()
        }
        Err(_) => {
            note(
                "WI-4",
                Link::ProxySilent {
                    seconds: RUNNER_TIMEOUT.as_secs(),
                },
            );
            runner_unreachable()
        }
    }
}

fn runner_unreachable() -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_GATEWAY,
        b"cannot connect to the job's service through the runner".to_vec(),
    )
}

/// `GET <session>/proxy/<target>` on the runner: its status and body.
async fn get<N: Net>(
    net: &N,
    spec: &TerminalSpec,
    target: &ProxyTarget,
) -> Result<(StatusCode, Vec<u8>), String> {
    let rest = spec
        .url
        .strip_prefix("https://")
        .ok_or_else(|| format!("not an https session URL: {}", spec.url))?;
    let (address, session) = rest.split_once('/').unwrap_or((rest, ""));
    let path = format!("/{session}/proxy/{target}");
    let headers = [("authorization", spec.authorization.clone())];
    let trust = Some(Trust::Pem(&spec.ca_pem));
    let (status, body) = exchange::get(net, address, trust, &path, &headers).await?;
    let status = StatusCode::from_u16(status).map_err(|e| format!("bad status: {e}"))?;
    Ok((status, body.to_vec()))
}
