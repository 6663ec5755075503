//! Boxes between the parties: a load balancer (DP-3), a reverse proxy in front
//! of GitLab that may strip the upgrade (WH-6), a TLS-terminating proxy in
//! front of the runner (TLS-2).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_server::net::{Listener, Net};

use super::exchange::body_or_empty;
use super::gitlab::reply;

/// Relays each TCP connection to the next upstream in turn.
pub async fn tcp_relay<N: Net>(listener: N::Listener, net: N, upstreams: Vec<String>) {
    let turn = Arc::new(AtomicUsize::new(0));
    while let Ok((mut client, _)) = listener.accept().await {
        let upstream = upstreams[turn.fetch_add(1, Ordering::Relaxed) % upstreams.len()].clone();
        let net = net.clone();
        tokio::spawn(async move {
            if let Ok(mut server) = net.connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

/// A reverse proxy that forwards requests but drops `Upgrade` and
/// `Connection`, as a misconfigured one does (WH-6).
pub async fn strip_upgrade_proxy<N: Net>(listener: N::Listener, net: N, upstream: String) {
    while let Ok((client, _)) = listener.accept().await {
        let (net, upstream) = (net.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (net, upstream) = (net.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward_stripped(request, &net, &upstream).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
}

async fn forward_stripped<N: Net>(
    request: Request<Incoming>,
    net: &N,
    upstream: &str,
) -> http::Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(http::header::UPGRADE);
    parts.headers.remove(http::header::CONNECTION);
    let body = body_or_empty(body).await;
    let Ok(stream) = net.connect(upstream).await else {
        return reply(StatusCode::BAD_GATEWAY, b"upstream unreachable".to_vec());
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return reply(
            StatusCode::BAD_GATEWAY,
            b"upstream handshake failed".to_vec(),
        );
    };
    tokio::spawn(connection);
    match sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body_or_empty(body).await;
            http::Response::from_parts(parts, Full::new(body))
        }
        Err(_) => reply(StatusCode::BAD_GATEWAY, b"upstream failed".to_vec()),
    }
}

/// Terminates TLS with a certificate of its own, then opens TLS to the runner.
pub async fn tls_terminating_proxy<N: Net>(
    listener: N::Listener,
    net: N,
    public_host: &str,
    upstream: String,
) {
    let Ok(acceptor) = super::tls::self_signed_acceptor(public_host) else {
        return;
    };
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(super::tls::insecure_client_config()));
    while let Ok((client, _)) = listener.accept().await {
        let (acceptor, connector, net, upstream) = (
            acceptor.clone(),
            connector.clone(),
            net.clone(),
            upstream.clone(),
        );
        tokio::spawn(async move {
            let Ok(mut client) = acceptor.accept(client).await else {
                return;
            };
            let Ok(server) = net.connect(&upstream).await else {
                return;
            };
            let host = upstream
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default();
            let Ok(name) = rustls::pki_types::ServerName::try_from(host) else {
                return;
            };
            let Ok(mut server) = connector.connect(name, server).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
