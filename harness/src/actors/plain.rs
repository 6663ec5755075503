//! Requests at a runner's terminal endpoint that are not a WebSocket dial: a
//! plain GET or POST (EX-2 answers 405), an upgrade sent as HTTP/1.0 (WS-8
//! refuses it before any shell starts), and the session probe's GET (LC-7).
//! The harness's own HTTP client (hyper's), never the runner's code.

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use session_server::net::Net;

use super::ws::{self, Trust};

/// The shape of a request that is not an ordinary upgrade; a scenario's
/// `request = "get" | "post" | "http10-upgrade"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Get,
    Post,
    /// `GET` with `Connection: Upgrade` and `Upgrade: websocket`, as HTTP/1.0.
    Http10Upgrade,
}

impl Shape {
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Get => "a plain GET",
            Shape::Post => "a plain POST",
            Shape::Http10Upgrade => "an upgrade as HTTP/1.0",
        }
    }
}

/// Sends `shape` to `url` (`https://host:port/path`) with `headers`, within
/// [`ws::DIAL_TIMEOUT`]: the answer's status and the first line of its body,
/// or why there was none. A runner that answers 101 to such a request is
/// reported with that status; the connection is not used.
pub async fn send<N: Net>(
    net: &N,
    url: &str,
    trust: Trust<'_>,
    shape: Shape,
    headers: &[(&str, String)],
) -> Result<(u16, String), String> {
    tokio::time::timeout(
        ws::DIAL_TIMEOUT,
        send_unbounded(net, url, trust, shape, headers),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {}s", ws::DIAL_TIMEOUT.as_secs())))
}

async fn send_unbounded<N: Net>(
    net: &N,
    url: &str,
    trust: Trust<'_>,
    shape: Shape,
    headers: &[(&str, String)],
) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("not an https URL: {url}"))?;
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    let io = ws::connect(net, address, Some(trust)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut request = Request::builder()
        .uri(format!("/{path}"))
        .header(http::header::HOST, address);
    request = match shape {
        Shape::Get => request.method(Method::GET),
        Shape::Post => request.method(Method::POST),
        Shape::Http10Upgrade => request
            .method(Method::GET)
            .version(Version::HTTP_10)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_VERSION, "13")
            .header(http::header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request: {e}"))?;
        let status = response.status().as_u16();
        // The body says why; a runner that keeps it open is not waited for.
        let body = tokio::time::timeout(BODY_WAIT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let first = String::from_utf8_lossy(&body)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        Ok((status, first))
    }
    .await;
    driver.abort();
    answer
}

/// How long the body of a refusal is read.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
