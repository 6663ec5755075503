//! WebSocket plumbing shared by Workhorse and the browsers: dialing a terminal
//! endpoint over any transport, and the bits of the handshake a server needs.
//!
//! The harness judges with its own code, never the runner's: its own frame
//! limits ([`websocket_config`]), its own check of a runner's `101` answer
//! ([`check_switching`]), its own upgrade test for requests Workhorse gets
//! ([`is_upgrade`]) and its own TLS trust of the session's PEM (`tls`).

use http::HeaderMap;
use rustls::pki_types::ServerName;
use session_server::net::Net;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::tls;

/// Any byte stream, boxed, so plain and TLS connections share one type.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
pub type BoxIo = Box<dyn Io>;
pub type Ws = WebSocketStream<BoxIo>;

/// How a dial ended.
#[allow(clippy::large_enum_variant)] // made once per connection attempt
pub enum Dialed {
    Open {
        ws: Ws,
        protocol: Option<String>,
    },
    /// The server answered with an HTTP status instead of 101.
    Refused {
        status: u16,
        body: String,
    },
    /// No HTTP answer at all: connection, TLS or protocol failure.
    Failed(String),
}

/// TLS to trust: the PEM alone (TLS-2), or nothing (a `curl -k` client).
pub enum Trust<'a> {
    Pem(&'a str),
    Anything,
}

/// No dial waits longer: more than a runner may hold a request (EX-3's 60 s
/// attach wait plus DK-1's 15 s), like a browser or proxy timeout.
pub const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Dials `url` (`ws://` or `wss://host:port/path`) through `net`, within [`DIAL_TIMEOUT`].
pub async fn dial<N: Net>(
    net: &N,
    url: &str,
    trust: Option<Trust<'_>>,
    headers: &[(&str, String)],
    protocols: &[String],
) -> Dialed {
    let dialed = async {
        let Some((secure, rest)) = url
            .strip_prefix("wss://")
            .map(|r| (true, r))
            .or_else(|| url.strip_prefix("ws://").map(|r| (false, r)))
        else {
            return Dialed::Failed(format!("not a WebSocket URL: {url}"));
        };
        let address = rest.split('/').next().unwrap_or(rest).to_string();
        let tls = secure.then(|| trust.unwrap_or(Trust::Anything));
        let io = match connect(net, &address, tls).await {
            Ok(io) => io,
            Err(why) => return Dialed::Failed(why),
        };
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return Dialed::Failed(format!("bad request: {e}")),
        };
        let key = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|k| k.to_str().ok())
            .unwrap_or_default()
            .to_string();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name.as_bytes()), value.parse()) {
                request.headers_mut().insert(n, v);
            }
        }
        if !protocols.is_empty() {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                protocols.join(", ").parse().expect("ascii"),
            );
        }
        match tokio_tungstenite::client_async_with_config(request, io, Some(websocket_config()))
            .await
        {
            Ok((ws, response)) => match check_switching(&response, &key, protocols) {
                Ok(protocol) => Dialed::Open { ws, protocol },
                Err(why) => Dialed::Failed(format!("bad 101 answer: {why}")),
            },
            Err(tungstenite::Error::Http(response)) => Dialed::Refused {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_ref()
                    .map(|b| {
                        String::from_utf8_lossy(b)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default(),
            },
            Err(e) => Dialed::Failed(format!("WebSocket handshake failed: {e}")),
        }
    };
    match tokio::time::timeout(DIAL_TIMEOUT, dialed).await {
        Ok(dialed) => dialed,
        Err(_) => Dialed::Failed(format!("no answer within {}s", DIAL_TIMEOUT.as_secs())),
    }
}

/// Connects to `address` (`host:port`) through `net`: plain without `tls`, else
/// TLS trusting what `tls` says, for the host of `address`. The error says why.
pub async fn connect<N: Net>(
    net: &N,
    address: &str,
    tls: Option<Trust<'_>>,
) -> Result<BoxIo, String> {
    let stream = net.connect(address).await.map_err(|e| connect_error(&e))?;
    let Some(trust) = tls else {
        return Ok(Box::new(stream));
    };
    let config = match trust {
        Trust::Pem(pem) => tls::trusting(pem).map_err(|e| format!("bad certificate PEM: {e}"))?,
        Trust::Anything => tls::insecure_client(),
    };
    let host = address
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(address)
        .to_string();
    let name = ServerName::try_from(host).map_err(|e| format!("bad host name: {e}"))?;
    match TlsConnector::from(config).connect(name, stream).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(e) => Err(tls_error(&e)),
    }
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => format!("cannot connect: {}", e.kind()),
    }
}

/// TLS-2: what a client that trusts only the session PEM says of another certificate.
fn tls_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer")
        || text.contains("BadSignature")
        || text.contains("NotValidForName")
    {
        "TLS: certificate signed by unknown authority".to_string()
    } else {
        format!("TLS handshake failed: {text}")
    }
}

/// The largest message or frame a harness peer takes: far above what any
/// terminal sends (the project's own limit is 1 MiB, WS-5), so that the harness
/// never cuts what a runner legitimately sends, yet stays bounded.
pub const MAX_MESSAGE: usize = 16 << 20;

