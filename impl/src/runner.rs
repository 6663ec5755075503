//! The runner process: the session server plus one polling loop per
//! `[[runners]]` entry, jobs run concurrently up to `concurrent`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::config::{Config, RunnerConfig, SessionServerConfig};
use crate::coordinator::api::{Features, JobRequest, RunnerInfo, SessionInfo};
use crate::coordinator::{Coordinator, Handout};
use crate::executor::Executor;
use crate::job::{self, JobContext};
use crate::machine::Machine;
use crate::net::{Listener, Net};
use crate::protocol::Timing;
use crate::rng::Rng;
use crate::server::{self, Limits, ServerContext};
use crate::session::Sessions;
use crate::tls::{self, Identity};

/// GitLab Runner's default `shutdown_timeout`: how long an aborting runner
/// waits for its jobs to report.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a runner is made of. Real runs use `TokioNet`, `OsMachine` and
/// OS randomness; simulations swap in turmoil, the simulated machine and a seed.
pub struct RunnerParts<N: Net> {
    pub config: Config,
    pub net: N,
    pub machine: Arc<dyn Machine>,
    pub rng: Rng,
    pub timing: Timing,
    pub limits: Limits,
    /// How often a job's log goes to GitLab (GitLab may ask for another).
    pub update_interval: Duration,
}

impl<N: Net> RunnerParts<N> {
    pub fn new(config: Config, net: N, machine: Arc<dyn Machine>, rng: Rng) -> Self {
        RunnerParts {
            config,
            net,
            machine,
            rng,
            timing: Timing::default(),
            limits: Limits::default(),
            update_interval: Duration::from_secs(3),
        }
    }
}

/// How the runner stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// SIGINT, SIGTERM: jobs are aborted and their terminals killed at once (LC-4).
    Abort,
    /// SIGQUIT: no new jobs; running jobs finish first.
    Graceful,
}

/// A started runner.
pub struct Runner {
    session_address: Option<SocketAddr>,
    certificate_pem: Option<String>,
    sessions: Sessions,
    abort: watch::Sender<bool>,
    stop_polling: watch::Sender<bool>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    slots: Arc<Semaphore>,
    concurrent: u32,
}

struct Shared<N: Net> {
    net: N,
    machine: Arc<dyn Machine>,
    rng: Rng,
    sessions: Sessions,
    session_server: Option<(SessionServerConfig, Identity)>,
    check_interval: Duration,
    update_interval: Duration,
    slots: Arc<Semaphore>,
    abort: watch::Receiver<bool>,
}

