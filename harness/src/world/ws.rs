//! WebSocket plumbing shared by Workhorse and the browsers: dialing a terminal
//! endpoint over any transport, and the bits of the handshake a server needs.

use std::sync::Arc;

use http::HeaderMap;
use rustls::pki_types::ServerName;
use session_server::net::Net;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

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
    match tokio::time::timeout(
        DIAL_TIMEOUT,
        dial_unbounded(net, url, trust, headers, protocols),
    )
    .await
    {
        Ok(dialed) => dialed,
        Err(_) => Dialed::Failed(format!("no answer within {}s", DIAL_TIMEOUT.as_secs())),
    }
}

async fn dial_unbounded<N: Net>(
    net: &N,
    url: &str,
    trust: Option<Trust<'_>>,
    headers: &[(&str, String)],
    protocols: &[String],
) -> Dialed {
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
    match tokio_tungstenite::client_async_with_config(
        request,
        io,
        // The server's limits, but a client writes whole messages up to the
        // server's 1 MiB: the server's own write bound (its output frames and
        // Pongs, WS-8) is not a client's.
        Some(session_server::protocol::websocket_config().max_write_buffer_size(usize::MAX)),
    )
    .await
    {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|p| p.to_str().ok())
                .map(str::to_string);
            Dialed::Open { ws, protocol }
        }
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
        Trust::Pem(pem) => session_server::tls::client_config_trusting(pem)
            .map_err(|e| format!("bad certificate PEM: {e}"))?,
        Trust::Anything => insecure_client_config(),
    };
    let host = address
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(address)
        .to_string();
    let name = ServerName::try_from(host).map_err(|e| format!("bad host name: {e}"))?;
    match TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
    {
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

/// `Connection: upgrade` and `Upgrade: websocket` (the same test as the runner's).
pub use session_server::server::is_upgrade;

/// The subprotocols a request offers, in its order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
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

/// A client that trusts any certificate: for `insecure` connections only.
pub fn insecure_client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(session_server::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the defaults")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth()
}

#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        session_server::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
