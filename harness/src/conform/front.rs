//! GitLab's front door on a real port: the coordinator API the runner polls and
//! Workhorse's terminal route, served by the simulation's own code
//! ([`workhorse::serve`]) behind a small reverse proxy.
//!
//! The port stays the same for the whole run (a running runner's config names
//! it) while each scenario gets a fresh GitLab. The front serves HTTP itself and
//! hands each request to the GitLab of the moment, over an in-process pipe:
//! - A connection belongs to the scenario its last request went to; when that
//!   scenario is over the connection is shut down gracefully (an answer in
//!   flight is finished first), so that a runner's kept-alive connection never
//!   talks to a finished scenario, nor sees a reset mid-answer.
//! - With a runner that keeps running, a job request that finds nothing
//!   queued is held, as GitLab's Workhorse holds waiting runners' requests
//!   (long polling), until a job is queued or [`LONG_POLL`] passes: a runner
//!   that sleeps long after an empty answer still gets the next scenario's
//!   job at once.
//! - What the runner says about itself in each job request is kept, for its
//!   profile and for how long each scenario waited for it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_server::net::{Listener, Net, Stream, TokioNet};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::actors::gitlab::RUNNER_TOKEN;
use crate::actors::gitlab::{Gitlab, JobStatus};
use crate::actors::{workhorse, ws};
use crate::trace::Recorder;

/// The longest a job request is held while nothing is queued. Below the
/// request timeouts of runners' HTTP clients (30 s in this project's), like
/// Workhorse's long polling, which answers "no job" at the end of its period.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// How often a held job request looks for a queued job.
const LOOK: Duration = Duration::from_millis(25);
/// Where the runner's job requests go.
const JOB_REQUEST: &str = "/api/v4/jobs/request";

type Handoff = (Piped, SocketAddr);

pub struct Front {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// The GitLab served now; `None` once the front is dropped.
    current: watch::Sender<Option<Arc<Route>>>,
    /// Every job request the runner made, in order.
    asks: Mutex<Vec<JobAsk>>,
    holding: Holding,
}

/// Whether a job request that finds nothing queued is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// The one runner keeps running across scenarios (`--listen`): the next
    /// scenario's jobs are about to be queued, and its request gets them.
    UntilQueued,
    /// A runner per scenario (`--runner-cmd`): its scenario's jobs are queued
    /// before it starts, and nothing more will come; a held request would only
    /// delay its stop.
    Never,
}

/// One GitLab, served for one scenario (or none, between scenarios).
struct Route {
    /// Tells routes apart: a connection shuts down when its route is replaced.
    generation: u64,
    /// When it was served: its jobs were queued then.
    served: Instant,
    gitlab: Gitlab,
    /// The scenario's jobs: a job request is held while none of them is queued.
    jobs: Vec<u64>,
    /// The way into this GitLab's `workhorse::serve`; it ends with the route.
    gateway: Gateway,
}

impl Route {
    fn queued(&self) -> bool {
        self.jobs
            .iter()
            .any(|id| self.gitlab.status(*id) == Some(JobStatus::Pending))
    }
}

/// A job request as the runner sent it, and when.
#[derive(Clone, Debug)]
pub struct JobAsk {
    pub arrived: Instant,
    /// The request's JSON (`info`, `session`, ...); `Null` if it was not JSON.
    pub body: serde_json::Value,
    /// Once answered: by which GitLab, when, and whether with a job.
    answer: Option<(u64, Instant, bool)>,
}

