//! A job's life on the runner (LC-1..7): prepare, attach the terminal, run the
//! script, hold the job for a connected terminal, end the session, report.

pub mod log;
pub mod mask;
mod report;
pub mod variables;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ExecutorKind;
use crate::coordinator::api::JobResponse;
use crate::coordinator::Coordinator;
use crate::duration::go_format;
use crate::executor::docker::ContainerState;
use crate::executor::{BuildError, BuildSpec, Executor};
use crate::faults::{self, Fault};
use crate::machine::ScriptExit;
use crate::net::Net;
use crate::protocol::CloseReason;
use crate::session::{ServicePort, Session, Sessions};
use log::JobLog;
use report::Reporter;

/// A job without a timeout of its own gets GitLab's default, one hour.
const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a terminal gets to send its close frame when the runner ends it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// GitLab's failure reason for what is the runner's fault, not the script's.
const SYSTEM_FAILURE: &str = "runner_system_failure";

/// Why a job stopped before its script ended by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// Cancelled on GitLab's side (LC-4).
    Canceled,
    /// The runner is stopping (LC-4).
    RunnerShutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Abort(Abort),
    Deadline,
    /// The job could not be set up; the log says why.
    SystemFailure,
}

/// How a job ended, as reported to GitLab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    Success,
    Failed {
        reason: &'static str,
        exit_code: Option<i32>,
    },
}

/// Everything a job needs from its runner.
pub struct JobContext<N: Net> {
    pub runner_name: String,
    pub executor: Executor,
    pub coordinator: Arc<Coordinator<N>>,
    /// `None` when the session server is off (CFG-1).
    pub session: Option<Arc<Session>>,
    pub sessions: Sessions,
    pub session_timeout: Duration,
    /// Turns true when the runner is stopping.
    pub shutdown: watch::Receiver<bool>,
    /// How often the log goes to GitLab (and a cancel is noticed).
    pub update_interval: Duration,
}

/// Runs one job to its end and reports it. Never hangs: every wait is bounded by
/// the job's deadline, a cancel, or the runner's shutdown.
pub async fn run<N: Net>(job: JobResponse, ctx: JobContext<N>) -> JobResult {
    let timeout = match job.runner_info.timeout {
        0 => DEFAULT_JOB_TIMEOUT,
        s => Duration::from_secs(s),
    };
    let deadline = Instant::now() + timeout;
    // JOB-5: masked from the first line on.
    let log = JobLog::masking(variables::secrets(&job));
    let (canceled_tx, canceled) = watch::channel(false);
    let reporter = Reporter::start(
        ctx.coordinator.clone(),
        &job,
        log.clone(),
        canceled_tx,
        ctx.update_interval,
    );
    let mut stops = Stops {
        deadline,
        shutdown: ctx.shutdown.clone(),
        canceled,
    };

    log.line(&format!(
        "Running with session-server {} on {}",
        env!("CARGO_PKG_VERSION"),
        ctx.runner_name
    ));
    // The file variables live until the session has ended: a terminal that
    // holds the job after its script still sees them.
    let mut removal = None;
    let (outcome, mut file_variables) =
        match variables::environment(&job, ctx.executor.temp_dir(job.id)) {
            Ok(env) => {
                for warning in &env.warnings {
                    log.line(warning);
                }
                let spec = build_spec(&job, &ctx.executor, env.vars);
                let outcome = execute(&job, spec, &ctx, &log, &mut stops, &mut removal).await;
                (outcome, env.files)
            }
            Err(e) => {
                log.line(&format!("ERROR: Preparing the job's variables failed: {e}"));
                (Err(Stop::SystemFailure), None)
            }
        };

    if let Some(session) = &ctx.session {
        match outcome {
            // LC-1..3: the script ended by itself; a connected terminal may hold the job.
            Ok(_) => {
                if let Some(abort) =
                    hold_for_terminal(session, ctx.session_timeout, &log, &mut stops).await
                {
                    finish(session, &ctx.sessions, abort_reason(abort)).await;
                    drop(file_variables.take());
                    return reporter.finish(aborted(abort, &log)).await;
                }
            }
            // LC-4: cancel and shutdown kill the terminal at once.
            Err(Stop::Abort(abort)) => session.end_terminal(abort_reason(abort), CLOSE_GRACE).await,
            Err(Stop::Deadline | Stop::SystemFailure) => {}
        }
        finish(session, &ctx.sessions, CloseReason::JobFinished).await;
    }
    drop(file_variables.take());

    // LC-6: the result is the script's, whatever the terminal did.
    let result = match outcome {
        Ok(exit) if exit.success() => {
            log.line("Job succeeded");
            JobResult::Success
        }
        Ok(ScriptExit::Code(code)) => {
            log.line(&format!("ERROR: Job failed: exit code {code}"));
            JobResult::Failed {
                reason: "script_failure",
                exit_code: Some(code),
            }
        }
        Ok(ScriptExit::Killed) => {
            log.line("ERROR: Job failed: the script was killed");
            JobResult::Failed {
                reason: "script_failure",
                exit_code: None,
            }
        }
        Err(Stop::Deadline) => {
            log.line(&format!(
                "ERROR: Job failed: execution took longer than {}",
                go_format(timeout)
            ));
            JobResult::Failed {
                reason: "job_execution_timeout",
                exit_code: None,
            }
        }
        Err(Stop::SystemFailure) => {
            log.line("ERROR: Job failed (system failure)");
            JobResult::Failed {
                reason: SYSTEM_FAILURE,
                exit_code: None,
            }
        }
        Err(Stop::Abort(abort)) => aborted(abort, &log),
    };
    let reported = reporter.finish(result).await;
    // The job holds its slot until its container is gone: a stopping runner
    // waits for the removal too.
    if let Some(removal) = removal {
        removal.await;
    }
    reported
}

