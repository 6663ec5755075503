//! One client connection: TLS (or a 400 for plain HTTP, EX-7), then HTTP/1.1.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::{routes, ServerContext};
use crate::net::{Net, Stream};
use crate::tls::Identity;

/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

pub(super) async fn handle<N: Net>(
    mut stream: N::Stream,
    identity: Identity,
    context: ServerContext<N>,
) {
    let limits = context.limits;
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.handshake_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] != TLS_HANDSHAKE {
        // EX-7: like Go's server, answer plain HTTP on the TLS port with 400.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(PLAIN_HTTP_ANSWER).await?;
            stream.shutdown().await
        })
        .await;
        return;
    }
    let tls = match tokio::time::timeout(limits.handshake_timeout, identity.acceptor.accept(stream))
        .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return debug!("session server: TLS handshake failed: {e}"),
        Err(_) => return debug!("session server: TLS handshake timed out"),
    };
    let service = service_fn(move |request| routes::route(request, context.clone()));
    let served = http1::Builder::new()
        // Without a timer hyper has no timeouts at all.
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        debug!("session server: connection ended: {e}");
    }
}