impl Front {
    /// Listens on `address` (port 0: any free port) and serves a GitLab
    /// without jobs until [`Front::serve`] says otherwise.
    pub async fn bind(address: &str, holding: Holding) -> anyhow::Result<Front> {
        let listener = TokioNet.bind(address).await.with_context(|| {
            format!("the harness's coordinator cannot listen on {address} (--listen)")
        })?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            current: watch::channel(Some(route(
                0,
                idle_gitlab(),
                Vec::new(),
                Recorder::default(),
            )))
            .0,
            asks: Mutex::new(Vec::new()),
            holding,
        });
        let accepting = shared.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, peer)) = Listener::accept(&listener).await {
                tokio::spawn(connection(stream, peer, accepting.clone()));
            }
        });
        Ok(Front {
            address,
            shared,
            acceptor,
        })
    }

    /// The coordinator URL for a runner's config.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `host:port` for browsers (Workhorse's `/-/jobs/<id>/terminal.ws`).
    pub fn entry(&self) -> String {
        self.address.to_string()
    }

    /// Serves `gitlab` from now on, whose jobs are `jobs`; connections that
    /// belonged to the one before are shut down.
    pub fn serve(&self, gitlab: Gitlab, jobs: Vec<u64>, recorder: Recorder) {
        self.shared.current.send_modify(|current| {
            let generation = current.as_ref().map_or(0, |r| r.generation + 1);
            *current = Some(route(generation, gitlab, jobs, recorder));
        });
    }

    /// Serves a GitLab without jobs: a runner that polls is held, then gets nothing to do.
    pub fn idle(&self) {
        self.serve(idle_gitlab(), Vec::new(), Recorder::default());
    }

    /// The job requests so far.
    pub fn asks(&self) -> Vec<JobAsk> {
        self.shared.asks.lock().expect("asks lock").clone()
    }

    /// How long after the GitLab served now queued its jobs the runner got
    /// the first of them; `None`: it has not.
    pub fn waited(&self) -> Option<Duration> {
        let (generation, served) = {
            let current = self.shared.current.borrow();
            let route = current.as_ref()?;
            (route.generation, route.served)
        };
        self.asks().into_iter().find_map(|a| match a.answer {
            Some((g, at, true)) if g == generation => Some(at.saturating_duration_since(served)),
            _ => None,
        })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Held requests are answered and every connection shuts down.
        self.shared.current.send_replace(None);
    }
}

fn idle_gitlab() -> Gitlab {
    Gitlab::new(Recorder::default(), RUNNER_TOKEN, None)
}

/// A route to a fresh `workhorse::serve` of `gitlab`; it ends when the route is dropped.
fn route(generation: u64, gitlab: Gitlab, jobs: Vec<u64>, recorder: Recorder) -> Arc<Route> {
    Arc::new(Route {
        generation,
        served: Instant::now(),
        gateway: Gateway::spawn(gitlab.clone(), recorder),
        gitlab,
        jobs,
    })
}

/// The way into one GitLab (coordinator API, Rails, Workhorse) served by
/// `workhorse::serve` over in-process pipes, with Workhorse dialling runners
/// over real sockets. That GitLab stops when its gateway is dropped.
pub struct Gateway {
    to: mpsc::UnboundedSender<Handoff>,
}

impl Gateway {
    pub fn spawn(gitlab: Gitlab, recorder: Recorder) -> Gateway {
        let (to, from) = mpsc::unbounded_channel();
        let listener = Handed(tokio::sync::Mutex::new(from));
        tokio::spawn(workhorse::serve(listener, PipeNet, gitlab, recorder));
        Gateway { to }
    }

    /// Sends `request` through a fresh pipe to the GitLab; an upgrade
    /// (`upgrade`: the client's side of it) is then spliced between the
    /// client and the GitLab.
    pub async fn forward(
        &self,
        request: Request<Full<Bytes>>,
        peer: SocketAddr,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<Full<Bytes>>, String> {
        let (near, far) = tokio::io::duplex(64 * 1024);
        self.to
            .send((Piped::Front(far), peer))
            .map_err(|_| "the scenario this request belonged to is over".to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(near))
            .await
            .map_err(|e| format!("the harness's GitLab: {e}"))?;
        tokio::spawn(connection.with_upgrades());
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the harness's GitLab: {e}"))?;
        if let (StatusCode::SWITCHING_PROTOCOLS, Some(client)) = (response.status(), upgrade) {
            let gitlab = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(gitlab)) = tokio::join!(client, gitlab) {
                    let (mut client, mut gitlab) = (TokioIo::new(client), TokioIo::new(gitlab));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut gitlab).await;
                }
            });
        }
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("the harness's GitLab's answer: {e}"))?;
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// Serves one connection until it ends, or until the route its last request
/// went to is replaced.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut routes = shared.current.subscribe();
    let Some(first) = routes.borrow_and_update().as_ref().map(|r| r.generation) else {
        return;
    };
    let (bound_tx, bound) = watch::channel(first);
    let bound_tx = Arc::new(bound_tx);
    let service = hyper::service::service_fn(move |request| {
        let (shared, bound_tx) = (shared.clone(), bound_tx.clone());
        async move { Ok::<_, Infallible>(dispatch(request, peer, &shared, &bound_tx).await) }
    });
    let serving = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(serving);
    let mut shutting = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut serving => return,
            changed = routes.changed(), if !shutting => {
                let now = changed.ok().and_then(|()| routes.borrow_and_update().as_ref().map(|r| r.generation));
                if now != Some(*bound.borrow()) {
                    serving.as_mut().graceful_shutdown();
                    shutting = true;
                }
            }
        }
    }
}

