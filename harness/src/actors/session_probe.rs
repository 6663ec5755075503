//! Whether a job's session is left after the job (LC-7), observed over sockets
//! as it would be for a third party's runner: the session URL GitLab was given
//! must answer 404 (RT-1) once its job has ended.

use session_server::net::Net;

use super::gitlab::SessionInfo;
use super::plain;
use super::ws::Trust;
use crate::scenario::Shape;

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
    let url = format!("{}/exec", session.url);
    let headers = [("authorization", session.authorization.clone())];
    let asked = plain::send(net, &url, Trust::Anything, Shape::Get, &headers);
    match tokio::time::timeout(PROBE_TIMEOUT, asked).await {
        Ok(Ok((404, _))) => Probe::Gone,
        Ok(Ok((status, _))) => Probe::Answers(status),
        Ok(Err(why)) => Probe::Unknown(why),
        Err(_) => Probe::Unknown(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}
