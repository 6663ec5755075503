//! Requests at a runner's terminal endpoint that are not a WebSocket dial: a
//! plain GET or POST (EX-2 answers 405), an upgrade sent as HTTP/1.0 (WS-8
//! refuses it before any shell starts), and the session probe's GET (LC-7).
//! The harness's own HTTP client (hyper's), never the runner's code.

use http::request::Builder;
use http::{Method, Version};
use session_server::net::Net;

use super::exchange::{exchange, Body};
use super::ws::Trust;
use crate::scenario::Shape;

/// Sends `shape` to `url` (`https://host:port/path`) with `headers`, within
/// `ws::DIAL_TIMEOUT`: the answer's status and the first line of its body,
/// or why there was none. A runner that answers 101 to such a request is
/// reported with that status; the connection is not used.
pub async fn send<N: Net>(
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
    let shaped = |request: Builder| match shape {
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
    let path = format!("/{path}");
    let body = Body::Within(BODY_WAIT);
    let (status, body) = exchange(net, address, Some(trust), &path, shaped, headers, body).await?;
    let first = String::from_utf8_lossy(&body)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok((status, first))
}

/// How long the body of a refusal is read.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
