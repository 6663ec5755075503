//! Whether a job's session is left after the job (LC-7), observed over sockets
//! as it would be for a third party's runner: the session URL GitLab was given
//! must answer 404 (RT-1) once its job has ended.

use std::time::Duration;

use session_server::net::Net;

use super::gitlab::SessionInfo;
use super::plain;
use super::ws::Trust;
use crate::scenario::Shape;

/// How long one probe may take before its answer counts as unknown, at
/// least: a world whose tick is coarse gives it [`HOPS`] ticks.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The hops of a probe, a tick each in a simulated world: TCP's handshake,
/// TLS's two flights, the request and its answer, and a few to spare.
pub const HOPS: u32 = 10;

/// How long a probe may take in a world of `tick`.
pub fn timeout(tick: Duration) -> Duration {
    PROBE_TIMEOUT.max(tick * HOPS)
}

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
/// No answer within `patience` is an unknown one.
pub async fn probe<N: Net>(net: &N, session: &SessionInfo, patience: Duration) -> Probe {
    let url = format!("{}/exec", session.url);
    let headers = [("authorization", session.authorization.clone())];
    let asked = plain::send(net, &url, Trust::Anything, Shape::Get, &headers);
    match tokio::time::timeout(patience, asked).await {
        Ok(Ok((404, _))) => Probe::Gone,
        Ok(Ok((status, _))) => Probe::Answers(status),
        Ok(Err(why)) => Probe::Unknown(why),
        Err(_) => Probe::Unknown(format!("no answer within {patience:?}")),
    }
}
