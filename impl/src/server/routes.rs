//! RT-1/2: which session and which endpoint a request is for.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::response::{text, Body};
use super::{exec, proxy, ServerContext};
use crate::faults::{self, Fault};
use crate::net::Net;
use crate::session::Session;

pub(super) async fn route<N: Net>(
    request: Request<Incoming>,
    context: ServerContext<N>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = request.uri().path().to_string();
    let Some((session, rest)) = context.sessions.route(&path) else {
        // RT-1: unknown id, or the job ended and its session is gone.
        return Ok(text(
            StatusCode::NOT_FOUND,
            "no such session: the job may have ended",
        ));
    };
    let is_endpoint = rest == "exec" || rest.starts_with("proxy/");
    if faults::active(Fault::LockBeforeAuth) && rest == "exec" && session.is_connected() {
        return Ok(text(StatusCode::LOCKED, "a terminal is already connected"));
    }
    if is_endpoint && !authorized(&request, &session) {
        if rest == "exec" && faults::active(Fault::SpawnBeforeAuth) {
            if let Some(source) = session.wait_attached(std::time::Duration::ZERO).await {
                drop(source.open().await);
            }
        }
        // EX-1: nothing else happens on a 401.
        return Ok(text(
            StatusCode::UNAUTHORIZED,
            "the Authorization header must be the session's token",
        ));
    }
    let response = if rest == "exec" {
        exec::handle(request, session, &context).await
    } else if let Some(target) = rest.strip_prefix("proxy/") {
        let target = target.to_string();
        proxy::handle(request, session, &target, &context).await
    } else {
        // RT-2: only exec and proxy exist inside a session.
        text(
            StatusCode::NOT_FOUND,
            "no such endpoint: use <session>/exec or <session>/proxy/<service>/<port>/",
        )
    };
    Ok(response)
}

/// EX-1: the header must equal the token exactly (`Bearer <token>` does not),
/// compared in constant time so that response timing leaks nothing of it.
fn authorized<B>(request: &Request<B>, session: &Session) -> bool {
    use subtle::ConstantTimeEq;
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    given.ct_eq(session.token.as_bytes()).into()
}
