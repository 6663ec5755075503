//! A browser: opens a job's terminal through GitLab (or straight at the runner),
//! types, and records everything it receives.

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use session_server::net::Net;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::gitlab::Gitlab;
use super::workhorse::USER_HEADER;
use super::ws::{self, Dialed, Trust, Ws};
use crate::trace::{preview, Close, Recorder, What};

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

    /// Opens job `job`'s terminal offering `protocols`.
    pub async fn open(&mut self, job: u64, via: &Via, protocols: &[String]) {
        self.leave().await;
        let (target, url, trust_pem, headers, spec) = match via {
            Via::Gitlab { entry } => {
                let url = format!("ws://{entry}/-/jobs/{job}/terminal.ws");
                (
                    format!("GitLab /-/jobs/{job}/terminal.ws"),
                    url,
                    None,
                    self.user.iter().map(|u| (USER_HEADER, u.clone())).collect(),
                    "WH-1",
                )
            }
            Via::Direct { token, insecure } => {
                let Some(session) = self.gitlab.session(job) else {
                    self.record(
                        None,
                        What::Injected {
                            description: format!(
                                "cannot open job {job} directly: GitLab knows no session for it"
                            ),
                        },
                    );
                    return;
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
                let headers = token
                    .map(|t| vec![("authorization", t)])
                    .unwrap_or_default();
                let url = format!("{}/exec", session.url.replacen("https://", "wss://", 1));
                let trust = if *insecure {
                    None
                } else {
                    Some(session.certificate.clone())
                };
                (
                    format!("the runner's session of job {job} directly"),
                    url,
                    trust,
                    headers,
                    "EX-1",
                )
            }
        };
        let answer_spec = if spec == "WH-1" { "WH-2" } else { "EX-6" };
        self.record(
            Some(spec),
            What::Open {
                browser: self.name.clone(),
                target,
                protocols: protocols.to_vec(),
            },
        );
        let trust = match (&via, &trust_pem) {
            (Via::Gitlab { .. }, _) => None,
            (_, Some(pem)) => Some(Trust::Pem(pem)),
            (_, None) => Some(Trust::Anything),
        };
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
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
            Dialed::Failed(why) => {
                self.record(
                    None,
                    What::Answer {
                        browser: self.name.clone(),
                        status: 0,
                        protocol: None,
                        body: why,
                    },
                );
            }
        }
    }

    /// Types `text` into the open terminal.
    pub async fn type_text(&mut self, text: &[u8]) {
        let name = self.name.clone();
        let Some(conn) = self.open.as_mut().filter(|c| !c.reader.is_finished()) else {
            self.record(
                None,
                What::Injected {
                    description: format!("{name} has no open terminal to type into"),
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
                    description: "drops its connection without a close frame".into(),
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
                if let Some(bytes) = ws::payload(protocol.as_deref(), &message) {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    recorder.record(
                        &name,
                        None,
                        What::Output {
                            browser: name.clone(),
                            bytes: bytes.len(),
                            frames: 1,
                            preview: preview(&bytes),
                            text,
                        },
                    );
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
