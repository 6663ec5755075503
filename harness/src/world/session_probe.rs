//! Whether a job's session is left after the job (LC-7), observed over sockets
//! as it would be for a third party's runner: the session URL GitLab was given
//! must answer 404 (RT-1) once its job has ended.

use http::StatusCode;
use session_server::net::Net;

use super::gitlab::SessionInfo;
use super::ws::{self, Trust};

/// How long one probe may take before its answer counts as unknown.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a session URL said after its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// 404: the session is gone.
    Gone,
    /// Any other status: the session is still there.
    Answers(u16),
    /// No HTTP answer (runner down, partitioned, address unreachable).
    Unknown(String),
}

/// Asks `<session url>/exec`, with the session's own token and no upgrade:
/// a live session answers (405 here, EX-2), a removed one 404 (RT-1). The
/// certificate is not judged here (a TLS-terminating proxy may stand in front).
pub async fn probe<N: Net>(net: &N, session: &SessionInfo) -> Probe {
    match tokio::time::timeout(PROBE_TIMEOUT, ask(net, session)).await {
        Ok(Ok(StatusCode::NOT_FOUND)) => Probe::Gone,
        Ok(Ok(status)) => Probe::Answers(status.as_u16()),
        Ok(Err(why)) => Probe::Unknown(why),
        Err(_) => Probe::Unknown(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn ask<N: Net>(net: &N, session: &SessionInfo) -> Result<StatusCode, String> {
    let rest = session
        .url
        .strip_prefix("https://")
        .ok_or_else(|| format!("not an https URL: {}", session.url))?;
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    let headers = [("authorization", session.authorization.clone())];
    let exec = format!("/{path}/exec");
    let (status, _) = ws::http_get(net, address, Some(Trust::Anything), &exec, &headers).await?;
    StatusCode::from_u16(status).map_err(|e| format!("bad status: {e}"))
}
