//! The service proxy `<session>/proxy/<service>/<port>/<path>` (RT-2): HTTP and
//! WebSocket requests reach a port the job declares, without the session token.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use session_server::coordinator::api::{Image, Port};
use session_server::machine::sim::SimMachine;
use session_server::net::TokioNet;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A service that answers HTTP with what it received, and echoes WebSocket messages.
async fn service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 2048];
                let n = stream.peek(&mut head).await.unwrap_or(0);
                if String::from_utf8_lossy(&head[..n])
                    .to_ascii_lowercase()
                    .contains("upgrade: websocket")
                {
                    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() || m.is_binary() {
                            ws.send(m).await.unwrap();
                        }
                    }
                    return;
                }
                let echo = hyper::service::service_fn(
                    |r: http::Request<hyper::body::Incoming>| async move {
                        let auth = r.headers().contains_key("authorization");
                        let body = format!("{} authorization={auth}", r.uri());
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), echo)
                    .await;
            });
        }
    });
    port
}

async fn job_with_service(port: u16) -> (World, session_server::coordinator::api::SessionInfo) {
    job_running(port, "sleep 600").await
}

/// Job 1, running `script`, declares the service on `port`.
async fn job_running(
    port: u16,
    script: &str,
) -> (World, session_server::coordinator::api::SessionInfo) {
    let world = world("docker", 60, Arc::new(SimMachine), |_| {}).await;
    let mut j = job(1, &[script], &[]);
    j.services = vec![Image {
        name: "localhost".into(),
        ports: vec![Port {
            number: port,
            ..Default::default()
        }],
        ..Default::default()
    }];
    world.gitlab.push(j);
    let session = world.session(1).await;
    // The services are known once the job runs.
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
    (world, session)
}

#[tokio::test]
async fn http_reaches_the_declared_port_without_the_token() {
    let port = service().await;
    let (_world, session) = job_with_service(port).await;
    let auth = ("Authorization", session.authorization.as_str());
    let head = request_head(
        &session,
        &format!("/proxy/localhost/{port}/hello?x=1"),
        &[auth],
    );
    let (status, answer) = raw_exchange(&TokioNet, &session, head.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.ends_with("/hello?x=1 authorization=false"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_undeclared_port_is_404_and_no_token_is_401() {
    let port = service().await;
    let (_world, session) = job_with_service(port).await;
    let auth = ("Authorization", session.authorization.as_str());
    let other = port.wrapping_add(1);
    assert_eq!(
        status(
            &TokioNet,
            &session,
            &format!("/proxy/localhost/{other}/"),
            &[auth]
        )
        .await,
        404
    );
    assert_eq!(
        status(
            &TokioNet,
            &session,
            &format!("/proxy/localhost/{port}/"),
            &[]
        )
        .await,
        401
    );
}

/// A WebSocket through the session's proxy, to `port`'s `/ws`.
async fn proxied_websocket(
    session: &session_server::coordinator::api::SessionInfo,
    port: u16,
) -> tokio_tungstenite::WebSocketStream<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> {
    let tls = dial_tls(&TokioNet, session).await.unwrap();
    let url = format!(
        "wss://{}{}",
        host_port(&session.url),
        path(session, &format!("/proxy/localhost/{port}/ws"))
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", session.authorization.parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("upgraded through the proxy");
    assert_eq!(response.status(), 101);
    ws
}

#[tokio::test]
async fn websocket_upgrades_are_proxied() {
    let port = service().await;
    let (_world, session) = job_with_service(port).await;
    let mut ws = proxied_websocket(&session, port).await;
    ws.send(Message::text("ping through the proxy"))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "ping through the proxy"
    );
}

/// WI-6: the service outlives the job here (it is not the job's container),
/// yet a proxied connection still open when the job ends is cut with the session.
#[tokio::test]
async fn a_proxied_websocket_ends_with_the_jobs_session() {
    let port = service().await;
    let (world, session) = job_running(port, "sleep 3").await;
    let mut ws = proxied_websocket(&session, port).await;
    ws.send(Message::text("still there?")).await.unwrap();
    assert!(ws.next().await.unwrap().unwrap().is_text());
    world.gitlab.finished(1).await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the proxied WebSocket is still open 10 s after its job ended"
    );
}
