//! A browser: opens a job's terminal through GitLab (or straight at the runner),
//! or a Web IDE terminal's service through GitLab's proxy (WebSocket or HTTP),
//! types, and records everything it receives.

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use session_server::net::Net;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::exchange;
use super::gitlab::Gitlab;
use super::plain;
use super::workhorse::USER_HEADER;
use super::ws::{self, Dialed, Trust, Ws};
use crate::scenario::{ProxyTarget, Shape};
use crate::trace::{preview, Close, Endpoint, Injected, Recorder, Target, What};

/// Which token a direct connection carries: the scenario's choice.
pub use crate::scenario::Token;

/// Where the first half of a token ends (on a character boundary).
fn own_half(token: &str) -> usize {
    (0..=token.len() / 2)
        .rev()
        .find(|i| token.is_char_boundary(*i))
        .unwrap_or(0)
}

/// Where a browser opens the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through Workhorse at `entry` (`gitlab:80`, or a proxy in front of it).
    Gitlab { entry: String },
    /// Straight at the session URL GitLab knows, bypassing GitLab.
    Direct { token: Token, insecure: bool },
    /// A service of the job through Workhorse's `proxy.ws` at `entry` (WI-3).
    Service { entry: String, target: ProxyTarget },
}

pub struct Browser<N: Net> {
    pub name: String,
    /// Signed in as; `None`: anonymous.
    user: Option<String>,
    net: N,
    gitlab: Gitlab,
    recorder: Recorder,
    open: Option<Connection>,
}

/// Where a request for a terminal goes (see [`Browser::target`]).
struct Request {
    /// How the trace names it.
    target: Target,
    url: String,
    /// The session's certificate to trust (TLS-2); `None`: anything, or plain.
    trust_pem: Option<String>,
    headers: Vec<(&'static str, String)>,
    /// The rule the request is made under.
    spec: &'static str,
}

struct Connection {
    sink: SplitSink<Ws, Message>,
    protocol: Option<String>,
    reader: JoinHandle<()>,
}

impl<N: Net> Browser<N> {
    pub fn new(
        name: &str,
        user: Option<String>,
        net: N,
        gitlab: Gitlab,
        recorder: Recorder,
    ) -> Self {
        Browser {
            name: name.into(),
            user,
            net,
            gitlab,
            recorder,
            open: None,
        }
    }

    fn record(&self, spec: Option<&str>, what: What) {
        self.recorder.record(&self.name, spec, what);
    }

    /// Records an answer other than 101 (`status` 0: no HTTP answer, `body` says why).
    fn refused(&self, status: u16, body: String) {
        self.record(
            None,
            What::Answer {
                browser: self.name.clone(),
                status,
                protocol: None,
                body,
            },
        );
    }

    /// Where a request for job `job`'s terminal goes, and what it carries;
    /// `None` (recorded) when a direct request has no session URL to go to.
    fn target(&self, job: u64, via: &Via) -> Option<Request> {
        match via {
            Via::Gitlab { entry } => Some(Request {
                target: Target::new(job, Endpoint::Terminal),
                url: format!("ws://{entry}/-/jobs/{job}/terminal.ws"),
                trust_pem: None,
                headers: self.user.iter().map(|u| (USER_HEADER, u.clone())).collect(),
                spec: "WH-1",
            }),
            Via::Service { entry, target } => Some(Request {
                target: Target::new(
                    job,
                    Endpoint::ServiceWebSocket {
                        proxy: target.to_string(),
                    },
                ),
                url: format!("ws://{entry}/-/jobs/{job}/proxy.ws?{}", target.query()),
                trust_pem: None,
                headers: self.user.iter().map(|u| (USER_HEADER, u.clone())).collect(),
                spec: "WI-3",
            }),
            Via::Direct { token, insecure } => {
                let Some(session) = self.gitlab.session(job) else {
                    self.record(
                        None,
                        What::Injected {
                            description: Injected::NoSession { job },
                        },
                    );
                    return None;
                };
                let token = match token {
                    Token::Own => Some(session.authorization.clone()),
                    Token::None => None,
                    Token::Empty => Some(String::new()),
                    Token::Wrong => Some("0".repeat(64)),
                    Token::Bearer => Some(format!("Bearer {}", session.authorization)),
                    Token::Prefix => {
                        Some(session.authorization[..own_half(&session.authorization)].to_string())
                    }
                    Token::Appended => Some(format!("{}0", session.authorization)),
                    Token::OtherCase => Some(session.authorization.to_uppercase()),
                    Token::OfJob(other) => self.gitlab.session(*other).map(|s| s.authorization),
                };
                Some(Request {
                    target: Target::new(job, Endpoint::Session),
                    url: format!("{}/exec", session.url),
                    trust_pem: (!*insecure).then(|| session.certificate.clone()),
                    headers: token
                        .map(|t| vec![("authorization", t)])
                        .unwrap_or_default(),
                    spec: "EX-1",
                })
            }
        }
    }

