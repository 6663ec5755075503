//! The `gitlab` host's front door: the runner API, git over HTTP, and
//! Workhorse's channel between browsers and runners: a job's terminal
//! (`/-/jobs/<id>/terminal.ws`, WH-1..5) and, for a Web IDE terminal, its
//! services (`/-/jobs/<id>/proxy.ws`, WI-3; plain HTTP in `service_proxy`, WI-4).

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
use super::service_proxy;
use super::ws::{self, Dialed, Trust, Ws};
use crate::scenario::ProxyTarget;
use crate::trace::{Authorization, Carries, Link, Pings, Recorder, What};

/// WH-3: Workhorse pings the browser and re-authorizes on these periods.
pub const BROWSER_PING: Duration = Duration::from_secs(30);
pub const REAUTHORIZE: Duration = Duration::from_secs(5 * 60);
/// How long Workhorse lets the shell answer the EOT before it closes (WH-5).
const EOT_GRACE: Duration = Duration::from_secs(1);
/// The header that stands for the browser's GitLab login in this world.
pub const USER_HEADER: &str = "x-gitlab-user";
/// The cookie a page of this GitLab is logged in with (`serve`'s user
/// switcher): a page's WebSocket cannot send the login header.
pub const LOGIN_COOKIE: &str = "harness_user";

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
                        jobs(request, net, gitlab, recorder).await
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

/// What a channel reaches on the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    /// The job's terminal, `<session>/exec` (WH-1).
    Terminal,
    /// One of the job's services, `<session>/proxy/<target>` (WI-3).
    Service(ProxyTarget),
}

impl Route {
    /// Rails' answer for `user` (AU-2 or WI-2), the browser having offered `offered`.
    fn authorize(
        &self,
        gitlab: &Gitlab,
        user: Option<&str>,
        job: u64,
        offered: &[String],
    ) -> Result<TerminalSpec, super::gitlab::Denied> {
        match self {
            Route::Terminal => gitlab.authorize(user, job),
            Route::Service(_) => gitlab.authorize_proxy(user, job, offered),
        }
    }

    /// The runner's URL for it, from the session URL Rails gave.
    fn url(&self, spec: &TerminalSpec) -> String {
        let session = spec.url.replacen("https://", "wss://", 1);
        match self {
            Route::Terminal => format!("{session}/exec"),
            Route::Service(target) => format!("{session}/proxy/{target}"),
        }
    }

    /// What the connection to the runner carries.
    fn carries(&self) -> Carries {
        match self {
            Route::Terminal => Carries::Terminal,
            Route::Service(_) => Carries::Service,
        }
    }
}

/// `/-/jobs/<id>/...`: the terminal, or a Web IDE terminal's service proxy.
async fn jobs<N: Net>(
    request: Request<Incoming>,
    net: N,
    gitlab: Gitlab,
    recorder: Recorder,
) -> Response<Full<Bytes>> {
    let Some((job, rest)) = request
        .uri()
        .path()
        .strip_prefix("/-/jobs/")
        .and_then(|r| r.split_once('/'))
        .and_then(|(id, rest)| Some((id.parse::<u64>().ok()?, rest.to_string())))
    else {
        return reply(StatusCode::NOT_FOUND, b"not found".to_vec());
    };
    let query = request.uri().query().unwrap_or("").to_string();
    match rest.as_str() {
        "terminal.ws" => channel(request, net, gitlab, recorder, job, Route::Terminal).await,
        "proxy.ws" => {
            let route = Route::Service(ProxyTarget::from_query(&query));
            channel(request, net, gitlab, recorder, job, route).await
        }
        "proxy" => service_proxy::http(request, net, gitlab, recorder, job).await,
        _ => reply(StatusCode::NOT_FOUND, b"not found".to_vec()),
    }
}

