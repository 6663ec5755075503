//! A job's service in the simulated world (WI-1, WI-5): a host of its own (the
//! service's alias, as a service container is reachable by it) that answers
//! on the ports the scenario lets it listen on. It stands for the Web IDE's
//! file-sync service: HTTP says what it received, and a WebSocket greets, then
//! echoes every message back, so that both directions of the proxy show.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_server::net::{Listener, Net};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::ws;

/// Serves service `name` on `port` until the listener fails.
pub async fn serve<N: Net>(listener: N::Listener, name: String, port: u16) {
    while let Ok((stream, _)) = listener.accept().await {
        let name = format!("{name}:{port}");
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let name = name.clone();
                async move { Ok::<_, Infallible>(answer(request, name)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn answer(mut request: Request<Incoming>, name: String) -> Response<Full<Bytes>> {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let headers = request.headers();
    let key = headers
        .get("sec-websocket-key")
        .filter(|_| ws::is_upgrade(headers))
        .map(|k| derive_accept_key(k.as_bytes()));
    let Some(accept) = key else {
        // What the proxy must not pass on (WI-5) shows in the answer.
        let authorization = if headers.contains_key(http::header::AUTHORIZATION) {
            "Authorization received"
        } else {
            "no Authorization"
        };
        let body = format!(
            "{name} answers {} {target} ({authorization})",
            request.method()
        );
        return Response::new(Full::new(Bytes::from(body)));
    };
    let protocol = ws::offered_protocols(headers).into_iter().next();
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws::websocket_config()),
            )
            .await;
            echo(socket, &name, &target).await;
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept);
    if let Some(p) = protocol {
        response = response.header("sec-websocket-protocol", p);
    }
    response
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

/// Greets, then sends every message back, in the frame type it came in.
async fn echo<S>(mut socket: WebSocketStream<S>, name: &str, target: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = format!("{name} ready at {target}\r\n");
    if socket
        .send(Message::binary(hello.into_bytes()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(message)) = socket.next().await {
        let reply = match message {
            Message::Binary(bytes) => {
                Message::binary([b"echo: ".as_slice(), &bytes, b"\r\n"].concat())
            }
            Message::Text(text) => Message::text(format!("echo: {}\r\n", text.as_str())),
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
    let _ = socket.close(None).await;
}