impl Runner {
    /// Binds the session server (if configured) and starts asking for jobs.
    pub async fn start<N: Net>(parts: RunnerParts<N>) -> anyhow::Result<Runner> {
        let RunnerParts {
            config,
            net,
            machine,
            rng,
            timing,
            limits,
            update_interval,
        } = parts;
        anyhow::ensure!(
            !config.runners.is_empty(),
            "config.toml has no [[runners]] entry: add one with url, token and executor"
        );
        let sessions = Sessions::default();
        let (abort, abort_rx) = watch::channel(false);
        let (stop_polling, stop_rx) = watch::channel(false);

        let mut session_address = None;
        let session_server = match config.session_server.clone() {
            None => None,
            Some(mut settings) => {
                let identity = tls::generate(settings.public_host())?;
                let listener = net.bind(&settings.listen_address).await.with_context(|| {
                    format!(
                        "session_server.listen_address {:?}",
                        settings.listen_address
                    )
                })?;
                let bound = listener.local_addr()?;
                session_address = Some(bound);
                // Port 0 asks the system for a free port; advertise the one it gave.
                if let Some(host) = settings.advertise_address.strip_suffix(":0") {
                    settings.advertise_address = format!("{host}:{}", bound.port());
                }
                info!(listen = %settings.listen_address, advertise = %settings.advertised_url(), "session server listening");
                let context = ServerContext {
                    sessions: sessions.clone(),
                    net: net.clone(),
                    timing,
                    limits,
                };
                tokio::spawn(server::serve(
                    listener,
                    identity.clone(),
                    context,
                    abort_rx.clone(),
                ));
                Some((settings, identity))
            }
        };
        let certificate_pem = session_server
            .as_ref()
            .map(|(_, id)| id.certificate_pem.clone());
        let concurrent = u32::try_from(config.concurrent)
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        let slots = Arc::new(Semaphore::new(concurrent as usize));
        let shared = Arc::new(Shared {
            net,
            machine,
            rng,
            sessions: sessions.clone(),
            session_server,
            check_interval: config.check_interval,
            update_interval,
            slots: slots.clone(),
            abort: abort_rx,
        });
        let mut pollers = Vec::new();
        for entry in config.runners {
            let coordinator =
                Coordinator::new(shared.net.clone(), &entry.url, ca_pem(&entry)?.as_deref())
                    .with_context(|| format!("runner {:?}", entry.name))?;
            pollers.push(tokio::spawn(poll(
                entry,
                Arc::new(coordinator),
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Runner {
            session_address,
            certificate_pem,
            sessions,
            abort,
            stop_polling,
            pollers,
            slots,
            concurrent,
        })
    }

    /// Where the session server listens, if it does.
    pub fn session_address(&self) -> Option<SocketAddr> {
        self.session_address
    }

    /// PEM of this start's session certificate.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Stops the runner and waits until its jobs have ended and been reported.
    pub async fn stop(self, mode: StopMode) {
        self.stop_polling.send_replace(true);
        if mode == StopMode::Abort {
            self.abort.send_replace(true);
        }
        for poller in self.pollers {
            let _ = poller.await;
        }
        // Every job holds a slot until it has been reported. Aborted jobs get
        // SHUTDOWN_TIMEOUT to tell GitLab (it may be unreachable); graceful
        // stops wait for the jobs to end.
        let all = self.slots.acquire_many(self.concurrent);
        match mode {
            StopMode::Graceful => drop(all.await),
            StopMode::Abort => {
                if tokio::time::timeout(SHUTDOWN_TIMEOUT, all).await.is_err() {
                    warn!("some jobs could not report their end within {SHUTDOWN_TIMEOUT:?}");
                }
            }
        }
        self.abort.send_replace(true); // and the session server stops accepting
    }
}

fn ca_pem(entry: &RunnerConfig) -> anyhow::Result<Option<String>> {
    entry
        .tls_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading tls-ca-file {}", path.display()))
        })
        .transpose()
}

/// Asks for jobs while there is a free slot, every `check_interval`.
async fn poll<N: Net>(
    entry: RunnerConfig,
    coordinator: Arc<Coordinator<N>>,
    shared: Arc<Shared<N>>,
    mut stop: watch::Receiver<bool>,
) {
    let executor = Executor::new(
        entry.executor,
        shared.machine.clone(),
        entry.shell.clone(),
        entry
            .builds_dir
            .clone()
            .or_else(|| shared.machine.default_builds_dir()),
        entry.docker.clone(),
        &entry.token,
    );
    let left = executor.clean_up().await;
    if left > 0 {
        info!(runner = %entry.name, "removed {left} build container(s) a previous run left behind");
    }
    loop {
        let slot = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            slot = shared.slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let session = shared
            .session_server
            .as_ref()
            .map(|_| shared.sessions.create(&shared.rng));
        let request = JobRequest {
            token: entry.token.clone(),
            info: RunnerInfo {
                name: "session-server".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                executor: entry.executor.name().into(),
                shell: entry.shell.clone().unwrap_or_else(|| "bash".into()),
                features: Features {
                    session: session.is_some(),
                    terminal: executor.supports_terminal(),
                    variables: true,
                    masking: true,
                    return_exit_code: true,
                    cancelable: true,
                    trace_reset: false,
                    trace_checksum: false,
                },
            },
            session: session.as_ref().zip(shared.session_server.as_ref()).map(
                |(s, (settings, identity))| SessionInfo {
                    url: format!("{}{}", settings.advertised_url(), s.endpoint()),
                    certificate: identity.certificate_pem.clone(),
                    authorization: s.token.clone(),
                },
            ),
            last_update: String::new(),
        };
        match coordinator.request_job(&request).await {
            Ok(Handout::Job(job)) => {
                let job = *job;
                info!(runner = %entry.name, job = job.id, "received a job");
                let ctx = JobContext {
                    runner_name: entry.name.clone(),
                    executor: executor.clone(),
                    coordinator: coordinator.clone(),
                    session,
                    sessions: shared.sessions.clone(),
                    session_timeout: shared
                        .session_server
                        .as_ref()
                        .map(|(s, _)| s.session_timeout)
                        .unwrap_or_default(),
                    shutdown: shared.abort.clone(),
                    update_interval: shared.update_interval,
                };
                tokio::spawn(async move {
                    let result = job::run(job, ctx).await;
                    info!(?result, "job ended");
                    drop(slot);
                });
                continue; // GitLab may have more: ask again at once.
            }
            Ok(Handout::Unreadable { id, token, why }) => {
                error!(runner = %entry.name, job = id, "failing a job this runner cannot read: {why}");
                if let Some(session) = session {
                    shared.sessions.remove(&session.id);
                }
                let (coordinator, interval) = (coordinator.clone(), shared.update_interval);
                tokio::spawn(async move {
                    job::fail_unreadable(coordinator, id, token, &why, interval).await;
                    drop(slot);
                });
                continue;
            }
            Ok(Handout::Lost { why }) => error!(runner = %entry.name, "{why}"),
            Ok(Handout::NoJob) => {}
            Err(e) => warn!(runner = %entry.name, "asking for a job: {e:#}"),
        }
        if let Some(session) = session {
            shared.sessions.remove(&session.id);
        }
        drop(slot);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(shared.check_interval) => {}
        }
    }
}
