//! Test fixtures: a scripted GitLab coordinator and a terminal client that trusts
//! only the session's certificate, over any [`Net`] (real sockets or turmoil).
#![allow(dead_code)] // each test binary uses a part of it

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use session_server::coordinator::api::{
    JobRequest, JobResponse, JobRunnerInfo, SessionInfo, Step, UpdateJob, Variable,
};
use session_server::machine::os::OsMachine;
use session_server::machine::sim::SimMachine;
use session_server::machine::{Machine, ScriptRun, ScriptSpec};
use session_server::net::{Listener, Net};
use session_server::terminal::{Terminal, TerminalSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A coordinator that hands out queued jobs and records what the runner says.
#[derive(Clone, Default)]
pub struct Gitlab {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct State {
    /// Job ids (for the records) and the bodies that hand them out.
    queue: VecDeque<(u64, Vec<u8>)>,
    /// The request that took each job.
    taken: BTreeMap<u64, JobRequest>,
    requests: usize,
    traces: BTreeMap<u64, Vec<u8>>,
    finals: BTreeMap<u64, UpdateJob>,
    canceled: Vec<u64>,
    exchanges: Vec<Exchange>,
}

/// A call the runner made, as it came over the wire (JOB-1, JOB-3).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// `Content-Range` and `JOB-TOKEN` (trace patches).
    pub content_range: Option<String>,
    pub job_token: Option<String>,
    pub body: Vec<u8>,
}

impl Exchange {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

impl Gitlab {
    /// Serves the coordinator API on `listener` until the task is dropped.
    pub fn serve<L: Listener>(&self, listener: L) {
        let gitlab = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let gitlab = gitlab.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |r| {
                        let gitlab = gitlab.clone();
                        async move { Ok::<_, Infallible>(gitlab.answer(r).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    pub fn push(&self, job: JobResponse) {
        let body = serde_json::to_vec(&job).unwrap();
        self.push_raw(job.id, body);
    }

    /// Hands out `body` as job `id`'s payload, as is (JOB-4: GitLab's own JSON).
    pub fn push_raw(&self, id: u64, body: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .queue
            .push_back((id, body.into()));
    }

    pub fn cancel(&self, id: u64) {
        self.state.lock().unwrap().canceled.push(id);
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Every call the runner made so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().exchanges.clone()
    }

    /// The request with which the runner took job `id`.
    pub async fn taken(&self, id: u64) -> JobRequest {
        self.until(|s| s.taken.get(&id).cloned()).await
    }

    /// The session of job `id` (JOB-2).
    pub async fn session(&self, id: u64) -> SessionInfo {
        self.taken(id)
            .await
            .session
            .expect("the runner offered no session")
    }

    /// The job's final state, once reported.
    pub async fn finished(&self, id: u64) -> UpdateJob {
        self.until(|s| s.finals.get(&id).cloned()).await
    }

    pub fn is_finished(&self, id: u64) -> bool {
        self.state.lock().unwrap().finals.contains_key(&id)
    }

    pub fn trace(&self, id: u64) -> String {
        String::from_utf8_lossy(
            self.state
                .lock()
                .unwrap()
                .traces
                .get(&id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
        .into_owned()
    }

    /// Waits until the job log of `id` contains `needle`.
    pub async fn trace_contains(&self, id: u64, needle: &str) {
        self.until(|s| {
            let t = s.traces.get(&id)?;
            String::from_utf8_lossy(t).contains(needle).then_some(())
        })
        .await
    }

    async fn until<T>(&self, mut f: impl FnMut(&State) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            if let Some(t) = f(&self.state.lock().unwrap()) {
                return t;
            }
            notified.await;
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_string();
        let mut state = self.state.lock().unwrap();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        state.exchanges.push(Exchange {
            method: parts.method.to_string(),
            path: path.clone(),
            content_range: header("content-range"),
            job_token: header("job-token"),
            body: body.to_vec(),
        });
        let response = if path == "/api/v4/jobs/request" {
            let request: JobRequest = serde_json::from_slice(&body).expect("job request JSON");
            state.requests += 1;
            match state.queue.pop_front() {
                Some((id, body)) => {
                    state.taken.insert(id, request);
                    reply(StatusCode::CREATED, body)
                }
                None => reply(StatusCode::NO_CONTENT, vec![]),
            }
        } else if let Some(id) = path
            .strip_prefix("/api/v4/jobs/")
            .and_then(|r| r.strip_suffix("/trace"))
        {
            let id: u64 = id.parse().unwrap();
            let start: usize = parts.headers["content-range"]
                .to_str()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let trace = state.traces.entry(id).or_default();
            assert_eq!(
                start,
                trace.len(),
                "trace patches arrive in order, without gaps"
            );
            trace.extend_from_slice(&body);
            let status = if state.canceled.contains(&id) {
                "canceled"
            } else {
                "running"
            };
            let mut r = reply(StatusCode::ACCEPTED, vec![]);
            r.headers_mut()
                .insert("job-status", status.parse().unwrap());
            r
        } else if let Some(id) = path.strip_prefix("/api/v4/jobs/") {
            let id: u64 = id.parse().unwrap();
            let update: UpdateJob = serde_json::from_slice(&body).expect("job update JSON");
            let canceled = state.canceled.contains(&id);
            if update.state != "running" {
                state.finals.insert(id, update);
            }
            let mut r = reply(StatusCode::OK, vec![]);
            r.headers_mut().insert(
                "job-status",
                if canceled { "canceled" } else { "running" }
                    .parse()
                    .unwrap(),
            );
            r
        } else {
            reply(StatusCode::NOT_FOUND, vec![])
        };
        drop(state);
        self.changed.notify_waiters();
        response
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A job running `script`, with these job variables.
pub fn job(id: u64, script: &[&str], variables: &[(&str, &str)]) -> JobResponse {
    JobResponse {
        id,
        token: format!("job-token-{id}"),
        runner_info: JobRunnerInfo { timeout: 3600 },
        steps: vec![Step {
            name: "script".into(),
            script: script.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }],
        variables: variables
            .iter()
            .map(|(k, v)| Variable {
                key: k.to_string(),
                value: v.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A runner config.toml for a coordinator at `gitlab`.
pub fn config_toml(gitlab: &str, executor: &str, listen: &str, session_timeout: i64) -> String {
    format!(
        "concurrent = 4\ncheck_interval = 1\n\n[session_server]\nlisten_address = \"{listen}\"\nsession_timeout = {session_timeout}\n\n\
         [[runners]]\nname = \"test\"\nurl = \"http://{gitlab}\"\ntoken = \"runner-token\"\nexecutor = \"{executor}\"\nshell = \"bash\"\n"
    )
}

/// Dials the session host of `session` (the URL's host:port) through `net`,
/// trusting only the session's certificate (TLS-2).
pub async fn dial_tls<N: Net>(
    net: &N,
    session: &SessionInfo,
) -> std::io::Result<TlsStream<N::Stream>> {
    let config =
        session_server::tls::client_config_trusting(&session.certificate).expect("certificate PEM");
    let address = host_port(&session.url);
    let host = address.rsplit_once(':').unwrap().0.to_string();
    let stream = net.connect(&address).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host).unwrap(), stream)
        .await
}

/// `https://host:port/session/<id>` -> `host:port`.
pub fn host_port(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .expect("advertised URLs are https");
    rest.split('/').next().unwrap().to_string()
}

/// `https://host:port/session/<id>` + suffix -> `/session/<id>` + suffix.
pub fn path(session: &SessionInfo, suffix: &str) -> String {
    let rest = session.url.strip_prefix("https://").unwrap();
    format!("{}{suffix}", &rest[rest.find('/').unwrap()..])
}

/// How an upgrade attempt ended.
#[allow(clippy::large_enum_variant)] // a test value, made once per connection
pub enum Opened<S> {
    Upgraded(WebSocketStream<S>, Option<String>),
    Refused(u16, String),
}

/// Opens `<session>/exec` offering `protocols`, with `authorization` (None: no header).
pub async fn open_terminal<N: Net>(
    net: &N,
    session: &SessionInfo,
    authorization: Option<&str>,
    protocols: &[&str],
) -> Opened<TlsStream<N::Stream>> {
    let tls = dial_tls(net, session)
        .await
        .expect("TLS to the session server");
    let url = format!(
        "wss://{}{}",
        host_port(&session.url),
        path(session, "/exec")
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = authorization {
        request
            .headers_mut()
            .insert("authorization", token.parse().unwrap());
    }
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    match tokio_tungstenite::client_async(request, tls).await {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|p| p.to_str().unwrap().to_string());
            Opened::Upgraded(ws, protocol)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Opened::Refused(response.status().as_u16(), body)
        }
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

/// Opens a terminal that must be accepted, with the session's token.
pub async fn connect<N: Net>(
    net: &N,
    session: &SessionInfo,
    protocols: &[&str],
) -> WebSocketStream<TlsStream<N::Stream>> {
    match open_terminal(net, session, Some(&session.authorization), protocols).await {
        Opened::Upgraded(ws, _) => ws,
        Opened::Refused(status, body) => panic!("terminal refused: {status} {body}"),
    }
}

/// The status of `<session><suffix>` for a raw HTTP/1.1 request with `headers`.
pub async fn status<N: Net>(
    net: &N,
    session: &SessionInfo,
    suffix: &str,
    headers: &[(&str, &str)],
) -> u16 {
    raw_exchange(
        net,
        session,
        request_head(session, suffix, headers).as_bytes(),
    )
    .await
    .0
}

/// A GET request head for `<session><suffix>` that asks the server to close.
pub fn request_head(session: &SessionInfo, suffix: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        path(session, suffix),
        host_port(&session.url)
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Sends raw bytes over TLS; returns the status and the whole answer.
pub async fn raw_exchange<N: Net>(net: &N, session: &SessionInfo, bytes: &[u8]) -> (u16, String) {
    let mut tls = dial_tls(net, session).await.expect("TLS");
    tls.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let status = |a: &[u8]| {
        String::from_utf8_lossy(a)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    // Read one whole answer: the connection may stay open after it.
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = tls.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
            if answer_complete(&answer) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    (
        status(&answer),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// A response head, and as much body as its Content-Length says (none after a 101).
fn answer_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if head.split_whitespace().nth(1) == Some("101") {
        return true;
    }
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    length.is_some_and(|l| body.len() >= l)
}

/// Reads terminal output until `needle` shows up; panics on close or after 20 s.
pub async fn read_until<S>(ws: &mut WebSocketStream<S>, needle: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(Message::Text(t))) => seen.push_str(&t),
                Some(Ok(_)) => {}
                other => panic!("connection ended before {needle:?}: {other:?}; saw {seen:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in 20 s; saw {seen:?}"));
    seen
}

/// Reads until the server's close frame; returns its code and reason (None: no frame).
pub async fn read_close<S>(ws: &mut WebSocketStream<S>) -> Option<(u16, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

pub async fn type_text<S>(ws: &mut WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::binary(text.as_bytes().to_vec()))
        .await
        .unwrap();
}

pub fn local(addr: SocketAddr) -> String {
    format!("127.0.0.1:{}", addr.port())
}

/// A coordinator and a runner on real loopback sockets.
pub struct World {
    pub gitlab: Gitlab,
    pub runner: session_server::runner::Runner,
    pub net: session_server::net::TokioNet,
}

/// Starts a coordinator and a runner (`executor`, `session_timeout` seconds)
/// whose processes run on `machine`; `tweak` adjusts the runner's parts.
pub async fn world(
    executor: &str,
    session_timeout: i64,
    machine: Arc<dyn session_server::machine::Machine>,
    tweak: impl FnOnce(&mut session_server::runner::RunnerParts<session_server::net::TokioNet>),
) -> World {
    use session_server::net::TokioNet;
    let net = TokioNet;
    let gitlab = Gitlab::default();
    let listener = net.bind("127.0.0.1:0").await.unwrap();
    let gitlab_addr = local(listener.local_addr().unwrap());
    gitlab.serve(listener);
    let config = session_server::config::Config::parse(&config_toml(
        &gitlab_addr,
        executor,
        "127.0.0.1:0",
        session_timeout,
    ))
    .unwrap();
    let mut parts = session_server::runner::RunnerParts::new(
        config,
        net,
        machine,
        session_server::rng::Rng::from_os(),
    );
    parts.update_interval = Duration::from_millis(100);
    tweak(&mut parts);
    let runner = session_server::runner::Runner::start(parts).await.unwrap();
    World {
        gitlab,
        runner,
        net,
    }
}

impl World {
    pub async fn session(&self, id: u64) -> SessionInfo {
        self.gitlab.session(id).await
    }
}

/// A simulated machine that counts the terminals it opens.
#[derive(Default)]
pub struct Counting {
    pub terminals: AtomicUsize,
}

impl Machine for Counting {
    fn run_script(&self, spec: &ScriptSpec) -> std::io::Result<ScriptRun> {
        SimMachine.run_script(spec)
    }
    fn open_terminal(&self, spec: &TerminalSpec) -> std::io::Result<Terminal> {
        self.terminals.fetch_add(1, Ordering::SeqCst);
        SimMachine.open_terminal(spec)
    }
}

/// The real machine, with a HOME of this test process's own: a shell that
/// read the host's dotfiles could stall (root's ~/.bashrc runs `pyenv init`).
pub fn os_machine() -> OsMachine {
    OsMachine {
        home: Some(private_home()),
        ..OsMachine::default()
    }
}

/// An empty directory, one per test process, that its shells take as HOME.
pub fn private_home() -> std::path::PathBuf {
    let home =
        std::env::temp_dir().join(format!("session-server-test-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("creating a private HOME under the temp dir");
    home
}

/// A benchmark's parts to run: numbers among its arguments (`cargo bench
/// --bench terminal -- 1 4` runs parts 1 and 4), none meaning all; cargo's own
/// `--bench` flag is not a number and is ignored.
pub fn selected(part: u32) -> bool {
    let parts: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    parts.is_empty() || parts.contains(&part)
}