/// The removal of a build container whose start the engine still holds.
type Removal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// JOB-4: a job that GitLab handed out but this runner cannot read is failed at
/// once (`runner_system_failure`) with a log line that says why, never dropped:
/// on GitLab it would stay `running` until its timeout.
pub async fn fail_unreadable<N: Net>(
    coordinator: Arc<Coordinator<N>>,
    id: u64,
    token: String,
    why: &str,
    update_interval: Duration,
) -> JobResult {
    let job = JobResponse {
        id,
        token,
        ..JobResponse::default()
    };
    let log = JobLog::default();
    // Nothing runs: a cancel has nothing to stop.
    let (canceled, _) = watch::channel(false);
    let reporter = Reporter::start(coordinator, &job, log.clone(), canceled, update_interval);
    log.line(&format!(
        "Running with session-server {}",
        env!("CARGO_PKG_VERSION")
    ));
    log.line(&format!(
        "ERROR: Job failed (system failure): the runner cannot read the job GitLab sent: {why}"
    ));
    log.line(
        "The job did not run. Retry it; if it fails again, report this line with the runner's \
         version: GitLab and this runner disagree on the job's format.",
    );
    reporter
        .finish(JobResult::Failed {
            reason: SYSTEM_FAILURE,
            exit_code: None,
        })
        .await
}

/// Prepare, start the build, run the script. The terminal is attached as soon
/// as the job runs (EX-3); docker's container stops with the script (DK-3).
/// A container whose start was given up on is left in `removal`, to be
/// removed once the job's end is reported.
async fn execute<N: Net>(
    job: &JobResponse,
    spec: BuildSpec,
    ctx: &JobContext<N>,
    log: &JobLog,
    stops: &mut Stops,
    removal: &mut Option<Removal>,
) -> Result<ScriptExit, Stop> {
    for line in ctx.executor.prepare_log(&spec) {
        log.line(&line);
    }
    let prepare = ctx.executor.timings(job.id).prepare;
    stops.bound(tokio::time::sleep(prepare)).await?;
    let build = match stops.bound(ctx.executor.build(&spec)).await {
        Ok(Ok(build)) => build,
        Ok(Err(BuildError::Io(e))) => {
            log.line(&format!("ERROR: Preparation failed: {e}"));
            return Ok(ScriptExit::Code(1));
        }
        Ok(Err(BuildError::Setup(e))) => {
            log.line(&format!("ERROR: Preparation failed: {e}"));
            return Err(Stop::SystemFailure);
        }
        Err(stop) => {
            // Cut short while the engine was creating it: a container may exist.
            ctx.executor.remove_job(job.id).await;
            return Err(stop);
        }
    };
    if let Some(session) = &ctx.session {
        session.set_services(service_ports(job));
        session.attach(build.terminal.clone());
    }
    log.line("Executing \"step_script\" stage of the job script");
    let exit = run_script(&build, log, stops).await;
    // The job's deadline or a cancel came while the engine was still starting
    // the container (a slow runtime, DK-1's container that never runs). An
    // engine removes such a container only once its start ends, which can be
    // long after: the job ends when it ends, and the removal comes after.
    let start_abandoned = exit.is_err()
        && build
            .container
            .as_ref()
            .is_some_and(|c| c.state() == ContainerState::Created);
    if let (Some(container), ExecutorKind::Docker) = (&build.container, ctx.executor.kind) {
        container.exit();
        if let Some(session) = &ctx.session {
            session.detach();
            session
                .end_terminal(CloseReason::ContainerExited, CLOSE_GRACE)
                .await;
        }
    }
    // Docker: the container goes with its job, whatever ended it.
    if start_abandoned {
        *removal = Some(Box::pin(async move { build.remove().await }));
    } else {
        build.remove().await;
    }
    exit
}

