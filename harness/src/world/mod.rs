//! The simulated world: GitLab (coordinator, Rails, Workhorse), the runner under
//! test (the impl's unchanged code on turmoil), browsers and middleboxes, driven
//! through a scenario's timeline in virtual time.
//!
//! Hosts: `gitlab:80` (API and Workhorse), `runner:8093` (or `runner-1..N`
//! behind `lb:8093`), `proxy:80` in front of GitLab, `runner-proxy:8093` in
//! front of the runner, one host per job service (its alias, else its name:
//! `webide-file-sync:3000`), and one host per browser.

pub mod browser;
pub mod gitlab;
pub mod machine;
mod middlebox;
pub mod plain;
pub(crate) mod service;
mod service_proxy;
pub mod session_probe;
pub(crate) mod tls;
pub mod workhorse;
pub mod ws;

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use session_server::config::Config;
use session_server::machine::timed::Timed;
use session_server::machine::JobTimings;
use session_server::net::{Net, TurmoilNet};
use session_server::rng::Rng;
use session_server::runner::{self, Runner, RunnerParts};
use tokio::sync::watch;

use crate::scenario::{
    Action, BrowserPlan, BrowserStep, ContainerStart, Dur, FrontProxy, Open, Scenario, Step,
    StopMode,
};
use crate::trace::{Event, Injected, Recorder, What};
use browser::{Browser, Via};
use gitlab::{Gitlab, JobDef};

pub const SESSION_PORT: u16 = 8093;
pub const RUNNER_TOKEN: &str = "glrt-session-harness";
const DEFAULT_TICK: Duration = Duration::from_millis(10);
const DEFAULT_PROTOCOL: &str = "terminal.gitlab.com";
/// After the last thing happens, the world runs this much longer to catch late events.
const SETTLE: Duration = Duration::from_secs(2);
/// How often the director asks whether everything settled.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The runner hosts: `runner`, or `runner-1..N` for replicas.
pub fn runner_hosts(replicas: u32) -> Vec<String> {
    if replicas <= 1 {
        vec!["runner".into()]
    } else {
        (1..=replicas).map(|i| format!("runner-{i}")).collect()
    }
}

/// What a run observed.
pub struct Run {
    pub events: Vec<Event>,
    pub simulated: Duration,
    /// Terminals the runner's machine opened, and those still open at the end.
    pub terminals: machine::Counters,
    /// What each ended job's session URL answered at the end (LC-7), by job.
    pub session_probes: Vec<(u64, session_probe::Probe)>,
}

