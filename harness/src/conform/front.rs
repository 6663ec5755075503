//! GitLab's front door on a real port: the coordinator API the runner polls and
//! Workhorse's terminal route, served by the simulation's own code
//! ([`workhorse::serve`]) over real sockets.
//!
//! The port stays the same for the whole run (a running runner's config names
//! it) while each scenario gets a fresh GitLab: an acceptor hands every new
//! connection to the GitLab being served, and switching GitLab shuts down the
//! connections of the one before, so that a keep-alive connection of the runner
//! cannot go on talking to a finished scenario.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::Context as _;
use session_server::net::{Listener, Net, Stream, TokioNet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::trace::Recorder;
use crate::world::gitlab::Gitlab;
use crate::world::{workhorse, RUNNER_TOKEN};

type Handoff = (Cuttable, SocketAddr);

pub struct Front {
    address: SocketAddr,
    /// `None` once the front is dropped: new connections are refused.
    current: Arc<Mutex<Option<Route>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

/// Where new connections go. Dropping it cuts the connections it handed over.
struct Route {
    to: mpsc::UnboundedSender<Handoff>,
    cut: watch::Sender<()>,
}

impl Front {
    /// Listens on `address` (port 0: any free port) and serves a GitLab
    /// without jobs until [`Front::serve`] says otherwise.
    pub async fn bind(address: &str) -> anyhow::Result<Front> {
        let listener = TokioNet.bind(address).await.with_context(|| {
            format!("the harness's coordinator cannot listen on {address} (--listen)")
        })?;
        let address = listener.local_addr()?;
        let current = Arc::new(Mutex::new(Some(route(idle_gitlab(), Recorder::default()))));
        let routes = current.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, peer)) = Listener::accept(&listener).await {
                if let Some(route) = routes.lock().expect("front lock").as_ref() {
                    let stream = Cuttable::new(stream, route.cut.subscribe());
                    let _ = route.to.send((stream, peer));
                }
            }
        });
        Ok(Front {
            address,
            current,
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

    /// Serves `gitlab` from now on; connections to the one before are cut.
    pub fn serve(&self, gitlab: Gitlab, recorder: Recorder) {
        let next = Some(route(gitlab, recorder));
        drop(std::mem::replace(
            &mut *self.current.lock().expect("front lock"),
            next,
        ));
    }

    /// Serves a GitLab without jobs: a runner that polls gets nothing to do.
    pub fn idle(&self) {
        self.serve(idle_gitlab(), Recorder::default());
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Cuts every connection the front handed over.
        drop(self.current.lock().expect("front lock").take());
    }
}

fn idle_gitlab() -> Gitlab {
    Gitlab::new(Recorder::default(), RUNNER_TOKEN, None)
}

/// A route to a fresh `workhorse::serve` of `gitlab`; it ends when the route is dropped.
fn route(gitlab: Gitlab, recorder: Recorder) -> Route {
    let (to, from) = mpsc::unbounded_channel();
    let listener = Handed(tokio::sync::Mutex::new(from));
    tokio::spawn(workhorse::serve(listener, FrontNet, gitlab, recorder));
    Route {
        to,
        cut: watch::channel(()).0,
    }
}

/// A connection that fails once its route is gone, so that whoever serves it
/// drops it and the peer sees it close. (A second handle on the socket to shut
/// it down with would keep it open after it is dropped.)
pub struct Cuttable {
    stream: TcpStream,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Cuttable {
    fn new(stream: TcpStream, mut route: watch::Receiver<()>) -> Self {
        let cut = Box::pin(async move {
            // Nothing is ever sent: this ends when the sender is dropped.
            while route.changed().await.is_ok() {}
        });
        Cuttable { stream, cut }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the scenario this connection belonged to is over",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Stream for Cuttable {
    fn peek<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        self.stream.peek(buf)
    }
}

/// Real sockets, where "accepting" takes the connections the acceptor hands over.
#[derive(Clone, Copy)]
struct FrontNet;

struct Handed(tokio::sync::Mutex<mpsc::UnboundedReceiver<Handoff>>);

impl Listener for Handed {
    type Stream = Cuttable;
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

impl Net for FrontNet {
    type Stream = Cuttable;
    type Listener = Handed;
    async fn bind(&self, addr: &str) -> io::Result<Handed> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the front binds once; cannot bind {addr}"),
        ))
    }
    /// Workhorse's connections to the runner: never cut, they end with their browser's.
    async fn connect(&self, addr: &str) -> io::Result<Cuttable> {
        let stream = TokioNet.connect(addr).await?;
        Ok(Cuttable {
            stream,
            cut: Box::pin(std::future::pending()),
        })
    }
}