    /// Sends job `job`'s terminal endpoint a request that is not a WebSocket
    /// upgrade (`shape`), straight at the runner, and records its answer (EX-2,
    /// WS-8). An open terminal of this browser stays open.
    pub async fn request(&mut self, job: u64, via: &Via, shape: Shape) {
        let Some(Request {
            target,
            url,
            trust_pem,
            headers,
            ..
        }) = self.target(job, via)
        else {
            return;
        };
        self.record(
            Some(if shape == Shape::Http10Upgrade {
                "WS-8"
            } else {
                "EX-2"
            }),
            What::Open {
                browser: self.name.clone(),
                target: target.noting(shape.describe()),
                protocols: Vec::new(),
            },
        );
        let trust = trust_pem.as_deref().map_or(Trust::Anything, Trust::Pem);
        let (status, body) = plain::send(&self.net, &url, trust, shape, &headers)
            .await
            .unwrap_or_else(|why| (0, why));
        self.refused(status, body);
    }

    /// Opens job `job`'s terminal offering `protocols`.
    pub async fn open(&mut self, job: u64, via: &Via, protocols: &[String]) {
        self.leave().await;
        let Some(Request {
            target,
            url,
            trust_pem,
            headers,
            spec,
        }) = self.target(job, via)
        else {
            return;
        };
        let answer_spec = match spec {
            "WH-1" => "WH-2",
            "WI-3" => "WI-5",
            _ => "EX-6",
        };
        self.record(
            Some(spec),
            What::Open {
                browser: self.name.clone(),
                target,
                protocols: protocols.to_vec(),
            },
        );
        let trust = match (&via, &trust_pem) {
            (Via::Gitlab { .. } | Via::Service { .. }, _) => None,
            (_, Some(pem)) => Some(Trust::Pem(pem)),
            (_, None) => Some(Trust::Anything),
        };
        let url = url.replacen("https://", "wss://", 1);
        match ws::dial(&self.net, &url, trust, &headers, protocols).await {
            Dialed::Open { ws, protocol } => {
                self.record(
                    Some(answer_spec),
                    What::Answer {
                        browser: self.name.clone(),
                        status: 101,
                        protocol: protocol.clone(),
                        body: String::new(),
                    },
                );
                let (sink, stream) = ws.split();
                let reader = tokio::spawn(read(
                    stream,
                    protocol.clone(),
                    self.name.clone(),
                    self.recorder.clone(),
                ));
                self.open = Some(Connection {
                    sink,
                    protocol,
                    reader,
                });
            }
            Dialed::Refused { status, body } => {
                self.refused(status, body);
            }
            Dialed::Failed(why) => {
                self.refused(0, why);
            }
        }
    }

    /// `GET`s `target`, a service of job `job`, through Workhorse's HTTP
    /// proxy at `entry` (WI-4); records the answer, whose body a scenario's
    /// `sees` reads when it is a success.
    pub async fn fetch(&mut self, job: u64, entry: &str, target: &ProxyTarget) {
        self.record(
            Some("WI-4"),
            What::Fetch {
                browser: self.name.clone(),
                target: Target::new(
                    job,
                    Endpoint::ServiceHttp {
                        proxy: target.to_string(),
                    },
                ),
            },
        );
        let path = format!("/-/jobs/{job}/proxy?{}", target.query());
        let headers: Vec<(&str, String)> =
            self.user.iter().map(|u| (USER_HEADER, u.clone())).collect();
        let (status, body) = match exchange::get(&self.net, entry, None, &path, &headers).await {
            Ok((status, body)) => (status, String::from_utf8_lossy(&body).into_owned()),
            Err(why) => (0, why),
        };
        let spec = (200..300).contains(&status).then_some("WI-5");
        self.record(
            spec,
            What::Answer {
                browser: self.name.clone(),
                status,
                protocol: None,
                body,
            },
        );
    }

