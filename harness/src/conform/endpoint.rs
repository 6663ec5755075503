//! Endpoint-level conformance: the checks that need only a session (its URL,
//! token and certificate, as the job request carries them: JOB-2) and no control
//! over its job. A fixed list of cases, run in order, each naming its SPEC ids;
//! the harness talks to the session as Workhorse does (TLS trusting only the
//! session certificate, the token in `Authorization`).
//!
//! The session's job must go on running its script meanwhile (`sleep 600`):
//! once the script has ended, closing a terminal lets the job finish (LC-2) and
//! its session is gone (LC-7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::world::gitlab::SessionInfo;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use session_server::net::TokioNet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::report::CaseReport;
use crate::expect::{Failure, Verdict};
use crate::world::ws::{self, Dialed, Trust, Ws};

const TERMINAL: &str = "terminal.gitlab.com";
const BASE64: &str = "base64.terminal.gitlab.com";
/// Longest a case may take.
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// Longest to wait for a shell's answer or a close.
const ANSWER: Duration = Duration::from_secs(5);
/// A runner frees the session's terminal slot (EX-4) as the previous connection
/// ends, which a client cannot observe: an open meets 423 for this long at most.
const SLOT_FREED: Duration = Duration::from_secs(3);

struct Case {
    name: &'static str,
    spec: &'static [&'static str],
    title: &'static str,
}

#[rustfmt::skip]
const CASES: [Case; 14] = [
    Case { name: "tls", spec: &["TLS-1", "TLS-2"], title: "TLS 1.2+ with the session certificate as the only root" },
    Case { name: "unknown-session", spec: &["RT-1"], title: "Another session id is 404" },
    Case { name: "id-prefix", spec: &["RT-1"], title: "A path that only starts with the session's id is 404" },
    Case { name: "unknown-endpoint", spec: &["RT-2"], title: "A path in the session other than exec and proxy is 404" },
    Case { name: "no-token", spec: &["EX-1"], title: "No Authorization header is 401" },
    Case { name: "wrong-token", spec: &["EX-1"], title: "A wrong token is 401" },
    Case { name: "bearer-token", spec: &["EX-1", "EX-7"], title: "'Bearer <token>' is 401: the header must be the token" },
    Case { name: "not-an-upgrade", spec: &["EX-2"], title: "A request that is not a WebSocket upgrade is 405" },
    Case { name: "terminal-protocol", spec: &["EX-6", "WS-1", "WS-2"], title: "terminal.gitlab.com: 101, binary frames both ways" },
    Case { name: "base64-protocol", spec: &["WS-1", "WS-3"], title: "base64.terminal.gitlab.com: 101, base64 in text frames both ways" },
    Case { name: "no-subprotocol", spec: &["WS-1"], title: "No subprotocol offered: 101 without one, raw bytes flow" },
    Case { name: "second-terminal", spec: &["EX-4"], title: "A second terminal is 423 whatever it offers; the first goes on" },
    Case { name: "client-close", spec: &["WS-7"], title: "A client's close 1000 is answered with close 1000" },
    Case { name: "shell-exit", spec: &["WS-7"], title: "exit ends the connection; the next one gets a new shell" },
];

/// How many cases [`run`] reports.
pub const COUNT: usize = CASES.len();

/// The session under test, and where its parts are.
pub struct Target {
    session: SessionInfo,
    /// `host:port`
    address: String,
    /// `wss://host:port/session/<id>`
    base: String,
}

impl Target {
    pub fn new(session: SessionInfo) -> Result<Target, String> {
        let rest = session.url.strip_prefix("https://").ok_or_else(|| {
            format!(
                "the session URL {:?} is not https:// (CFG-2: the advertised URL is https:// + advertise_address)",
                session.url
            )
        })?;
        let address = rest.split('/').next().unwrap_or(rest).to_string();
        let base = format!("wss://{}", rest.trim_end_matches('/'));
        Ok(Target {
            session,
            address,
            base,
        })
    }

    fn exec(&self) -> String {
        format!("{}/exec", self.base)
    }
}

/// Reports every case without running it, for `why`: failed (the runner gave
/// no session to check), or skipped.
pub fn unrun(why: &str, failed: bool, report: &mut dyn FnMut(CaseReport)) {
    for case in &CASES {
        let (id, spec) = (case.id(), case.spec());
        let error = Some(why.to_string());
        report(if failed {
            CaseReport::judged(
                &id,
                case.title,
                &spec,
                Verdict::default(),
                error,
                Duration::ZERO,
            )
        } else {
            CaseReport::skipped(&id, case.title, &spec, why.to_string())
        });
    }
}

