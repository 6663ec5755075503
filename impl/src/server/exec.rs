//! The terminal endpoint `<session>/exec`, its checks in the reference's order
//! (EX-1..6; EX-1 is done by the router for every session endpoint).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

use super::response::{text, Body};
use super::{upgrade, ServerContext};
use crate::net::Net;
use crate::protocol::{self, websocket_config};
use crate::session::Session;

pub(super) async fn handle<N: Net>(
    mut request: Request<Incoming>,
    session: Arc<Session>,
    context: &ServerContext<N>,
) -> Response<Body> {
    // EX-2 (and the handshake's own 400/403), before anything is spawned.
    let ws = match upgrade::check(&request) {
        Ok(ws) => ws,
        Err(refusal) => return refusal.response(),
    };
    // EX-3: the terminal exists once the job runs.
    let Some(source) = session.wait_attached(context.limits.attach_wait).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the job is not running yet, so it has no terminal: try again once it runs",
        );
    };
    // EX-4: one terminal per session; the open one is left alone.
    let Some(guard) = session.lock() else {
        return text(
            StatusCode::LOCKED,
            "a terminal is already connected to this job: close it first",
        );
    };
    // EX-5: the executor may be unable to give one.
    let terminal = match source.open().await {
        Ok(terminal) => terminal,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot open a terminal: {e}"),
            )
        }
    };
    // EX-6: switch protocols, then relay on the upgraded connection.
    let on_upgrade = hyper::upgrade::on(&mut request);
    // Logs name a session by a short prefix: the whole id is half of what opens it.
    let id: String = session.id.chars().take(8).collect();
    let (timing, protocol) = (context.timing, ws.protocol);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            // The client left during the switch: the terminal and the slot are dropped.
            Err(e) => return debug!("terminal upgrade failed: {e}"),
        };
        let socket = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(websocket_config()),
        )
        .await;
        let reason = protocol::relay(socket, protocol, terminal, guard, timing).await;
        info!(session = %format!("{id}…"), ?reason, "terminal disconnected");
    });
    upgrade::switching_protocols(&ws)
}
