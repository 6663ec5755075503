//! The `gitlab` host's front door: the runner API, git over HTTP, and
//! Workhorse's terminal channel (`/-/jobs/<id>/terminal.ws`, WH-1..5) between browsers and runners.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_server::net::{Listener, Net};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::gitlab::{reply, Gitlab, TerminalSpec};
use super::ws::{self, Dialed, Trust, Ws};
use crate::trace::{Pings, Recorder, What};

/// WH-3: Workhorse pings the browser and re-authorizes on these periods.
pub const BROWSER_PING: Duration = Duration::from_secs(30);
pub const REAUTHORIZE: Duration = Duration::from_secs(5 * 60);
/// How long Workhorse lets the shell answer the EOT before it closes (WH-5).
const EOT_GRACE: Duration = Duration::from_secs(1);
/// The header that stands for the browser's GitLab login in this world.
pub const USER_HEADER: &str = "x-gitlab-user";

/// Serves the gitlab host until the listener fails.
pub async fn serve<N: Net>(listener: N::Listener, net: N, gitlab: Gitlab, recorder: Recorder) {
    while let Ok((stream, peer)) = listener.accept().await {
        let (net, gitlab, recorder) = (net.clone(), gitlab.clone(), recorder.clone());
        tokio::spawn(async move {
            let name = host_name(peer);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (net, gitlab, recorder, name) =
                    (net.clone(), gitlab.clone(), recorder.clone(), name.clone());
                async move {
                    let path = request.uri().path();
                    let response = if path.starts_with("/api/v4/") {
                        gitlab.api(request, &name).await
                    } else if path.contains(".git/") {
                        gitlab.git(path, request.headers())
                    } else {
                        terminal(request, net, gitlab, recorder).await
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// The simulated host's name, or the address on real sockets.
fn host_name(peer: SocketAddr) -> String {
    if turmoil::in_simulation() {
        turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string())
    } else {
        "runner".to_string()
    }
}

/// WH-1/2: authorize, dial the runner, then upgrade the browser.
async fn terminal<N: Net>(
    mut request: Request<Incoming>,
    net: N,
    gitlab: Gitlab,
    recorder: Recorder,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let Some(job) = path
        .strip_prefix("/-/jobs/")
        .and_then(|r| r.strip_suffix("/terminal.ws"))
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return reply(StatusCode::NOT_FOUND, b"not found".to_vec());
    };
    let headers = request.headers();
    let Some(key) = headers
        .get("sec-websocket-key")
        // As Workhorse's WebSocket library: an upgrade, version 13, with a key.
        .filter(|_| ws::is_upgrade(headers))
        .filter(|_| {
            headers
                .get(http::header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13")
        })
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            b"terminal.ws takes WebSocket upgrades only".to_vec(),
        );
    };
    let user = headers
        .get(USER_HEADER)
        .and_then(|u| u.to_str().ok())
        .map(str::to_string);
    let who = user.clone().unwrap_or_else(|| "(anonymous)".into());
    let authorized = gitlab.authorize(user.as_deref(), job);
    let verdict = match &authorized {
        Ok(_) => "allowed".to_string(),
        Err(denied) => format!("denied {} ({})", denied.status, denied.reason),
    };
    recorder.record(
        "rails",
        Some("AU-2"),
        What::Authorize {
            user: who,
            job,
            verdict,
        },
    );
    let spec = match authorized {
        Ok(spec) => spec,
        Err(denied) => {
            let status = StatusCode::from_u16(denied.status).unwrap_or(StatusCode::FORBIDDEN);
            return reply(status, denied.reason.as_bytes().to_vec());
        }
    };
    let offered = ws::offered_protocols(headers);
    let protocol = offered
        .iter()
        .find(|p| spec.subprotocols.contains(p))
        .cloned();

    // WH-2: the runner first; a failure is an HTTP error for the browser, not an upgrade.
    let runner = match dial_runner(&net, &spec, protocol.as_deref()).await {
        Ok(runner) => runner,
        Err((event, rule)) => {
            recorder.record("workhorse", Some(rule), What::RunnerLink { job, event });
            return reply(
                StatusCode::BAD_GATEWAY,
                b"cannot connect to the runner's terminal".to_vec(),
            );
        }
    };
    recorder.record(
        "workhorse",
        Some("WH-2"),
        What::RunnerLink {
            job,
            event: "connected".into(),
        },
    );
    let on_upgrade = hyper::upgrade::on(&mut request);
    let channel = Channel {
        job,
        user,
        spec,
        protocol: protocol.clone(),
        gitlab,
        recorder,
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let browser = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws::websocket_config()),
            )
            .await;
            channel.proxy(browser, runner).await;
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key);
    if let Some(p) = &protocol {
        response = response.header("sec-websocket-protocol", p);
    }
    response
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

async fn dial_runner<N: Net>(
    net: &N,
    spec: &TerminalSpec,
    protocol: Option<&str>,
) -> Result<Ws, (String, &'static str)> {
    let url = format!("{}/exec", spec.url.replacen("https://", "wss://", 1));
    let headers = [("authorization", spec.authorization.clone())];
    let protocols: Vec<String> = protocol
        .map(|p| vec![p.to_string()])
        .unwrap_or_else(|| spec.subprotocols.clone());
    match ws::dial(
        net,
        &url,
        Some(Trust::Pem(&spec.ca_pem)),
        &headers,
        &protocols,
    )
    .await
    {
        Dialed::Open { ws, .. } => Ok(ws),
        Dialed::Refused { status, body } => Err((
            format!("runner answered {status} {body}"),
            status_rule(status),
        )),
        Dialed::Failed(why) if why.starts_with("TLS") => Err((why, "TLS-2")),
        Dialed::Failed(why) => Err((why, "DP-1")),
    }
}

/// The SPEC rule that a runner's refusal shows.
fn status_rule(status: u16) -> &'static str {
    match status {
        401 => "EX-1",
        404 => "RT-1",
        405 => "EX-2",
        423 => "EX-4",
        500 => "EX-5",
        503 => "EX-3",
        _ => "WH-2",
    }
}

/// One open terminal channel.
struct Channel {
    job: u64,
    user: Option<String>,
    spec: TerminalSpec,
    protocol: Option<String>,
    gitlab: Gitlab,
    recorder: Recorder,
}

impl Channel {
    fn note(&self, rule: &str, event: impl Into<String>) {
        self.recorder.record(
            "workhorse",
            Some(rule),
            What::RunnerLink {
                job: self.job,
                event: event.into(),
            },
        );
    }

    async fn proxy(self, browser: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, runner: Ws) {
        let (mut to_browser, mut from_browser) = browser.split();
        let (mut to_runner, mut from_runner) = runner.split();
        let start = tokio::time::Instant::now();
        let mut ping = tokio::time::interval_at(start + BROWSER_PING, BROWSER_PING);
        let mut reauthorize = tokio::time::interval_at(start + REAUTHORIZE, REAUTHORIZE);
        let limit = self.spec.max_session_time.map(|d| start + d);
        let protocol = self.protocol.as_deref();
        // WS-4: the runner's pings, summarized when the link ends.
        let mut runner_pings = Pings::default();
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(limit.unwrap_or(start)), if limit.is_some() => {
                    self.note("WH-4", "MaxSessionTime reached: closing both sides");
                    let _ = to_browser.send(close(CloseCode::Normal, "session time limit reached")).await;
                    let _ = to_runner.send(close(CloseCode::Normal, "")).await;
                    return;
                }
                _ = reauthorize.tick() => {
                    match self.gitlab.authorize(self.user.as_deref(), self.job) {
                        Ok(spec) if spec == self.spec => {}
                        outcome => {
                            let why = match outcome { Ok(_) => "the terminal spec changed".to_string(), Err(d) => format!("{} ({})", d.status, d.reason) };
                            self.note("WH-3", format!("re-authorization failed: {why}; closing both sides"));
                            let _ = to_browser.send(close(CloseCode::Policy, "authorization revoked")).await;
                            let _ = to_runner.send(close(CloseCode::Normal, "")).await;
                            return;
                        }
                    }
                }
                _ = ping.tick() => {
                    let _ = to_browser.send(Message::Ping(Bytes::new())).await;
                }
                message = from_browser.next() => match message {
                    Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                        if to_runner.send(m).await.is_err() {
                            self.note("WH-2", "runner connection lost");
                            return;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    // WH-5: the browser went away: EOT to the shell, then close.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        self.note("WH-5", format!("browser left: sending EOT (0x04) to the runner, then closing{}", runner_pings.summary("from the runner")));
                        let _ = to_browser.close().await;
                        let _ = to_runner.send(ws::data(protocol, &[0x04])).await;
                        // This model gives the shell a moment to answer the EOT before
                        // the close goes out, so that the answer shows in traces.
                        let mut rest = Vec::new();
                        let mut runner_closed = None;
                        let _ = tokio::time::timeout(EOT_GRACE, async {
                            while let Some(Ok(message)) = from_runner.next().await {
                                if let Message::Close(frame) = &message {
                                    runner_closed = Some(frame.as_ref().map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default());
                                    break;
                                }
                                rest.extend(ws::payload(protocol, &message).unwrap_or_default());
                            }
                        })
                        .await;
                        if !rest.is_empty() {
                            self.note("WH-5", format!("the shell's last output: \"{}\"", crate::trace::preview(&rest)));
                        }
                        match runner_closed {
                            Some(how) => self.note("WS-7", format!("runner closed the terminal: {}", how.trim_end())),
                            None => drop(to_runner.send(close(CloseCode::Normal, "")).await),
                        }
                        return;
                    }
                },
                message = from_runner.next() => match message {
                    Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                        let _ = to_browser.send(m).await;
                    }
                    Some(Ok(Message::Ping(_))) => runner_pings.saw(self.recorder.now()),
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        let described = frame.as_ref().map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "without a code".into());
                        self.note("WS-6", format!("runner closed the terminal: {}{}", described.trim_end(), runner_pings.summary("from the runner")));
                        let _ = to_browser.send(Message::Close(frame)).await;
                        return;
                    }
                    // The runner dropped the connection without a close frame: so does Workhorse.
                    Some(Err(_)) | None => {
                        self.note("WS-6", format!("runner connection ended without a close frame{}", runner_pings.summary("from the runner")));
                        return;
                    }
                },
            }
        }
    }
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}