impl Case {
    fn id(&self) -> String {
        format!("endpoint/{}", self.name)
    }
    fn spec(&self) -> Vec<String> {
        self.spec.iter().map(|s| s.to_string()).collect()
    }
}

/// Runs every case against `target`, in order, handing each result to `report`.
pub async fn run(target: &Target, report: &mut dyn FnMut(CaseReport)) {
    let mut no_tls = None;
    for case in &CASES {
        let (id, spec) = (case.id(), case.spec());
        if let Some(why) = &no_tls {
            report(CaseReport::skipped(
                &id,
                case.title,
                &spec,
                String::clone(why),
            ));
            continue;
        }
        let started = Instant::now();
        let checked = tokio::time::timeout(CASE_LIMIT, check(case.name, target))
            .await
            .unwrap_or_else(|_| {
                Err(failure(
                    "the case's end",
                    format!("within {} s", CASE_LIMIT.as_secs()),
                    "still waiting (a request or a close that never came)",
                ))
            });
        let verdict = match checked {
            Ok(non_strict) => Verdict {
                failures: Vec::new(),
                non_strict,
            },
            Err(f) => Verdict {
                failures: vec![f],
                non_strict: Vec::new(),
            },
        };
        if case.name == "tls" && !verdict.passed() {
            no_tls = Some("needs a TLS connection to the session (endpoint/tls failed)".into());
        }
        report(CaseReport::judged(
            &id,
            case.title,
            &spec,
            verdict,
            None,
            started.elapsed(),
        ));
    }
}

/// `Ok`: passed, with the notes of a non-strict pass.
type Checked = Result<Vec<String>, Failure>;

fn failure(check: &str, expected: impl Into<String>, observed: impl Into<String>) -> Failure {
    Failure {
        check: check.into(),
        expected: expected.into(),
        observed: observed.into(),
    }
}

async fn check(name: &str, t: &Target) -> Checked {
    let token = t.session.authorization.clone();
    let with_token = Some(token.clone());
    match name {
        "tls" => {
            let tls = Some(Trust::Pem(&t.session.certificate));
            match ws::connect(&TokioNet, &t.address, tls).await {
                Ok(_) => Ok(Vec::new()),
                Err(why) => Err(failure(
                    "TLS handshake with the session",
                    "a TLS 1.2 or 1.3 session, trusting only the session certificate",
                    why,
                )),
            }
        }
        "unknown-session" => {
            let (endpoint, id) = t.base.rsplit_once('/').unwrap_or((&t.base, ""));
            let other = if id.starts_with('0') { "1" } else { "0" }.repeat(id.len().max(64));
            refused(t, &format!("{endpoint}/{other}/exec"), with_token, 404).await
        }
        "id-prefix" => refused(t, &format!("{}0/exec", t.base), with_token, 404).await,
        "unknown-endpoint" => refused(t, &format!("{}/shell", t.base), with_token, 404).await,
        "no-token" => refused(t, &t.exec(), None, 401).await,
        "wrong-token" => refused(t, &t.exec(), Some("0".repeat(token.len().max(1))), 401).await,
        "bearer-token" => refused(t, &t.exec(), Some(format!("Bearer {token}")), 401).await,
        "not-an-upgrade" => match plain_get(t, &token).await {
            Ok(405) => Ok(Vec::new()),
            Ok(status) => Err(failure(
                "a GET of exec without Upgrade",
                "405",
                status.to_string(),
            )),
            Err(why) => Err(failure("a GET of exec without Upgrade", "405", why)),
        },
        "terminal-protocol" => speaks(t, &[TERMINAL], Some(TERMINAL)).await,
        "base64-protocol" => speaks(t, &[BASE64], Some(BASE64)).await,
        "no-subprotocol" => speaks(t, &[], None).await,
        "second-terminal" => second_terminal(t).await,
        "client-close" => {
            let (mut first, _) = terminal(t, &[TERMINAL]).await?;
            match close(&mut first).await {
                End::Frame(Some(1000)) => Ok(Vec::new()),
                other => Err(failure(
                    "the answer to a close 1000",
                    "close 1000",
                    other.describe(),
                )),
            }
        }
        "shell-exit" => {
            let (mut first, protocol) = terminal(t, &[TERMINAL]).await?;
            first
                .send(ws::data(protocol.as_deref(), b"exit\r"))
                .await
                .map_err(|e| failure("typing exit", "sent", e.to_string()))?;
            let notes = match end_of(&mut first).await {
                End::Frame(_) => Vec::new(),
                End::Dropped => {
                    vec!["after exit: no close frame, as the reference does (WS-6)".into()]
                }
                still @ End::StillOpen => {
                    return Err(failure(
                        "the connection after exit",
                        "closed",
                        still.describe(),
                    ))
                }
            };
            let (mut next, protocol) = terminal(t, &[TERMINAL]).await?;
            echo(&mut next, protocol.as_deref(), "shell-exit").await?;
            close(&mut next).await;
            Ok(notes)
        }
        other => unreachable!("no case {other}"),
    }
}