    /// Types `text` into the open terminal.
    pub async fn type_text(&mut self, text: &[u8]) {
        let name = self.name.clone();
        let Some(conn) = self.open.as_mut().filter(|c| !c.reader.is_finished()) else {
            self.record(
                None,
                What::Injected {
                    description: Injected::NothingToTypeInto { browser: name },
                },
            );
            return;
        };
        let message = ws::data(conn.protocol.as_deref(), text);
        let sent = conn.sink.send(message).await.is_ok();
        let what = What::Typed {
            browser: name,
            bytes: text.len(),
            preview: preview(text),
            text: String::from_utf8_lossy(text).into_owned(),
        };
        if sent {
            self.record(None, what);
        }
    }

    /// Closes the terminal with a close frame (1000) and waits for the answer (WS-7).
    pub async fn close(&mut self) {
        if let Some(mut conn) = self.open.take() {
            let normal = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            };
            let _ = conn.sink.send(Message::Close(Some(normal))).await;
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(10), &mut conn.reader).await;
            conn.reader.abort();
        }
    }

    /// Drops the connection without a close frame, like a closed laptop lid (WS-7).
    pub async fn vanish(&mut self) {
        if let Some(conn) = self.open.take() {
            conn.reader.abort();
            drop(conn.sink);
            self.record(
                None,
                What::Injected {
                    description: Injected::Vanished,
                },
            );
        }
    }

    /// True while a terminal connection is open.
    pub fn connected(&self) -> bool {
        self.open.as_ref().is_some_and(|c| !c.reader.is_finished())
    }

    /// Waits until the open connection ends by itself.
    pub async fn closed(&mut self) {
        if let Some(conn) = self.open.as_mut() {
            let _ = (&mut conn.reader).await;
        }
    }

    async fn leave(&mut self) {
        if self.connected() {
            self.close().await;
        }
        self.open = None;
    }
}

/// Records output, pings and the close of one connection.
async fn read(
    mut stream: futures_util::stream::SplitStream<Ws>,
    protocol: Option<String>,
    name: String,
    recorder: Recorder,
) {
    let mut pings = crate::trace::Pings::default();
    let close = loop {
        match stream.next().await {
            Some(Ok(Message::Close(frame))) => {
                break frame.map_or(
                    Close::Frame {
                        code: 1005,
                        reason: String::new(),
                    },
                    |f| Close::Frame {
                        code: u16::from(f.code),
                        reason: f.reason.to_string(),
                    },
                )
            }
            Some(Ok(Message::Ping(_))) => {
                pings.saw(recorder.now());
                recorder.record(
                    &name,
                    Some("WH-3"),
                    What::Ping {
                        browser: name.clone(),
                    },
                );
            }
            Some(Ok(message)) => {
                if let Some((rule, problem)) = ws::frame_problem(protocol.as_deref(), &message) {
                    recorder.record(
                        &name,
                        Some(rule),
                        What::Malformed {
                            browser: name.clone(),
                            problem,
                        },
                    );
                }
                if let Some(bytes) = ws::payload(protocol.as_deref(), &message) {
                    recorder.record(&name, None, What::output(&name, &bytes));
                }
            }
            Some(Err(_)) | None => break Close::Abnormal,
        }
    };
    let spec = match &close {
        Close::Abnormal => "WS-6",
        Close::Frame { code: 1000, .. } => "WS-7",
        _ => "WS-6",
    };
    recorder.record(
        &name,
        Some(spec),
        What::Closed {
            browser: name.clone(),
            close,
            pings: pings.summary("from GitLab"),
        },
    );
}