/// WH-1/2, WI-3: authorize, dial the runner, then upgrade the browser.
async fn channel<N: Net>(
    mut request: Request<Incoming>,
    net: N,
    gitlab: Gitlab,
    recorder: Recorder,
    job: u64,
    route: Route,
) -> Response<Full<Bytes>> {
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
        let route = match route {
            Route::Terminal => "terminal.ws",
            Route::Service(_) => "proxy.ws",
        };
        return reply(
            StatusCode::BAD_REQUEST,
            format!("{route} takes WebSocket upgrades only").into_bytes(),
        );
    };
    let user = user_of(headers);
    let offered = ws::offered_protocols(headers);
    let authorized = route.authorize(&gitlab, user.as_deref(), job, &offered);
    let rule = match &route {
        Route::Terminal if !gitlab.is_webide(job) => "AU-2",
        // A Web IDE terminal's terminal is authorized as its services are.
        Route::Terminal | Route::Service(_) => "WI-2",
    };
    let service = match &route {
        Route::Terminal => None,
        Route::Service(target) => Some(target.to_string()),
    };
    record_authorization(&recorder, rule, user.as_deref(), job, &authorized, service);
    let spec = match authorized {
        Ok(spec) => spec,
        Err(denied) => {
            let status = StatusCode::from_u16(denied.status).unwrap_or(StatusCode::FORBIDDEN);
            return reply(status, denied.reason.as_bytes().to_vec());
        }
    };
    let protocol = offered
        .iter()
        .find(|p| spec.subprotocols.contains(p))
        .cloned();

    // WH-2: the runner first; a failure is an HTTP error for the browser, not an upgrade.
    let runner = match dial_runner(&net, &route, &spec, protocol.as_deref()).await {
        Ok(runner) => runner,
        Err((event, rule)) => {
            recorder.record("workhorse", Some(rule), What::RunnerLink { job, event });
            let what = match route {
                Route::Terminal => "cannot connect to the runner's terminal",
                Route::Service(_) => "cannot connect to the job's service through the runner",
            };
            return reply(StatusCode::BAD_GATEWAY, what.as_bytes().to_vec());
        }
    };
    let (rule, event) = match &route {
        Route::Terminal => ("WH-2", Link::Connected),
        Route::Service(target) => (
            "WI-3",
            Link::ConnectedToService {
                target: target.to_string(),
            },
        ),
    };
    recorder.record("workhorse", Some(rule), What::RunnerLink { job, event });
    let on_upgrade = hyper::upgrade::on(&mut request);
    let channel = Channel {
        job,
        user,
        route,
        offered,
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

/// The signed-in user this world's login header names.
pub(super) fn user_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(USER_HEADER)
        .and_then(|u| u.to_str().ok())
        .map(str::to_string)
}

/// Who a page is logged in as: its [`LOGIN_COOKIE`].
pub fn cookie_user(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// Rails' verdict in the trace (`rule`: AU-2 or WI-2; `service`: the job's
/// service asked for, `None` for the terminal).
pub(super) fn record_authorization(
    recorder: &Recorder,
    rule: &str,
    user: Option<&str>,
    job: u64,
    authorized: &Result<TerminalSpec, super::gitlab::Denied>,
    service: Option<String>,
) {
    let verdict = match authorized {
        Ok(_) => Authorization::Allowed { service },
        Err(denied) => Authorization::Denied {
            status: denied.status,
            reason: denied.reason.to_string(),
            service,
        },
    };
    recorder.record(
        "rails",
        Some(rule),
        What::Authorize {
            user: user.unwrap_or("(anonymous)").to_string(),
            job,
            verdict,
        },
    );
}

async fn dial_runner<N: Net>(
    net: &N,
    route: &Route,
    spec: &TerminalSpec,
    protocol: Option<&str>,
) -> Result<Ws, (Link, &'static str)> {
    let url = route.url(spec);
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
            Link::Refused { status, body },
            match route {
                Route::Terminal => status_rule(status),
                Route::Service(_) => proxy_status_rule(status),
            },
        )),
        Dialed::Failed(why) if why.starts_with("TLS") => Err((Link::Unreachable { why }, "TLS-2")),
        Dialed::Failed(why) => Err((Link::Unreachable { why }, "DP-1")),
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