/// An upgrade of `url` with `token` must get `status`.
async fn refused(t: &Target, url: &str, token: Option<String>, status: u16) -> Checked {
    let headers: Vec<(&str, String)> = token
        .map(|v| vec![("authorization", v)])
        .unwrap_or_default();
    let tls = Some(Trust::Pem(&t.session.certificate));
    let dialed = ws::dial(&TokioNet, url, tls, &headers, &[TERMINAL.to_string()]).await;
    let check = format!("a terminal request to {}", redact(url, t));
    match dialed {
        Dialed::Refused { status: got, .. } if got == status => Ok(Vec::new()),
        Dialed::Refused { status: got, body } => {
            Err(failure(&check, status.to_string(), format!("{got} {body}")))
        }
        Dialed::Open { mut ws, .. } => {
            close(&mut ws).await;
            Err(failure(&check, status.to_string(), "101: a terminal"))
        }
        Dialed::Failed(why) => Err(failure(
            &check,
            status.to_string(),
            format!("no HTTP answer: {why}"),
        )),
    }
}

/// The session's URL without its secret parts, for a report.
fn redact(url: &str, t: &Target) -> String {
    url.replace(&t.base, "<session>")
}

/// A terminal offering `offered` must be 101 with `selected`, and a command's
/// output must come back in that protocol's frames (WS-1..3).
async fn speaks(t: &Target, offered: &[&str], selected: Option<&str>) -> Checked {
    let (mut terminal, protocol) = terminal(t, offered).await?;
    let check = "the subprotocol the answer selects";
    if protocol.as_deref() != selected {
        close(&mut terminal).await;
        return Err(failure(
            check,
            format!("{selected:?}"),
            format!("{protocol:?}"),
        ));
    }
    let seen = echo(&mut terminal, protocol.as_deref(), "speaks").await;
    close(&mut terminal).await;
    let seen = seen?;
    let wanted = if protocol.as_deref() == Some(BASE64) {
        "text"
    } else {
        "binary"
    };
    match seen.kinds.iter().find(|k| **k != wanted) {
        Some(other) => Err(failure(
            "the output's frames",
            format!("{wanted} frames only"),
            format!("a {other} frame"),
        )),
        None => Ok(Vec::new()),
    }
}

/// EX-4: while one terminal is open, others are 423 whatever they offer.
async fn second_terminal(t: &Target) -> Checked {
    let (mut first, protocol) = terminal(t, &[TERMINAL]).await?;
    for offered in [TERMINAL, BASE64] {
        let again = dial(t, &[offered]).await;
        let got = match again {
            Dialed::Refused { status, .. } => status.to_string(),
            Dialed::Open { mut ws, .. } => {
                close(&mut ws).await;
                "101: a second terminal".into()
            }
            Dialed::Failed(why) => format!("no HTTP answer: {why}"),
        };
        if got != "423" {
            close(&mut first).await;
            return Err(failure(
                &format!("a second terminal offering {offered}"),
                "423",
                got,
            ));
        }
    }
    let still = echo(&mut first, protocol.as_deref(), "first").await;
    close(&mut first).await;
    still.map(|_| Vec::new())
}

async fn dial(t: &Target, offered: &[&str]) -> Dialed {
    let headers = [("authorization", t.session.authorization.clone())];
    let protocols: Vec<String> = offered.iter().map(|p| p.to_string()).collect();
    let tls = Some(Trust::Pem(&t.session.certificate));
    ws::dial(&TokioNet, &t.exec(), tls, &headers, &protocols).await
}