/// Runs `scenario` with `seed` in a fresh simulated world.
pub fn simulate(scenario: &Scenario, seed: u64) -> anyhow::Result<Run> {
    let recorder = Recorder::default();
    let gitlab = gitlab_of(scenario, &recorder);
    let last_step = scenario.last_step();
    let end = scenario
        .end
        .map(|d| d.0)
        .unwrap_or(last_step + Duration::from_secs(3600));
    let tick = scenario.tick.map(|t| t.0).unwrap_or(DEFAULT_TICK);
    let mut builder = turmoil::Builder::new();
    let [min, max] = scenario
        .network
        .latency
        .unwrap_or([Dur(Duration::from_millis(1)), Dur(Duration::from_millis(5))]);
    builder
        .simulation_duration(end + Duration::from_secs(600))
        .tick_duration(tick)
        .min_message_latency(min.0)
        .max_message_latency(max.0)
        .rng_seed(seed);
    let mut sim = builder.build();

    let g = gitlab.clone();
    let r = recorder.clone();
    sim.host("gitlab", move || {
        let (g, r) = (g.clone(), r.clone());
        async move {
            let listener = TurmoilNet.bind("0.0.0.0:80").await?;
            workhorse::serve(listener, TurmoilNet, g, r).await;
            Ok(())
        }
    });

    let hosts = runner_hosts(scenario.runner.replicas);
    let counters = machine::Counters::default();
    let mut controls = Vec::new();
    for host in &hosts {
        let (control, _) = watch::channel(None::<runner::StopMode>);
        let control = Arc::new(control);
        controls.push(control.clone());
        let toml = runner_config(scenario, host);
        let boots = Arc::new(AtomicU64::new(0));
        let counters = counters.clone();
        let timings = job_timings(scenario);
        sim.host(host.as_str(), move || {
            let (toml, control, boots) = (toml.clone(), control.clone(), boots.clone());
            let counters = counters.clone();
            let timings = timings.clone();
            async move {
                let boot = boots.fetch_add(1, Ordering::Relaxed);
                let config = Config::parse(&toml)?;
                // A restarted runner draws new ids: another stream of the same seed.
                let rng = Rng::seeded(seed.wrapping_mul(1_000_003).wrapping_add(boot));
                let machine = timings.iter().fold(
                    Timed::new(machine::CountingMachine(counters)),
                    |machine, (id, timings)| machine.with_job(*id, *timings),
                );
                let machine = Arc::new(machine);
                let runner = Runner::start(RunnerParts::new(config, TurmoilNet, machine, rng))
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let mut signals = control.subscribe();
                if let Ok(mode) = signals
                    .wait_for(Option::is_some)
                    .await
                    .map(|m| m.expect("checked"))
                {
                    runner.stop(mode).await;
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    add_middleboxes(&mut sim, scenario, &hosts);
    add_services(&mut sim, scenario);

    let progress = Arc::new(Progress::default());
    let done_browsers = DoneBrowsers::default();
    let (over_tx, over) = watch::channel(false);
    let mut browsers = Vec::new();
    for BrowserPlan { name, user, steps } in crate::scenario::browser_plans(scenario) {
        let browser = Browser::new(&name, user, TurmoilNet, gitlab.clone(), recorder.clone());
        let entry = if scenario.network.front_proxy.is_some() {
            "proxy:80"
        } else {
            "gitlab:80"
        }
        .to_string();
        progress.busy(&name, true);
        let first = steps.iter().map(|s| s.at.0).min().unwrap_or_default();
        let drive = drive_browser(
            browser,
            steps,
            entry,
            progress.clone(),
            over.clone(),
            done_browsers.clone(),
        );
        browsers.push(LateBrowser::register(&mut sim, name, first, tick, drive));
    }
    // The director ends the run: once everything settled (checked on a grid
    // of CHECK_EVERY, as it always was), it probes each ended job's session
    // URL (LC-7 over sockets) during SETTLE, then tells the browsers the run
    // is over. It is a host whose software idles (finished, so turmoil does
    // not tick a runtime for it) until the loop below starts it: one host
    // fewer to step every tick of every run. Registered here, last, as
    // before: its address and the world's random stream stay the same.
    let probes: Arc<Mutex<Vec<(u64, session_probe::Probe)>>> = Arc::default();
    let settling: Arc<Mutex<Option<Duration>>> = Arc::default();
    let over_tx = Arc::new(over_tx);
    {
        let (g, found, settling, over_tx) = (
            gitlab.clone(),
            probes.clone(),
            settling.clone(),
            over_tx.clone(),
        );
        sim.host("director", move || {
            let settle = *settling.lock().expect("settling lock");
            let (g, found, over_tx) = (g.clone(), found.clone(), over_tx.clone());
            async move {
                let Some(settle) = settle else {
                    return Ok(());
                };
                let probe = async {
                    for (job, session) in g.ended_sessions() {
                        let answer = session_probe::probe(&TurmoilNet, &session).await;
                        found.lock().expect("probes lock").push((job, answer));
                    }
                };
                let _ = tokio::time::timeout(settle, async {
                    tokio::join!(probe, tokio::time::sleep(settle))
                })
                .await;
                over_tx.send_replace(true);
                Ok(())
            }
        });
    }

    if scenario.network.firewall {
        for runner in &hosts {
            for browser in crate::scenario::browser_names(scenario) {
                sim.partition(runner.as_str(), browser.as_str());
            }
        }
        recorder.record_at(
            Duration::ZERO,
            "net",
            Some("DP-2"),
            What::Injected {
                description: Injected::Firewall,
            },
        );
    }
    let global: Vec<&Step> = scenario
        .steps
        .iter()
        .filter(|s| s.browser().is_none())
        .collect();
    let mut next = 0;
    // The next instant the director asks whether the run settled.
    let mut check = Duration::ZERO;
    // Whether the step that told the browsers the run is over was taken.
    let mut told = false;
    loop {
        while next < global.len() && global[next].at.0 <= sim.elapsed() {
            apply(&mut sim, global[next], &gitlab, &controls, &recorder);
            next += 1;
        }
        for browser in &browsers {
            browser.start_if_due(&mut sim);
        }
        sim.step()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("simulating {}", scenario.id))?;
        // The run ends once the browsers saw it over: a step after the one
        // that said so, as when they were turmoil's clients, unless none
        // was left to see it (one that never started counts as one waiting).
        if *over.borrow() {
            let running = browsers.iter().any(|b| b.running(&mut sim));
            if !running && (told || browsers.iter().all(LateBrowser::started)) {
                break;
            }
            told = true;
        }
        // As the director did, a check at instant `check` sees the world
        // after every host ran the tick that starts at or contains `check`
        // (the director ran last in each tick). The settling it starts here
        // is shortened by the time since `check`, so that it ends when it
        // always did.
        let now = sim.elapsed();
        while check < now && settling.lock().expect("settling lock").is_none() {
            let settled = check >= last_step && gitlab.all_done() && progress.idle();
            if settled || check >= end {
                *settling.lock().expect("settling lock") = Some(SETTLE.saturating_sub(now - check));
                sim.bounce("director");
            }
            check += CHECK_EVERY;
        }
    }
    // Dropped outside the world: their sockets send nothing any more.
    drop(done_browsers);
    let session_probes = std::mem::take(&mut *probes.lock().expect("probes lock"));
    Ok(Run {
        events: recorder.events(),
        simulated: sim.elapsed(),
        terminals: counters,
        session_probes,
    })
}

/// A browser as a host that idles (finished, so turmoil does not tick a
/// runtime for it, as the director does) until shortly before its first
/// step, when the simulation starts it with `bounce`.
///
/// Speed: turmoil steps every running host every tick, and most browsers
/// wait most of a run for their first step (the fuzzer's LC-7 probe waits
/// for the job's end). It starts `START_AHEAD` ticks early, so that its first
/// sleep is already set when the tick of its step begins, as when it slept
/// from the start: the same instants, the same traces.
struct LateBrowser {
    name: String,
    /// When the simulation starts it.
    start: Duration,
    started: Rc<std::cell::Cell<bool>>,
}

/// Ticks before its first step that a browser starts.
const START_AHEAD: u32 = 2;

impl LateBrowser {
    fn register<F>(
        sim: &mut turmoil::Sim<'_>,
        name: String,
        first: Duration,
        tick: Duration,
        drive: F,
    ) -> LateBrowser
    where
        F: std::future::Future<Output = turmoil::Result> + 'static,
    {
        let start = first.saturating_sub(tick * START_AHEAD);
        let started = Rc::new(std::cell::Cell::new(start.is_zero()));
        let drive = RefCell::new(Some(Box::pin(drive)));
        let go = started.clone();
        sim.host(name.as_str(), move || {
            // Its timeline runs once: called at registration, and again by
            // the bounce that starts it.
            let drive = go.get().then(|| drive.borrow_mut().take()).flatten();
            async move {
                match drive {
                    Some(drive) => drive.await,
                    None => Ok(()),
                }
            }
        });
        LateBrowser {
            name,
            start,
            started,
        }
    }

    fn start_if_due(&self, sim: &mut turmoil::Sim<'_>) {
        if !self.started.get() && self.start <= sim.elapsed() {
            self.started.set(true);
            sim.bounce(self.name.as_str());
        }
    }

    fn started(&self) -> bool {
        self.started.get()
    }

    fn running(&self, sim: &mut turmoil::Sim<'_>) -> bool {
        self.started.get() && sim.is_host_running(self.name.as_str())
    }
}

/// Which browsers are still doing something.
#[derive(Default)]
struct Progress(Mutex<BTreeSet<String>>);

impl Progress {
    fn busy(&self, name: &str, busy: bool) {
        let mut set = self.0.lock().expect("progress lock");
        if busy {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }
    fn idle(&self) -> bool {
        self.0.lock().expect("progress lock").is_empty()
    }
}

/// Browsers that finished their timeline with their connection ended, kept
/// whole (sockets and all) until the run is over.
///
/// Speed: turmoil steps the runtime of every host whose software still runs,
/// tick by tick, idle or not. A browser that is done ends its software at
/// once instead of idling until the run is over (most scenarios' browsers
/// leave long before their job ends), so it costs nothing from then on. It
/// is kept rather than dropped: dropping its sockets inside the world would
/// send segments (a FIN) that the run never sent before, and so change the
/// world's timing and the snapshots.
#[derive(Clone, Default)]
struct DoneBrowsers(Rc<RefCell<Vec<Box<dyn Any>>>>);

async fn drive_browser<N: Net + 'static>(
    mut browser: Browser<N>,
    steps: Vec<Step>,
    entry: String,
    progress: Arc<Progress>,
    mut over: watch::Receiver<bool>,
    done: DoneBrowsers,
) -> turmoil::Result {
    for step in steps {
        // A step stuck behind a fault must not outlive the run.
        tokio::select! {
            _ = perform(&mut browser, &step, &entry) => {}
            _ = over.wait_for(|o| *o) => break,
        }
    }
    // Done with the timeline: wait for the connection to end, or for the run to.
    let closed = tokio::select! {
        _ = browser.closed() => true,
        _ = over.wait_for(|o| *o) => false,
    };
    progress.busy(&browser.name, false);
    if closed {
        done.0.borrow_mut().push(Box::new(browser));
        return Ok(());
    }
    let _ = over.wait_for(|o| *o).await;
    Ok(())
}

pub async fn perform<N: Net>(browser: &mut Browser<N>, step: &Step, entry: &str) {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    if step.at.0 > now {
        tokio::time::sleep(step.at.0 - now).await;
    }
    act(browser, step, entry).await;
}

/// Carries out one browser step now (`entry`: where GitLab is reached). The
/// other steps are GitLab's, the operator's or the network's: not a browser's
/// to take.
pub async fn act<N: Net>(browser: &mut Browser<N>, step: &Step, entry: &str) {
    let Some((_, step)) = step.action.browser_step() else {
        return;
    };
    match step {
        BrowserStep::Open(Open {
            job,
            via,
            protocols,
            request,
            proxy,
            ..
        }) => {
            let via = match (via, proxy) {
                (crate::scenario::Via::Direct { token, insecure }, _) => Via::Direct {
                    token: *token,
                    insecure: *insecure,
                },
                (crate::scenario::Via::Gitlab, Some(target)) => Via::Service {
                    entry: entry.to_string(),
                    target: target.clone(),
                },
                (crate::scenario::Via::Gitlab, None) => Via::Gitlab {
                    entry: entry.to_string(),
                },
            };
            if let Some(shape) = request {
                browser.request(*job, &via, *shape).await;
                return;
            }
            let protocols = protocols
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_PROTOCOL.to_string()]);
            browser.open(*job, &via, &protocols).await;
        }
        BrowserStep::Type { text, repeat } => {
            browser.type_text(text.repeat(repeat).as_bytes()).await
        }
        BrowserStep::Fetch { job, proxy } => browser.fetch(job, entry, proxy).await,
        BrowserStep::Close => browser.close().await,
        BrowserStep::Vanish => browser.vanish().await,
    }
}

/// A global step: GitLab, the runner's operator, or the network. A browser's
/// steps are its own (`act`).
fn apply(
    sim: &mut turmoil::Sim<'_>,
    step: &Step,
    gitlab: &Gitlab,
    controls: &[Arc<watch::Sender<Option<runner::StopMode>>>],
    recorder: &Recorder,
) {
    let at = sim.elapsed();
    match &step.action {
        Action::Signal { mode } => {
            let stop = match mode {
                StopMode::Graceful => runner::StopMode::Graceful,
                StopMode::Abort => runner::StopMode::Abort,
            };
            for control in controls {
                control.send_replace(Some(stop));
            }
        }
        Action::Cancel { .. } | Action::Revoke { .. } | Action::Archive { .. } => {
            gitlab.act(&step.action)
        }
        Action::Partition(link) => sim.partition(link.a.as_str(), link.b.as_str()),
        Action::Repair(link) => sim.repair(link.a.as_str(), link.b.as_str()),
        Action::Hold(link) => sim.hold(link.a.as_str(), link.b.as_str()),
        Action::Release(link) => sim.release(link.a.as_str(), link.b.as_str()),
        Action::Crash { host } => sim.crash(host.as_str()),
        Action::Bounce { host } => sim.bounce(host.as_str()),
        Action::Open(_)
        | Action::Fetch { .. }
        | Action::Type { .. }
        | Action::Close { .. }
        | Action::Vanish { .. } => return,
    }
    if let Some((spec, description)) = Injected::of_step(&step.action) {
        recorder.record_at(at, "scenario", spec, What::Injected { description });
    }
}

/// The executor's timings of each job (`prepare`, `container_start`): the
/// simulated machine is told them; the job carries nothing of them.
fn job_timings(scenario: &Scenario) -> Vec<(u64, JobTimings)> {
    scenario
        .jobs
        .iter()
        .map(|job| {
            let container_start = match job.container_start {
                Some(ContainerStart::Never) => None,
                Some(ContainerStart::After(start)) => Some(start.0),
                None => Some(Duration::ZERO),
            };
            let prepare = job.prepare.map(|d| d.0).unwrap_or_default();
            let timings = JobTimings {
                prepare,
                container_start,
            };
            (job.id, timings)
        })
        .collect()
}

pub fn gitlab_of(scenario: &Scenario, recorder: &Recorder) -> Gitlab {
    let gitlab = Gitlab::new(
        recorder.clone(),
        RUNNER_TOKEN,
        scenario.gitlab.max_session_time.map(|d| d.0),
    );
    for (name, user) in &scenario.users {
        gitlab.add_user(name, user.role);
    }
    for (name, project) in &scenario.projects {
        gitlab.set_archived(name, project.archived);
    }
    for job in &scenario.jobs {
        gitlab.add_job(JobDef {
            id: job.id,
            owner: job.owner.clone(),
            project: job.project.clone(),
            script: job.script.clone(),
            timeout: job
                .timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(3600)),
            variables: Vec::new(),
            image: None,
            webide: job.webide,
            services: job.services.clone(),
        });
    }
    gitlab
}

/// The config.toml of runner host `host`.
pub fn runner_config(scenario: &Scenario, host: &str) -> String {
    let r = &scenario.runner;
    let mut toml = format!("concurrent = {}\ncheck_interval = 3\n\n", r.concurrent);
    if r.session_server {
        let advertise = if scenario.network.unreachable_advertise {
            format!("{host}:1{SESSION_PORT}")
        } else if scenario.network.runner_tls_proxy {
            format!("runner-proxy:{SESSION_PORT}")
        } else if r.replicas > 1 {
            format!("lb:{SESSION_PORT}")
        } else {
            format!("{host}:{SESSION_PORT}")
        };
        toml.push_str(&format!("[session_server]\nlisten_address = \"0.0.0.0:{SESSION_PORT}\"\nadvertise_address = \"{advertise}\"\n"));
        if let Some(timeout) = r.session_timeout {
            toml.push_str(&format!("session_timeout = {timeout}\n"));
        }
        toml.push('\n');
    }
    toml.push_str(&format!(
        "[[runners]]\nname = \"{host}\"\nurl = \"http://gitlab:80\"\ntoken = \"{RUNNER_TOKEN}\"\nexecutor = \"{}\"\n",
        r.executor
    ));
    toml
}

/// WI-5: each job service's host, answering on its declared ports except
/// those that nothing listens on. A host is declared once, by its first job.
fn add_services(sim: &mut turmoil::Sim<'_>, scenario: &Scenario) {
    let mut declared = BTreeSet::new();
    let services = scenario
        .jobs
        .iter()
        .flat_map(|j| j.services.iter().flatten());
    for service in services {
        let host = service.host().to_string();
        if !declared.insert(host.clone()) {
            continue;
        }
        let ports: Vec<u16> = service
            .ports
            .iter()
            .copied()
            .filter(|p| !service.closed_ports.contains(p))
            .collect();
        let name = host.clone();
        sim.host(name.as_str(), move || {
            let (host, ports) = (host.clone(), ports.clone());
            async move {
                let mut listening = Vec::new();
                for port in ports {
                    let listener = TurmoilNet.bind(&format!("0.0.0.0:{port}")).await?;
                    listening.push(tokio::spawn(service::serve::<TurmoilNet>(
                        listener,
                        host.clone(),
                        port,
                    )));
                }
                for port in listening {
                    let _ = port.await;
                }
                Ok(())
            }
        });
    }
}

fn add_middleboxes(sim: &mut turmoil::Sim<'_>, scenario: &Scenario, runners: &[String]) {
    if scenario.runner.replicas > 1 {
        let upstreams: Vec<String> = runners
            .iter()
            .map(|h| format!("{h}:{SESSION_PORT}"))
            .collect();
        sim.host("lb", move || {
            let upstreams = upstreams.clone();
            async move {
                let listener = TurmoilNet.bind(&format!("0.0.0.0:{SESSION_PORT}")).await?;
                middlebox::tcp_relay(listener, TurmoilNet, upstreams).await;
                Ok(())
            }
        });
    }
    if let Some(mode) = scenario.network.front_proxy {
        sim.host("proxy", move || async move {
            let listener = TurmoilNet.bind("0.0.0.0:80").await?;
            match mode {
                FrontProxy::StripUpgrade => {
                    middlebox::strip_upgrade_proxy(listener, TurmoilNet, "gitlab:80".into()).await
                }
                FrontProxy::Pass => {
                    middlebox::tcp_relay(listener, TurmoilNet, vec!["gitlab:80".into()]).await
                }
            }
            Ok(())
        });
    }
    if scenario.network.runner_tls_proxy {
        let upstream = format!("{}:{SESSION_PORT}", runners[0]);
        sim.host("runner-proxy", move || {
            let upstream = upstream.clone();
            async move {
                let listener = TurmoilNet.bind(&format!("0.0.0.0:{SESSION_PORT}")).await?;
                middlebox::tls_terminating_proxy(listener, TurmoilNet, "runner-proxy", upstream)
                    .await;
                Ok(())
            }
        });
    }
}
