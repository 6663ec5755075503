//! The harness's own WebSocket upgrade of a session's endpoint: it judges the
//! answer itself (status, `Sec-WebSocket-Accept`, the subprotocol selected)
//! rather than leave it to a client library, which would only say "handshake
//! failed" for a runner that selects a subprotocol nobody offered (WS-1).

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use session_server::net::TokioNet;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::actors::exchange::body_or_empty;
use crate::actors::ws::{self, BoxIo, Dialed, Trust};

/// An upgrade of `url` (`wss://host:port/path`) trusting only `pem`, with
/// `headers` and offering `protocols`. A 101 whose subprotocol is not one of
/// those offered is `Failed`, saying so.
pub async fn open(url: &str, pem: &str, headers: &[(&str, String)], protocols: &[&str]) -> Dialed {
    match tokio::time::timeout(ws::DIAL_TIMEOUT, upgrade(url, pem, headers, protocols)).await {
        Ok(Ok(dialed)) => dialed,
        Ok(Err(why)) => Dialed::Failed(why),
        Err(_) => Dialed::Failed(format!("no answer within {} s", ws::DIAL_TIMEOUT.as_secs())),
    }
}

async fn upgrade(
    url: &str,
    pem: &str,
    headers: &[(&str, String)],
    protocols: &[&str],
) -> Result<Dialed, String> {
    let rest = url
        .strip_prefix("wss://")
        .ok_or_else(|| format!("not a wss:// URL: {url}"))?;
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let io = ws::connect(&TokioNet, address, Some(Trust::Pem(pem))).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
    tokio::spawn(connection.with_upgrades());
    let key = generate_key();
    let mut request = http::Request::get(if path.is_empty() { "/" } else { path })
        .header(http::header::HOST, address)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, &key);
    if !protocols.is_empty() {
        request = request.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocols.join(", "));
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no HTTP answer: {e}"))?;
    let status = response.status().as_u16();
    if status != 101 {
        let body = body_or_empty(response.into_body()).await;
        let body = String::from_utf8_lossy(&body);
        let body = body.lines().next().unwrap_or("").to_string();
        return Ok(Dialed::Refused { status, body });
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let accept = header(http::header::SEC_WEBSOCKET_ACCEPT);
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(format!(
            "101 with Sec-WebSocket-Accept {accept:?}, not the one derived from the request's key (RFC 6455 4.2.2)"
        ));
    }
    let protocol = header(http::header::SEC_WEBSOCKET_PROTOCOL);
    if let Some(selected) = &protocol {
        if !protocols.contains(&selected.as_str()) {
            return Err(format!(
                "101 selecting the subprotocol {selected:?}, which the request did not offer (offered: {protocols:?}; WS-1)"
            ));
        }
    }
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| format!("the upgraded connection: {e}"))?;
    let io: BoxIo = Box::new(TokioIo::new(upgraded));
    let ws = WebSocketStream::from_raw_socket(
        io,
        Role::Client,
        Some(crate::actors::ws::websocket_config()),
    )
    .await;
    Ok(Dialed::Open { ws, protocol })
}