/// Hands `request` to the GitLab of the moment (a job request waits for a
/// queued job first) and binds the connection to it.
async fn dispatch(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    bound: &watch::Sender<u64>,
) -> Response<Full<Bytes>> {
    let upgrade = ws::is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    // A page's WebSocket cannot send headers: its login is the cookie of
    // `serve`'s user switcher (`conform --browser chromium` sets it).
    if let Some(user) = workhorse::cookie_user(&parts.headers) {
        if let Ok(value) = http::HeaderValue::from_str(&user) {
            parts.headers.insert(workhorse::USER_HEADER, value);
        }
    }
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, "the request's body did not arrive");
    };
    let asking = parts.method == http::Method::POST && parts.uri.path() == JOB_REQUEST;
    let ask = asking.then(|| {
        let mut asks = shared.asks.lock().expect("asks lock");
        asks.push(JobAsk {
            arrived: Instant::now(),
            body: serde_json::from_slice(&body).unwrap_or_default(),
            answer: None,
        });
        asks.len() - 1
    });
    let route = if asking {
        held(shared).await
    } else {
        shared.current.borrow().clone()
    };
    let Some(route) = route else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the conformance run is over",
        );
    };
    bound.send_replace(route.generation);
    let request = Request::from_parts(parts, Full::new(body.clone()));
    let response = match route.gateway.forward(request, peer, upgrade).await {
        Ok(response) => response,
        Err(why) => return answer(StatusCode::BAD_GATEWAY, &why),
    };
    if let Some(index) = ask {
        let got_job = response.status() == StatusCode::CREATED;
        shared.asks.lock().expect("asks lock")[index].answer =
            Some((route.generation, Instant::now(), got_job));
    }
    response
}

/// The route a job request goes to: the one of the moment, once it has a
/// queued job (holding), or after [`LONG_POLL`], or when the front is dropped.
async fn held(shared: &Shared) -> Option<Arc<Route>> {
    let give_up = Instant::now() + LONG_POLL;
    loop {
        let route = shared.current.borrow().clone()?;
        if shared.holding == Holding::Never || route.queued() || Instant::now() >= give_up {
            return Some(route);
        }
        tokio::time::sleep(LOOK).await;
    }
}

fn answer(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(why.to_string())));
    *response.status_mut() = status;
    response
}

/// GitLab's side of a connection: a pipe from the front, or Workhorse's
/// connection to a runner (a real socket). One type, as `workhorse::serve`
/// takes one network for both.
pub enum Piped {
    Front(DuplexStream),
    Runner(TcpStream),
}

impl AsyncRead for Piped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Piped::Front(s) => Pin::new(s).poll_read(cx, buf),
            Piped::Runner(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Piped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Piped::Front(s) => Pin::new(s).poll_write(cx, buf),
            Piped::Runner(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Piped::Front(s) => Pin::new(s).poll_flush(cx),
            Piped::Runner(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Piped::Front(s) => Pin::new(s).poll_shutdown(cx),
            Piped::Runner(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Stream for Piped {
    async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Piped::Runner(s) => s.peek(buf).await,
            // Only a runner's session server peeks (to tell TLS from HTTP).
            Piped::Front(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a pipe into the harness's GitLab cannot peek",
            )),
        }
    }
}

/// Where GitLab's "accepting" takes the pipes the front hands over, and
/// Workhorse dials runners over real sockets.
#[derive(Clone, Copy)]
struct PipeNet;

struct Handed(tokio::sync::Mutex<mpsc::UnboundedReceiver<Handoff>>);

impl Listener for Handed {
    type Stream = Piped;
    async fn accept(&self) -> io::Result<Handoff> {
        self.0
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::other("this GitLab is no longer served"))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::Error::other("a handed-over listener has no address"))
    }
}

impl Net for PipeNet {
    type Stream = Piped;
    type Listener = Handed;
    async fn bind(&self, addr: &str) -> io::Result<Handed> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the front binds once; cannot bind {addr}"),
        ))
    }
    /// Workhorse's connections to the runner: real sockets.
    async fn connect(&self, addr: &str) -> io::Result<Piped> {
        TokioNet.connect(addr).await.map(Piped::Runner)
    }
}
