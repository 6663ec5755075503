//! `session-harness serve`: the world's GitLab on a real port, with the pages
//! its users see, for a real browser.
//!
//! The coordinator API, Rails' authorization and Workhorse are the
//! simulation's own actors (`actors::{gitlab, workhorse}`), reached through the
//! same [`Gateway`] as `conform`'s front. In front of them this module serves
//! a small web UI (`pages`): the job list, a job page whose log follows the
//! runner's trace, the Debug button under Rails' own rule (AU-1/2, the same
//! `Gitlab::authorize` that Workhorse asks), and a terminal page that opens
//! `/-/jobs/<id>/terminal.ws` as GitLab's frontend does, rendered by xterm.js
//! served from the binary (`assets`).
//!
//! Who the browser is: a cookie set by the user switcher. Workhorse learns it
//! as its login header ([`workhorse::USER_HEADER`]); a header a browser sends
//! itself is dropped, so that a page cannot claim to be someone else.
//!
//! The runner ([`runner`]): this project's, in-process on real sockets
//! (default), a command started with the config the harness writes
//! (`--runner-cmd`), or one already running with the printed config.

mod assets;
mod cli;
mod pages;
pub mod runner;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use cli::{run, Args};
pub use runner::RunnerChoice;

use crate::actors::gitlab;
use crate::actors::gitlab::Gitlab;
use crate::actors::{tls, workhorse, ws};
use crate::conform::front::Gateway;
use crate::scenario::{load_str, Scenario};
use crate::trace::Recorder;

/// The world `serve` shows when no scenario file is given.
pub const DEMO: &str = include_str!("demo.toml");

/// What to serve.
#[derive(Clone, Debug)]
pub struct Options {
    /// Users, projects and jobs (its steps and expectations are not used).
    pub scenario: Scenario,
    /// Where the pages, the coordinator API and Workhorse listen.
    pub listen: String,
    /// HTTPS (and so `wss://`) with a fresh self-signed certificate.
    pub tls: bool,
    pub runner: RunnerChoice,
    /// A docker runner's jobs run in this image, without services: its
    /// default image, and each job's `image:`.
    pub job_image: Option<String>,
}

impl Options {
    /// The built-in demo world, on `listen`, with the in-process runner.
    pub fn demo(listen: &str) -> Self {
        Options {
            scenario: demo_scenario(),
            listen: listen.to_string(),
            tls: false,
            runner: RunnerChoice::InProcess,
            job_image: None,
        }
    }
}

pub fn demo_scenario() -> Scenario {
    load_str(DEMO, std::path::Path::new("(built in)"), "serve/demo")
        .expect("the built-in demo is a valid scenario")
}

/// A GitLab being served, and its runner.
pub struct Served {
    pub address: SocketAddr,
    pub tls: bool,
    pub gitlab: Gitlab,
    pub runner: runner::Started,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Served {
    /// The pages' origin, e.g. `http://127.0.0.1:8080`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Stops the runner (its jobs and terminals are aborted) and the listener.
    pub async fn stop(self) {
        self.runner.stop().await;
        self.acceptor.abort();
    }
}

/// Serves `options`' world and starts (or waits for) its runner.
pub async fn start(options: &Options) -> anyhow::Result<Served> {
    let docker = options.scenario.runner.executor == crate::scenario::Executor::Docker;
    if docker && options.job_image.is_none() {
        anyhow::bail!(
            "the runner uses the docker executor: pass --job-image <image>, an image its \
             Docker Engine has (e.g. session-harness/busybox:test, which .ci/docker-test-image \
             builds); the jobs' default definition has a service no offline engine can pull"
        );
    }
    let listener = TcpListener::bind(&options.listen).await.with_context(|| {
        format!(
            "session-harness serve cannot listen on {} (--listen): is the port taken?",
            options.listen
        )
    })?;
    let address = listener.local_addr()?;
    let recorder = Recorder::default();
    let gitlab = gitlab::of_scenario(&options.scenario, &recorder);
    for job in &options.scenario.jobs {
        // There is no repository: a runner must not try to fetch one.
        gitlab.add_variable(job.id, "GIT_STRATEGY", "none");
        if let Some(image) = options.job_image.as_deref().filter(|_| docker) {
            gitlab.set_image(job.id, image);
        }
    }
    let tls = if options.tls {
        Some(tls::self_signed_acceptor(&address.ip().to_string()).map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    let site = Arc::new(Site {
        gitlab: gitlab.clone(),
        gateway: Gateway::spawn(gitlab.clone(), recorder),
    });
    let acceptor = tokio::spawn(accept(listener, tls, site));
    let coordinator = format!("http://{address}");
    let runner = runner::start(options, &coordinator)
        .await
        .context("starting the runner")?;
    Ok(Served {
        address,
        tls: options.tls,
        gitlab,
        runner,
        acceptor,
    })
}

/// What every connection serves.
struct Site {
    gitlab: Gitlab,
    gateway: Gateway,
}

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, site: Arc<Site>) {
    while let Ok((stream, peer)) = listener.accept().await {
        let (tls, site) = (tls.clone(), site.clone());
        tokio::spawn(async move {
            match tls {
                // A runner polls over plain HTTP; browsers come over TLS.
                Some(tls) if is_tls(&stream).await => {
                    if let Ok(stream) = tls.accept(stream).await {
                        connection(stream, peer, site).await;
                    }
                }
                _ => connection(stream, peer, site).await,
            }
        });
    }
}

/// A TLS ClientHello starts with a handshake record (0x16).
async fn is_tls(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

async fn connection<IO>(io: IO, peer: SocketAddr, site: Arc<Site>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let site = site.clone();
        async move { Ok::<_, Infallible>(dispatch(request, peer, &site).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// The runner API, git and `terminal.ws` go to GitLab (as Workhorse routes
/// them); everything else is a page.
async fn dispatch(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    site: &Site,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let to_gitlab =
        path.starts_with("/api/v4/") || path.contains(".git/") || path.ends_with("/terminal.ws");
    let user = workhorse::cookie_user(request.headers());
    if !to_gitlab {
        return pages::page(&request, user.as_deref(), &site.gitlab);
    }
    let upgrade = ws::is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(workhorse::USER_HEADER);
    if let Some(value) = user.and_then(|u| HeaderValue::from_str(&u).ok()) {
        parts.headers.insert(workhorse::USER_HEADER, value);
    }
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return pages::text(StatusCode::BAD_REQUEST, "the request's body did not arrive");
    };
    let request = Request::from_parts(parts, Full::new(body));
    match site.gateway.forward(request, peer, upgrade).await {
        Ok(response) => response,
        Err(why) => pages::text(StatusCode::BAD_GATEWAY, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker world without --job-image would fail every job on an offline
    /// engine: `serve` refuses to start and says what to pass.
    #[tokio::test]
    async fn a_docker_world_needs_a_job_image() {
        let mut options = Options::demo("127.0.0.1:0");
        options.scenario.runner.executor = crate::scenario::Executor::Docker;
        let err = start(&options).await.err().expect("refused").to_string();
        assert!(err.contains("--job-image"), "{err}");
    }
}