async fn run_script(
    build: &crate::executor::Build,
    log: &JobLog,
    stops: &mut Stops,
) -> Result<ScriptExit, Stop> {
    if let Err(e) = stops.bound(build.start()).await? {
        log.line(&format!("ERROR: Preparation failed: {e}"));
        return Err(Stop::SystemFailure);
    }
    let run = match build.run_script() {
        Ok(run) => run,
        Err(e) => {
            log.line(&format!("ERROR: starting the script: {e}"));
            return Ok(ScriptExit::Code(1));
        }
    };
    let mut output = run.output;
    let sink = log.clone();
    let copier = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok(n) = output.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.append(&buf[..n]);
        }
    });
    let exit = stops.bound(run.exit).await;
    if exit.is_err() {
        (run.kill)().await;
    }
    // The output ends with the script, unless a background process keeps the
    // pipe open: do not let that hold the job.
    let drained = tokio::time::timeout(Duration::from_secs(1), copier).await;
    if drained.is_err() {
        log.line("WARNING: a process of the job still holds its output open; the rest of its output is not logged");
    }
    match exit {
        Ok(Ok(exit)) => Ok(exit),
        Ok(Err(e)) => {
            log.line(&format!("ERROR: waiting for the script: {e}"));
            Ok(ScriptExit::Code(1))
        }
        Err(stop) => Err(stop),
    }
}

/// LC-1..3, LC-5: after the script, a connected terminal holds the job for
/// `min(session_timeout, time left until the deadline)`, or until it disconnects.
async fn hold_for_terminal(
    session: &Session,
    session_timeout: Duration,
    log: &JobLog,
    stops: &mut Stops,
) -> Option<Abort> {
    if !session.is_connected() {
        return None; // LC-5
    }
    let left = stops.deadline.saturating_duration_since(Instant::now());
    let wait = if faults::active(Fault::UncappedTimeout) {
        session_timeout
    } else {
        session_timeout.min(left)
    };
    log.line(&format!(
        "Terminal is connected, will time out in {}...",
        go_format(wait)
    ));
    let (mut shutdown, mut canceled) = (stops.shutdown.clone(), stops.canceled.clone());
    tokio::select! {
        biased;
        _ = raised(&mut shutdown) => return Some(Abort::RunnerShutdown),
        _ = raised(&mut canceled) => return Some(Abort::Canceled),
        _ = session.disconnected() => if !faults::active(Fault::NoDisconnectLog) { log.line("Terminal disconnected") },
        _ = tokio::time::sleep(wait) => {
            log.line(&format!("terminal session timed out (maximum time allowed - {})", go_format(wait)));
            session.end_terminal(CloseReason::SessionTimeout(wait), CLOSE_GRACE).await;
        }
    }
    None
}

/// LC-7: the session ends with the job.
async fn finish(session: &Session, sessions: &Sessions, reason: CloseReason) {
    session.detach();
    session.end_terminal(reason, CLOSE_GRACE).await;
    session.end();
    sessions.remove(&session.id);
}

fn abort_reason(abort: Abort) -> CloseReason {
    match abort {
        Abort::Canceled => CloseReason::JobCancelled,
        Abort::RunnerShutdown => CloseReason::RunnerShutdown,
    }
}

fn aborted(abort: Abort, log: &JobLog) -> JobResult {
    match abort {
        Abort::Canceled => {
            log.line("ERROR: Job failed: canceled");
            JobResult::Failed {
                reason: "job_canceled",
                exit_code: None,
            }
        }
        Abort::RunnerShutdown => {
            log.line("ERROR: Job failed: aborted: the runner is shutting down");
            JobResult::Failed {
                reason: "runner_system_failure",
                exit_code: None,
            }
        }
    }
}

/// What stops a wait early: the deadline, the runner's shutdown, a cancel.
struct Stops {
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
    canceled: watch::Receiver<bool>,
}

impl Stops {
    async fn bound<F: Future>(&mut self, work: F) -> Result<F::Output, Stop> {
        tokio::select! {
            biased;
            _ = raised(&mut self.shutdown) => Err(Stop::Abort(Abort::RunnerShutdown)),
            _ = raised(&mut self.canceled) => Err(Stop::Abort(Abort::Canceled)),
            _ = tokio::time::sleep_until(self.deadline) => Err(Stop::Deadline),
            out = work => Ok(out),
        }
    }
}

/// Resolves once the flag is true (or its sender is gone: nothing will raise it,
/// so it never resolves then).
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|f| *f).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn build_spec(job: &JobResponse, executor: &Executor, env: Vec<(String, String)>) -> BuildSpec {
    let script = job
        .steps
        .iter()
        .flat_map(|s| s.script.iter().cloned())
        .collect();
    BuildSpec {
        job_id: job.id,
        script,
        env,
        container_start: executor.timings(job.id).container_start,
        image: Some(job.image.name.clone()).filter(|n| !n.is_empty()),
        services: job
            .services
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| !n.is_empty())
            .collect(),
    }
}

/// The job's services, by name and by alias, as the proxy route finds them.
fn service_ports(job: &JobResponse) -> Vec<ServicePort> {
    let mut ports = Vec::new();
    for service in &job.services {
        let host = service.aliases().next().unwrap_or(&service.name);
        for port in &service.ports {
            for name in std::iter::once(service.name.as_str())
                .chain(service.aliases())
                .filter(|n| !n.is_empty())
            {
                ports.push(ServicePort {
                    name: name.to_string(),
                    port: port.number,
                    host: host.to_string(),
                });
            }
        }
    }
    ports
}
