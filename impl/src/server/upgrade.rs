//! The WebSocket handshake of the terminal endpoint (EX-2, EX-7, WS-1).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::response::{Body, Refusal};
use crate::protocol::Subprotocol;

/// A valid WebSocket upgrade request.
pub(super) struct WebSocketRequest {
    accept: String,
    pub protocol: Subprotocol,
}

/// `Connection: upgrade` and `Upgrade: websocket`, case-insensitive, as tokens.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Checks the upgrade before anything is spawned: EX-2 (405), an HTTP/1.0
/// request (400, WS-8: hyper cannot switch one, so it would get a 101 and
/// EOF), a missing key or version (400: the reference spawns a shell first,
/// EX-7; here nothing is spawned), a cross-site Origin (403, as the reference).
pub(super) fn check<B>(request: &Request<B>) -> Result<WebSocketRequest, Refusal> {
    let headers = request.headers();
    if !is_upgrade(headers) {
        return Err(Refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "this endpoint takes WebSocket upgrades only (Connection: upgrade, Upgrade: websocket)",
        ));
    }
    // RFC 6455 4.1: the opening handshake is HTTP/1.1 or later.
    if request.version() < http::Version::HTTP_11 {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrades need HTTP/1.1: send the request as HTTP/1.1",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !valid_key(key) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be base64 of 16 bytes",
        ));
    }
    if !same_origin(headers) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "cross-origin WebSocket request refused",
        ));
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    Ok(WebSocketRequest {
        accept: derive_accept_key(key),
        protocol: Subprotocol::select(offered),
    })
}

fn valid_key(key: &[u8]) -> bool {
    use base64::Engine as _;
    matches!(base64::engine::general_purpose::STANDARD.decode(key), Ok(k) if k.len() == 16)
}

/// The reference's upgrader (gorilla) refuses an Origin whose host differs from Host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin_host.eq_ignore_ascii_case(host)
}

/// EX-6: 101 Switching Protocols.
pub(super) fn switching_protocols(ws: &WebSocketRequest) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, &ws.accept);
    if let Some(protocol) = ws.protocol.header_value() {
        response = response.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
        .body(super::response::full(bytes::Bytes::new()))
        .expect("valid header values")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().uri("/session/x/exec");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    const UPGRADE: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn status(headers: &[(&str, &str)]) -> Option<StatusCode> {
        check(&request(headers)).err().map(|r| r.0)
    }

    #[test]
    fn plain_get_is_405() {
        assert_eq!(status(&[]), Some(StatusCode::METHOD_NOT_ALLOWED));
    }

    #[test]
    fn upgrade_without_key_is_400() {
        assert_eq!(status(&UPGRADE[..3]), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(&[UPGRADE[0], UPGRADE[1], UPGRADE[3]]),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn an_http_1_0_upgrade_is_400() {
        let mut r = request(&UPGRADE);
        *r.version_mut() = http::Version::HTTP_10;
        assert_eq!(check(&r).err().map(|r| r.0), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn cross_site_origin_is_403_same_origin_passes() {
        let mut h = UPGRADE.to_vec();
        h.push(("host", "runner:8093"));
        h.push(("origin", "https://evil.example"));
        assert_eq!(status(&h), Some(StatusCode::FORBIDDEN));
        h.pop();
        h.push(("origin", "https://runner:8093"));
        assert_eq!(status(&h), None);
    }

    #[test]
    fn accept_key_follows_rfc6455() {
        let ws = check(&request(&UPGRADE)).unwrap();
        assert_eq!(ws.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(ws.protocol, Subprotocol::Unspecified);
    }
}
