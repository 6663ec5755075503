//! The cases against a runner: each scenario in a fresh GitLab (and, with
//! `--runner-cmd`, a fresh runner process configured for it), then the
//! endpoint-level cases on a session of a job of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cause;
use super::config::{self, SessionAddress};
use super::drive::{drive, Stage};
use super::endpoint;
use super::front::{Front, Holding};
use super::page::{self, Pages};
use super::process::{RunnerProcess, STOP_GRACE};
use super::scale::{scale, Scaled};
use super::services;
use super::skip;
use super::{Options, Progress, Runner, Sink};
use crate::actors::gitlab::profile::Profile;
use crate::report::{Case, OUTPUT_LINES};
use anyhow::Context as _;

use crate::actors::gitlab::{self, RUNNER_TOKEN};
use crate::actors::gitlab::{Gitlab, JobStatus};
use crate::expect::{Failure, Verdict};
use crate::judge::{self, Observed};
use crate::scenario::{load_str, ContainerStart, Dur, Executor, RunnerSpec, Scenario};
use crate::trace::Recorder;

/// The job whose session the endpoint-level cases use: its script outlasts them.
const ENDPOINT_JOB: &str = include_str!("endpoint_job.toml");
/// How long to watch after a scenario settled, for late events, at least.
const SETTLE: Duration = Duration::from_millis(300);

pub(super) struct Suite<'a, 'p> {
    options: &'a Options,
    sink: &'a mut Sink<'p>,
    front: Front,
    config: ConfigFile,
    /// With a runner already running: the session_timeout of the printed config.
    attached: Option<u64>,
    /// A runner already running never asked for a job: the rest cannot run.
    unresponsive: Option<String>,
    /// What the runner said about itself in its first job request.
    pub profile: Option<Profile>,
    /// Real Chromium, with `--browser chromium`.
    pages: Option<Arc<Pages>>,
    /// The runner started once for every case ([`Runner::Kept`]).
    kept: Option<RunnerProcess>,
}

impl<'a, 'p> Suite<'a, 'p> {
    pub async fn start(options: &'a Options, sink: &'a mut Sink<'p>) -> anyhow::Result<Self> {
        let holding = match options.runner {
            Runner::Running | Runner::Kept { .. } => Holding::UntilQueued,
            _ => Holding::Never,
        };
        let front = Front::bind(&options.listen, holding).await?;
        let pages = match &options.browser {
            Some(programs) => Some(Pages::new(
                crate::chromium::Chromium::launch(programs)
                    .await
                    .context("starting headless Chromium (--browser chromium)")?,
            )),
            None => None,
        };
        let config = ConfigFile::new(options.config_path.clone());
        let mut suite = Suite {
            options,
            sink,
            front,
            config,
            attached: None,
            unresponsive: None,
            profile: None,
            pages,
            kept: None,
        };
        if let Runner::Running | Runner::Kept { .. } = options.runner {
            let timeout = suite.default_timeout();
            let toml = suite.write_config(&RunnerSpec::default(), timeout, "for every case")?;
            if let Runner::Kept { command, env } = &options.runner {
                suite.kept = Some(RunnerProcess::start(command, &suite.config.path, env)?);
            } else {
                let coordinator = suite.front.url();
                (suite.sink.progress)(Progress::Waiting {
                    config: &toml,
                    path: &suite.config.path,
                    coordinator: &coordinator,
                });
            }
            suite.attached = Some(timeout);
        }
        suite.profile_case().await;
        Ok(suite)
    }

