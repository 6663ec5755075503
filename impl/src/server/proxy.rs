//! The service proxy `<session>/proxy/<service>/<port>/<path>` (RT-2): HTTP and
//! WebSocket requests forwarded to a port that the job declares.

use std::sync::Arc;

use http::{header, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::debug;

use super::response::{text, Body, Refusal};
use super::{upgrade, ServerContext};
use crate::net::Net;
use crate::session::Session;

pub(super) async fn handle<N: Net>(
    mut request: Request<Incoming>,
    session: Arc<Session>,
    target: &str,
    context: &ServerContext<N>,
) -> Response<Body> {
    let mut parts = target.splitn(3, '/');
    let (name, port, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let Some(service) = port
        .parse()
        .ok()
        .and_then(|port| session.service(name, port))
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("the job declares no service {name:?} with port {port:?}"),
        );
    };
    let address = format!("{}:{}", service.host, service.port);
    let stream = match context.net.connect(&address).await {
        Ok(stream) => stream,
        Err(e) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("cannot reach service {name} at {address}: {e}"),
            )
        }
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("service {name} at {address}: {e}"),
                )
            }
        };
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            debug!("service proxy connection: {e}");
        }
    });

    let wants_upgrade = upgrade::is_upgrade(request.headers());
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let outgoing = match forwarded(request, path, &address) {
        Ok(r) => r,
        Err(refusal) => return refusal.response(),
    };
    let mut response = match sender.send_request(outgoing).await {
        Ok(response) => response,
        Err(e) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("service {name} at {address}: {e}"),
            )
        }
    };
    if let (StatusCode::SWITCHING_PROTOCOLS, Some(client_upgrade)) =
        (response.status(), client_upgrade)
    {
        let service_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(service)) = tokio::join!(client_upgrade, service_upgrade) {
                let (mut client, mut service) = (TokioIo::new(client), TokioIo::new(service));
                // WI-6: the relay lives no longer than the job's session; a
                // service that outlives the job must not keep it open.
                tokio::select! {
                    biased;
                    _ = session.ended() => debug!("service proxy cut: the job's session ended"),
                    _ = tokio::io::copy_bidirectional(&mut client, &mut service) => {}
                }
            }
        });
    }
    response.map(|body| body.boxed())
}

/// The request as the service gets it: its own path, without the session token.
fn forwarded(
    request: Request<Incoming>,
    path: &str,
    address: &str,
) -> Result<Request<Incoming>, Refusal> {
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = format!("/{path}{query}").parse::<Uri>().map_err(|_| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "the proxied path is not a valid URI",
        )
    })?;
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.insert(
        header::HOST,
        address
            .parse()
            .map_err(|_| Refusal(StatusCode::BAD_GATEWAY, "bad service address"))?,
    );
    Ok(Request::from_parts(parts, body))
}