/// An open terminal offering `offered`: its connection and selected subprotocol.
async fn terminal(t: &Target, offered: &[&str]) -> Result<(Ws, Option<String>), Failure> {
    let give_up = Instant::now() + SLOT_FREED;
    let check = format!("a terminal request offering {offered:?}");
    loop {
        match dial(t, offered).await {
            Dialed::Open { ws, protocol } => return Ok((ws, protocol)),
            Dialed::Refused { status: 423, .. } if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Dialed::Refused { status, body } => {
                let hint = if status == 404 {
                    " (is the session's job still running its script?)"
                } else {
                    ""
                };
                return Err(failure(&check, "101", format!("{status} {body}{hint}")));
            }
            Dialed::Failed(why) => {
                return Err(failure(&check, "101", format!("no HTTP answer: {why}")))
            }
        }
    }
}

/// What a terminal sent back.
struct Seen {
    /// The kinds of its data frames: `binary`, `text`, `text that is not base64`.
    kinds: Vec<&'static str>,
}

/// Types a command whose output differs from its echo, and waits for the output.
async fn echo(ws: &mut Ws, protocol: Option<&str>, what: &str) -> Result<Seen, Failure> {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed)
    );
    // The shell prints `conform-...`; its echo of the command has `conform""-...`.
    let needle = format!("conform-{what}-{nonce}");
    let command = format!("echo conform\"\"-{what}-{nonce}\r");
    let check = format!("the output of `{}`", command.trim_end());
    ws.send(ws::data(protocol, command.as_bytes()))
        .await
        .map_err(|e| failure(&check, "typed", e.to_string()))?;
    let (mut output, mut kinds) = (String::new(), Vec::new());
    let read = async {
        while !output.contains(&needle) {
            match ws.next().await {
                Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                    let kind = if m.is_binary() { "binary" } else { "text" };
                    match ws::payload(protocol, &m) {
                        Some(bytes) => output.push_str(&String::from_utf8_lossy(&bytes)),
                        None => kinds.push("text that is not base64"),
                    }
                    kinds.push(kind);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return false,
            }
        }
        true
    };
    match tokio::time::timeout(ANSWER, read).await {
        Ok(true) => Ok(Seen { kinds }),
        outcome => {
            let how = if outcome.is_ok() {
                "the connection ended"
            } else {
                "5 s passed"
            };
            let tail: String = output
                .chars()
                .rev()
                .take(120)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(failure(
                &check,
                format!("{needle:?}"),
                format!("{how}; the output ended {tail:?}"),
            ))
        }
    }
}

/// How a connection ended.
enum End {
    /// A close frame came, with this code (if it had one).
    Frame(Option<u16>),
    /// It ended without a close frame.
    Dropped,
    /// Nothing within 5 s.
    StillOpen,
}

impl End {
    fn describe(&self) -> String {
        match self {
            End::Frame(Some(code)) => format!("close {code}"),
            End::Frame(None) => "a close frame without a code".into(),
            End::Dropped => "the connection ended without a close frame".into(),
            End::StillOpen => "neither a close frame nor the end within 5 s".into(),
        }
    }
}

/// Sends close 1000, and waits for the answer.
async fn close(ws: &mut Ws) -> End {
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = ws.send(Message::Close(Some(normal))).await;
    end_of(ws).await
}

/// Waits (5 s at most) for the connection to end, reading past any output.
async fn end_of(ws: &mut Ws) -> End {
    let ended = tokio::time::timeout(ANSWER, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break End::Frame(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break End::Dropped,
            }
        }
    });
    let end = ended.await.unwrap_or(End::StillOpen);
    if let End::Frame(_) = end {
        // Reading on sends the answer to the close, so that the server need
        // not wait for it before it lets the session's terminal go (EX-4).
        let rest = async { while let Some(Ok(_)) = ws.next().await {} };
        let _ = tokio::time::timeout(ANSWER, rest).await;
    }
    end
}

/// A plain GET of exec with the token, over TLS: the status.
async fn plain_get(t: &Target, token: &str) -> Result<u16, String> {
    let io = ws::connect(
        &TokioNet,
        &t.address,
        Some(Trust::Pem(&t.session.certificate)),
    )
    .await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = t
        .exec()
        .split_once(&t.address)
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let request = http::Request::get(path)
        .header(http::header::HOST, &t.address)
        .header(http::header::AUTHORIZATION, token)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"));
    driver.abort();
    Ok(answer?.status().as_u16())
}