    /// The first case: the runner's first job request, which says what it
    /// is, and whether it offers a session (JOB-1). A runner already running
    /// is held there until the first scenario's job is queued.
    async fn profile_case(&mut self) {
        const ID: &str = "runner/job-request";
        const TITLE: &str = "The job request describes the runner and offers a session (its config has a session server)";
        let spec = ["JOB-1".to_string(), "CFG-1".to_string()];
        let started = Instant::now();
        let timeout = self.attached.unwrap_or_else(|| self.default_timeout());
        let runner = self.start_runner(&RunnerSpec::default(), timeout, "the runner's profile");
        let (runner, config) = match runner {
            Ok(started) => started,
            Err(e) => {
                let case = Case::judged(
                    ID,
                    TITLE,
                    &spec,
                    Verdict::default(),
                    Some(format!("{e:#}")),
                    started.elapsed(),
                );
                return self.sink.case(case);
            }
        };
        let give_up = Instant::now() + self.options.wait_runner;
        let asked = loop {
            if let Some(ask) = self.front.asks().into_iter().next() {
                break Ok(ask);
            }
            if let Some(status) = runner
                .as_ref()
                .or(self.kept.as_ref())
                .and_then(RunnerProcess::exited)
            {
                break Err(format!(
                    "the runner exited ({status}) before it asked for a job"
                ));
            }
            if Instant::now() >= give_up {
                break Err(format!(
                    "the runner did not ask for a job within {} s: {}",
                    self.options.wait_runner.as_secs(),
                    self.hint()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stopped = match &runner {
            Some(runner) => Some(runner.stop(STOP_GRACE).await),
            None => None,
        };
        let mut case = match asked {
            Ok(ask) => {
                let profile = Profile::from_request(&ask.body);
                (self.sink.progress)(Progress::Profile(&profile));
                let finding = profile.finding();
                let verdict = Verdict {
                    failures: finding
                        .iter()
                        .map(|f| Failure {
                            check: "the job request (POST /api/v4/jobs/request)".into(),
                            expected: "a `session` object {url, certificate, authorization}, and features.session = true".into(),
                            observed: f.clone(),
                        })
                        .collect(),
                    non_strict: Vec::new(),
                };
                let mut case = Case::judged(ID, TITLE, &spec, verdict, None, started.elapsed());
                case.cause = finding.map(|_| "no session offered".to_string());
                self.profile = Some(profile);
                case
            }
            Err(why) => {
                if self.attached.is_some() {
                    self.unresponsive = Some(why.clone());
                }
                let mut case = Case::judged(
                    ID,
                    TITLE,
                    &spec,
                    Verdict::default(),
                    Some(why.clone()),
                    started.elapsed(),
                );
                case.cause = Some(why);
                case
            }
        };
        if case.failed() {
            let process = runner.as_ref().or(self.kept.as_ref());
            self.explain(&mut case, process, stopped, config.as_deref());
        }
        self.sink.case(case);
    }

    fn default_timeout(&self) -> u64 {
        default_timeout(self.options.scale)
    }

    fn write_config(&self, spec: &RunnerSpec, timeout: u64, about: &str) -> anyhow::Result<String> {
        let o = self.options;
        let session =
            SessionAddress::choose(o.session_listen.as_deref(), o.session_advertise.as_deref())?;
        let toml = config::config_toml(
            spec,
            timeout,
            &self.front.url(),
            &session,
            o.job_image.as_deref(),
            &format!("conform: {about}"),
        );
        config::write(&self.config.path, &toml)?;
        Ok(toml)
    }

    /// Runs (or skips) one scenario and reports it.
    pub async fn scenario(&mut self, s: &Scenario) {
        let skipped = |why: String| Case::skipped(&s.id, &s.title, &s.spec, why);
        let scaled = match skip::reason(s)
            .or_else(|| skip::reason_docker(s, self.options))
            .map_or_else(|| scale(s, self.options.scale, self.options.slack), Err)
        {
            Ok(scaled) => scaled,
            Err(why) => return self.sink.case(skipped(why)),
        };
        let attached = self.attached.and_then(|timeout| {
            skip::reason_attached(&scaled.scenario, timeout, &self.options.runner)
        });
        if let Some(why) = attached.or_else(|| self.unresponsive.clone()) {
            return self.sink.case(skipped(why));
        }
        // The job's services on real ports, for as long as the scenario runs.
        let (scaled, _services) = match services::any(&scaled.scenario) {
            false => (scaled, None),
            true => match services::serve(&scaled.scenario).await {
                Ok((scenario, served)) => (Scaled { scenario, ..scaled }, Some(served)),
                Err(e) => {
                    let error = Some(format!("serving the job's services: {e:#}"));
                    let verdict = Verdict::default();
                    let case =
                        Case::judged(&s.id, &s.title, &s.spec, verdict, error, Duration::ZERO);
                    return self.sink.case(case);
                }
            },
        };
        let case = self.run(s, &scaled).await;
        self.sink.case(case);
    }

    async fn run(&mut self, s: &Scenario, scaled: &Scaled) -> Case {
        let started = Instant::now();
        let recorder = Recorder::default();
        let gitlab = gitlab_for(&scaled.scenario, &recorder, self.options);
        self.front
            .serve(gitlab.clone(), job_ids(&scaled.scenario), recorder.clone());
        let in_chromium = self.pages.is_some() && page::can_play(&scaled.scenario);
        if let Some(pages) = self.pages.as_ref().filter(|_| in_chromium) {
            if let Err(e) = pages.prepare(&scaled.scenario, &self.front.entry()).await {
                self.front.idle();
                let error = Some(format!("headless Chromium could not open its pages: {e:#}"));
                let verdict = Verdict::default();
                return Case::judged(&s.id, &s.title, &s.spec, verdict, error, started.elapsed());
            }
        }
        let about = format!("scenario {} ({})", s.id, scaled.describe());
        let (runner, config) =
            match self.start_runner(&scaled.scenario.runner, scaled.session_timeout, &about) {
                Ok(started) => started,
                Err(e) => {
                    self.front.idle();
                    let error = Some(format!("{e:#}"));
                    return Case::judged(
                        &s.id,
                        &s.title,
                        &s.spec,
                        Verdict::default(),
                        error,
                        started.elapsed(),
                    );
                }
            };
        let hint = self.hint();
        let stage = Stage {
            gitlab: &gitlab,
            recorder: &recorder,
            entry: self.front.entry(),
            runner: runner.as_ref(),
            wait: self.options.wait_runner,
            hint: &hint,
            // The simulation watches 2 s more (scaled); real latencies want a floor.
            settle: SETTLE.max(Duration::from_secs_f64(2.0 * scaled.factor)),
            pages: self.pages.clone(),
        };
        let observed = drive(&scaled.scenario, &stage).await;
        let waited = self.front.waited();
        let process = runner.as_ref().or(self.kept.as_ref());
        let exited_alone = process.and_then(RunnerProcess::exited);
        let taken_none = scaled
            .scenario
            .jobs
            .iter()
            .all(|j| gitlab.status(j.id) == Some(JobStatus::Pending));
        let stopped = match &runner {
            Some(runner) => Some(runner.stop(STOP_GRACE).await),
            None => {
                self.let_jobs_end(&gitlab, &scaled.scenario).await;
                None
            }
        };
        self.front.idle();
        let (verdict, error) = match observed {
            Ok(events) => {
                let judging = judge::real(scaled.text_tolerance);
                let observed = Observed::Real(&events);
                (judge::verdict(&scaled.scenario, observed, judging), None)
            }
            Err(e) => {
                if self.attached.is_some() && taken_none {
                    self.unresponsive = Some(format!(
                        "the runner never asked for a job ({} failed)",
                        s.id
                    ));
                }
                (Verdict::default(), Some(e))
            }
        };
        let mut case = Case::judged(&s.id, &s.title, &s.spec, verdict, error, started.elapsed());
        case.waited = waited;
        case.notes.push(scaled.describe());
        if in_chromium {
            case.notes
                .push("its browsers were pages of headless Chromium".to_string());
        }
        if case.failed() {
            // A case that could not run has its reason as its cause.
            case.cause = cause::of_scenario(
                &scaled.scenario,
                &recorder.events(),
                exited_alone.as_deref(),
                self.profile.as_ref(),
            )
            .or_else(|| case.error.clone());
            self.explain(&mut case, process, stopped, config.as_deref());
        }
        case
    }

    /// With `--runner-cmd`: writes the config for `spec` and starts the runner.
    fn start_runner(
        &self,
        spec: &RunnerSpec,
        timeout: u64,
        about: &str,
    ) -> anyhow::Result<(Option<RunnerProcess>, Option<String>)> {
        let Runner::Command { command, env } = &self.options.runner else {
            return Ok((None, None));
        };
        let toml = self.write_config(spec, timeout, about)?;
        let runner = RunnerProcess::start(command, &self.config.path, env)?;
        Ok((Some(runner), Some(toml)))
    }

    /// What to check when the runner does not ask for jobs.
    fn hint(&self) -> String {
        match &self.options.runner {
            Runner::Command { .. } | Runner::Kept { .. } => format!(
                "does the command start a runner that reads the config at {}? (its output is below)",
                self.config.path.display()
            ),
            _ => format!(
                "is it running with the printed config (url = \"{}\", token = \"{RUNNER_TOKEN}\")?",
                self.front.url()
            ),
        }
    }

    /// A runner already running keeps going after a scenario: let its jobs end
    /// (cancel those still running) before the next scenario's GitLab.
    async fn let_jobs_end(&self, gitlab: &Gitlab, scenario: &Scenario) {
        for job in &scenario.jobs {
            if gitlab.status(job.id) == Some(JobStatus::Running) {
                gitlab.cancel(job.id);
            }
        }
        let give_up = Instant::now() + STOP_GRACE;
        let running = || {
            let status = |j: &crate::scenario::JobSpec| gitlab.status(j.id);
            scenario
                .jobs
                .iter()
                .any(|j| status(j) == Some(JobStatus::Running))
        };
        while running() && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn explain(
        &self,
        case: &mut Case,
        runner: Option<&RunnerProcess>,
        stopped: Option<(String, bool)>,
        config: Option<&str>,
    ) {
        // A runner that had exited by itself says so in the case's cause.
        let stopped = stopped.filter(|_| runner.is_some_and(|r| !r.exited_before_stop()));
        if let Some((status, killed)) = stopped {
            let note = if killed {
                format!("after the case the harness stopped the runner: it did not stop within 10 s of SIGTERM and was killed ({status})")
            } else {
                format!("after the case the harness stopped the runner with SIGTERM ({status})")
            };
            case.notes.push(note);
        }
        if let Some(config) = config {
            case.notes
                .push(format!("its config ({}):", self.config.path.display()));
            case.notes.extend(config.lines().map(|l| format!("  {l}")));
        }
        case.runner_output = runner.map(|r| r.output_tail(OUTPUT_LINES));
    }

    /// Ends what the run started for all its cases (Chromium, a kept runner).
    pub async fn finish(&mut self) {
        if let Some(pages) = self.pages.take() {
            pages.quit().await;
        }
        if let Some(runner) = self.kept.take() {
            runner.stop(STOP_GRACE).await;
        }
    }

    /// The cases reported so far, in order.
    pub fn cases(&self) -> &[Case] {
        &self.sink.cases
    }

    /// The runner started once for every case ([`Runner::Kept`]).
    pub fn kept(&self) -> Option<&RunnerProcess> {
        self.kept.as_ref()
    }

    /// The endpoint-level cases, on a session of a job of their own.
    pub async fn endpoint(&mut self) {
        if let Some(why) = self.unresponsive.clone() {
            return endpoint::unrun(&why, false, &mut |case| self.sink.case(case));
        }
        let scenario = load_str(ENDPOINT_JOB, Path::new("(built in)"), "endpoint/session")
            .expect("the built-in endpoint job is a valid scenario");
        let recorder = Recorder::default();
        let gitlab = gitlab_for(&scenario, &recorder, self.options);
        self.front
            .serve(gitlab.clone(), job_ids(&scenario), recorder);
        let timeout = self.attached.unwrap_or_else(|| self.default_timeout());
        let started =
            self.start_runner(&RunnerSpec::default(), timeout, "the endpoint-level cases");
        let session = match &started {
            Err(e) => Err(format!("{e:#}")),
            Ok((runner, _)) => {
                let process = runner.as_ref().or(self.kept.as_ref());
                self.session_of(&gitlab, process).await
            }
        };
        let settings = endpoint::Settings {
            pings: self.options.pings,
            slack: self.options.slack,
        };
        match session.and_then(|s| endpoint::Target::new(s, settings)) {
            Ok(target) => endpoint::run(&target, &mut |case| self.sink.case(case)).await,
            Err(why) => endpoint::unrun(&why, true, &mut |case| self.sink.case(case)),
        }
        match &started {
            Ok((Some(runner), _)) => drop(runner.stop(STOP_GRACE).await),
            _ => self.let_jobs_end(&gitlab, &scenario).await,
        }
        self.front.idle();
    }

    /// The session the runner offers with job 1.
    async fn session_of(
        &self,
        gitlab: &Gitlab,
        runner: Option<&RunnerProcess>,
    ) -> Result<crate::actors::gitlab::SessionInfo, String> {
        let give_up = Instant::now() + self.options.wait_runner;
        while gitlab.status(1) == Some(JobStatus::Pending) {
            if let Some(status) = runner.and_then(RunnerProcess::exited) {
                return Err(format!("the runner exited ({status}) before it took a job"));
            }
            if Instant::now() >= give_up {
                return Err(format!(
                    "the runner did not ask for a job within {} s: {}",
                    self.options.wait_runner.as_secs(),
                    self.hint()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gitlab.session(1).ok_or_else(|| {
            let profile = self
                .front
                .asks()
                .last()
                .map(|a| Profile::from_request(&a.body));
            profile.and_then(|p| p.no_terminal()).unwrap_or_else(|| {
                "no session offered (JOB-1): the runner took the job without a `session` object"
                    .to_string()
            })
        })
    }
}

/// `session_timeout` for a runner not configured by a scenario: the default, scaled.
pub(super) fn default_timeout(scale: f64) -> u64 {
    let default = session_server::config::DEFAULT_SESSION_TIMEOUT.as_secs() as f64;
    ((default * scale).ceil() as u64).max(1)
}

fn job_ids(scenario: &Scenario) -> Vec<u64> {
    scenario.jobs.iter().map(|j| j.id).collect()
}

/// GitLab for `scenario`, as the simulation builds it. The jobs have no
/// repository: a real runner must not try to fetch one. A docker runner's
/// jobs run in `job_image`, without services (its engine has that image),
/// and tell an engine that holds starts how long to hold theirs.
fn gitlab_for(scenario: &Scenario, recorder: &Recorder, options: &Options) -> Gitlab {
    let gitlab = gitlab::of_scenario(scenario, recorder);
    let docker = scenario.runner.executor == Executor::Docker;
    let image = options.job_image.as_deref().filter(|_| docker);
    for job in &scenario.jobs {
        gitlab.add_variable(job.id, "GIT_STRATEGY", "none");
        if let Some(image) = image {
            gitlab.set_image(job.id, image);
        }
        let hold = match job.container_start.filter(|_| options.engine_holds_starts) {
            Some(ContainerStart::After(hold)) => hold,
            Some(ContainerStart::Never) => never_hold(job, options.slack),
            None => continue,
        };
        gitlab.add_variable(job.id, HOLD_VARIABLE, &engine_hold(hold));
    }
    gitlab
}

/// What `.ci/docker-delay-runtime` reads in a build container's environment.
const HOLD_VARIABLE: &str = "SESSION_HARNESS_CONTAINER_START";

/// The variable's value for a (scaled) `container_start`: seconds.
fn engine_hold(container_start: Dur) -> String {
    format!("{:.3}", container_start.0.as_secs_f64())
}

/// A start that never comes, as far as the job can tell: held past the job's
/// (scaled) timeout by the tolerance of its end, so that a runner that waits
/// for the start fails the job's `finished_at`. Not for ever: an engine
/// removes a container only once its start has ended, and the runner's
/// removal must be done within the harness's stop grace.
fn never_hold(job: &crate::scenario::JobSpec, slack: Duration) -> Dur {
    let timeout = job.timeout();
    Dur(timeout + slack.max(Duration::from_secs(1)))
}

/// Where the runner's config is written: the given path, or a temporary file
/// removed at the end.
struct ConfigFile {
    path: PathBuf,
    temporary: bool,
}

impl ConfigFile {
    fn new(path: Option<PathBuf>) -> Self {
        match path {
            Some(path) => ConfigFile {
                path,
                temporary: false,
            },
            None => ConfigFile {
                path: std::env::temp_dir().join(format!(
                    "session-harness-conform-{}.toml",
                    std::process::id()
                )),
                temporary: true,
            },
        }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
