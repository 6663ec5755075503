//! One HTTP/1.1 exchange on a fresh connection, with hyper's client: the
//! harness's own, for every request that is not a WebSocket dial (Workhorse's
//! service proxy, a browser's fetch, a plain request at a terminal, the
//! session probe). Bounded by [`super::ws::DIAL_TIMEOUT`], as a dial is.

use std::time::Duration;

use bytes::Bytes;
use http::request::Builder;
use http::Request;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_server::net::Net;

use super::ws::{self, Trust, MAX_MESSAGE};

/// How much of an answer's body is read.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    /// All of it, at most [`MAX_MESSAGE`] bytes (more is an error).
    Whole,
    /// What arrives within this long: a refusal's body says why, but a peer
    /// that keeps it open is not waited for (nothing then).
    Within(Duration),
}

/// All of `body`, or nothing when it broke off (a peer that hung up midway):
/// what the harness's servers and proxies read of a request or an answer.
pub async fn body_or_empty(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// Sends a request for `path` at `address` (`host:port`), plain or TLS as
/// `tls` says: `Host`, then what `shape` adds (the method, the version, its
/// own headers), then `headers`. The answer's status and body as `body`
/// says, or why there was none.
pub async fn exchange<N: Net>(
    net: &N,
    address: &str,
    tls: Option<Trust<'_>>,
    path: &str,
    shape: impl FnOnce(Builder) -> Builder,
    headers: &[(&str, String)],
    body: Body,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let io = ws::connect(net, address, tls).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = shape(
            Request::builder()
                .uri(path)
                .header(http::header::HOST, address),
        );
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("not a valid request for {path:?}: {e}"))?;
        let answer = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP request: {e}"))?;
            let status = response.status().as_u16();
            let body = match body {
                Body::Whole => Limited::new(response.into_body(), MAX_MESSAGE)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer: {e}"))?
                    .to_bytes(),
                Body::Within(wait) => tokio::time::timeout(wait, response.into_body().collect())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|b| b.to_bytes())
                    .unwrap_or_default(),
            };
            Ok((status, body))
        }
        .await;
        driver.abort();
        answer
    };
    tokio::time::timeout(ws::DIAL_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            let waited = ws::DIAL_TIMEOUT.as_secs();
            Err(format!("no answer within {waited}s"))
        })
}

/// `GET path` at `address`: the answer's status and its whole body.
pub async fn get<N: Net>(
    net: &N,
    address: &str,
    tls: Option<Trust<'_>>,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(u16, Bytes), String> {
    let get = |request: Builder| request.method(http::Method::GET);
    exchange(net, address, tls, path, get, headers, Body::Whole).await
}