/// The harness's WebSocket limits, for Workhorse and browsers alike.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// A request that asks for a WebSocket: `Connection` has the `upgrade` token
/// and `Upgrade` is `websocket` (RFC 6455 4.2.1; what Workhorse requires).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, http::header::CONNECTION, "upgrade")
        && has_token(headers, http::header::UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The comma-separated tokens of every `name` header, trimmed, in order
/// (RFC 9110 5.6.1's lists; a value that is not text has none).
fn tokens(headers: &HeaderMap, name: http::header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Judges a server's answer to an upgrade that sent `key` offering `offered`
/// (RFC 6455 4.1): 101, `Upgrade: websocket`, `Connection: upgrade`, the
/// `Sec-WebSocket-Accept` of `key`, and a subprotocol only among those offered
/// (WS-1). Returns the selected subprotocol, or what is wrong.
pub fn check_switching<B>(
    response: &http::Response<B>,
    key: &str,
    offered: &[String],
) -> Result<Option<String>, String> {
    let headers = response.headers();
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!("status {}, not 101", response.status().as_u16()));
    }
    if !has_token(headers, http::header::UPGRADE, "websocket") {
        return Err("no Upgrade: websocket".into());
    }
    if !has_token(headers, http::header::CONNECTION, "upgrade") {
        return Err("no Connection: upgrade".into());
    }
    let accept = headers
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|a| a.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(format!(
            "Sec-WebSocket-Accept {accept:?} does not answer the key sent"
        ));
    }
    let selected = headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .map(|p| p.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| "Sec-WebSocket-Protocol is not text".to_string())?;
    match &selected {
        Some(p) if !offered.contains(p) => Err(format!(
            "subprotocol {p:?} selected, but only {offered:?} were offered"
        )),
        _ => Ok(selected),
    }
}

/// The subprotocols a request offers, in its order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    tokens(headers, http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The bytes a data message carries under `protocol` (base64 text or raw).
pub fn payload(protocol: Option<&str>, message: &Message) -> Option<Vec<u8>> {
    use base64::Engine as _;
    match (protocol, message) {
        (Some("base64.terminal.gitlab.com"), Message::Text(t)) => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_str())
                .ok()
        }
        (_, Message::Binary(b)) => Some(b.to_vec()),
        (_, Message::Text(t)) => Some(t.as_bytes().to_vec()),
        _ => None,
    }
}

/// What is wrong with a data message from the runner under `protocol`, and the
/// rule it breaks: WS-3 sends base64 in text frames; WS-2 (and WS-1, no
/// subprotocol) raw bytes in binary frames.
pub fn frame_problem(protocol: Option<&str>, message: &Message) -> Option<(&'static str, String)> {
    use base64::Engine as _;
    match (protocol, message) {
        (Some(p @ "base64.terminal.gitlab.com"), Message::Binary(_)) => {
            Some(("WS-3", format!("a binary frame where {p} sends text")))
        }
        (Some("base64.terminal.gitlab.com"), Message::Text(t)) => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_str())
                .err()
                .map(|e| ("WS-3", format!("a text frame that is not base64 ({e})")))
        }
        (p, Message::Text(_)) => Some((
            "WS-2",
            format!(
                "a text frame where {} sends binary",
                p.unwrap_or("a terminal without a subprotocol")
            ),
        )),
        _ => None,
    }
}

/// A data message carrying `bytes` under `protocol`.
pub fn data(protocol: Option<&str>, bytes: &[u8]) -> Message {
    use base64::Engine as _;
    match protocol {
        Some("base64.terminal.gitlab.com") => {
            Message::text(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        _ => Message::binary(bytes.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(accept: &str, protocol: Option<&str>) -> http::Response<()> {
        let mut r = http::Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", accept);
        if let Some(p) = protocol {
            r = r.header("sec-websocket-protocol", p);
        }
        r.body(()).unwrap()
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455's own example of the accept value for `KEY`.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn a_right_101_gives_the_selected_subprotocol() {
        let offered = vec!["terminal.gitlab.com".to_string()];
        assert_eq!(
            check_switching(&answer(ACCEPT, Some("terminal.gitlab.com")), KEY, &offered),
            Ok(Some("terminal.gitlab.com".into()))
        );
        assert_eq!(
            check_switching(&answer(ACCEPT, None), KEY, &offered),
            Ok(None)
        );
    }

    #[test]
    fn a_wrong_accept_or_an_unoffered_subprotocol_is_refused() {
        let offered = vec!["terminal.gitlab.com".to_string()];
        let wrong = check_switching(&answer("AAAA", None), KEY, &offered).unwrap_err();
        assert!(wrong.contains("Sec-WebSocket-Accept"), "{wrong}");
        let unoffered = check_switching(&answer(ACCEPT, Some("chat")), KEY, &offered).unwrap_err();
        assert!(unoffered.contains("\"chat\""), "{unoffered}");
    }

    #[test]
    fn an_upgrade_needs_both_headers_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        assert!(!is_upgrade(&headers));
        headers.insert("upgrade", "WebSocket".parse().unwrap());
        assert!(is_upgrade(&headers));
    }

    #[test]
    fn a_frame_of_the_wrong_type_for_the_subprotocol_is_named_by_its_rule() {
        let base64 = Some("base64.terminal.gitlab.com");
        let terminal = Some("terminal.gitlab.com");
        assert_eq!(frame_problem(base64, &Message::text("aGk=")), None);
        assert_eq!(
            frame_problem(terminal, &Message::binary(b"hi".to_vec())),
            None
        );
        assert_eq!(frame_problem(None, &Message::binary(b"hi".to_vec())), None);
        let rule = |p, m: &Message| frame_problem(p, m).map(|(rule, _)| rule);
        assert_eq!(rule(base64, &Message::binary(b"hi".to_vec())), Some("WS-3"));
        assert_eq!(rule(base64, &Message::text("not base64!")), Some("WS-3"));
        assert_eq!(rule(terminal, &Message::text("hi")), Some("WS-2"));
        assert_eq!(rule(None, &Message::text("hi")), Some("WS-2"));
    }
}