/// The SPEC rule that a runner's refusal of a proxy request shows.
pub(super) fn proxy_status_rule(status: u16) -> &'static str {
    match status {
        401 => "EX-1",
        404 => "RT-1",
        _ => "WI-5",
    }
}

/// One open channel: a terminal, or a service through the proxy.
struct Channel {
    job: u64,
    user: Option<String>,
    route: Route,
    /// The browser's subprotocols, for re-authorization (WI-3).
    offered: Vec<String>,
    spec: TerminalSpec,
    protocol: Option<String>,
    gitlab: Gitlab,
    recorder: Recorder,
}

impl Channel {
    fn note(&self, rule: &str, event: Link) {
        self.recorder.record(
            "workhorse",
            Some(rule),
            What::RunnerLink {
                job: self.job,
                event,
            },
        );
    }

    fn runner_closed(&self, frame: Option<&CloseFrame>, pings: String) -> Link {
        Link::RunnerClosed {
            carries: self.route.carries(),
            code: frame.map(|f| u16::from(f.code)),
            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
            pings,
        }
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
                    self.note("WH-4", Link::MaxSessionTime);
                    let _ = to_browser.send(close(CloseCode::Normal, "session time limit reached")).await;
                    let _ = to_runner.send(close(CloseCode::Normal, "")).await;
                    return;
                }
                _ = reauthorize.tick() => {
                    match self.route.authorize(&self.gitlab, self.user.as_deref(), self.job, &self.offered) {
                        Ok(spec) if spec == self.spec => {}
                        outcome => {
                            let why = match outcome { Ok(_) => "the terminal spec changed".to_string(), Err(d) => format!("{} ({})", d.status, d.reason) };
                            self.note("WH-3", Link::ReauthorizationFailed { why });
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
                            self.note("WH-2", Link::Lost);
                            return;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    // WH-5: the browser went away: EOT to the shell, then close.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        self.note("WH-5", Link::BrowserLeft { pings: runner_pings.summary("from the runner") });
                        let _ = to_browser.close().await;
                        let _ = to_runner.send(ws::data(protocol, &[0x04])).await;
                        // This model gives the shell a moment to answer the EOT before
                        // the close goes out, so that the answer shows in traces.
                        let mut rest = Vec::new();
                        let mut runner_closed = None;
                        let _ = tokio::time::timeout(EOT_GRACE, async {
                            while let Some(Ok(message)) = from_runner.next().await {
                                if let Message::Close(frame) = &message {
                                    runner_closed = Some(frame.clone());
                                    break;
                                }
                                rest.extend(ws::payload(protocol, &message).unwrap_or_default());
                            }
                        })
                        .await;
                        if !rest.is_empty() {
                            self.note("WH-5", Link::LastOutput { carries: self.route.carries(), preview: crate::trace::preview(&rest) });
                        }
                        match runner_closed {
                            Some(frame) => self.note("WS-7", self.runner_closed(frame.as_ref(), String::new())),
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
                        self.note("WS-6", self.runner_closed(frame.as_ref(), runner_pings.summary("from the runner")));
                        let _ = to_browser.send(Message::Close(frame)).await;
                        return;
                    }
                    // The runner dropped the connection without a close frame: so does Workhorse.
                    Some(Err(_)) | None => {
                        // A service's connection is cut when the job's session ends (WI-6).
                        let rule = match self.route { Route::Terminal => "WS-6", Route::Service(_) => "WI-6" };
                        self.note(rule, Link::EndedWithoutClose { pings: runner_pings.summary("from the runner") });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_cookie_names_the_user() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=b; harness_user=alice".parse().unwrap(),
        );
        assert_eq!(cookie_user(&headers).as_deref(), Some("alice"));
        headers.insert(http::header::COOKIE, "harness_user=".parse().unwrap());
        assert_eq!(cookie_user(&headers), None);
    }
}
