//! The simulated world: the harness's actors (GitLab with Rails and
//! Workhorse, browsers, middleboxes, services) and the runner under test (the
//! impl's unchanged code) as hosts of turmoil, driven through a scenario's
//! timeline (`timeline`) in virtual time.
//!
//! Hosts: `gitlab:80` (API and Workhorse), `runner:8093` (or `runner-1..N`
//! behind `lb:8093`), `proxy:80` in front of GitLab, `runner-proxy:8093` in
//! front of the runner, one host per job service (its alias, else its name:
//! `webide-file-sync:3000`), and one host per browser.

mod allocator;
mod browsers;
mod ground;
pub mod machine;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_server::config::Config;
use session_server::machine::timed::Timed;
use session_server::machine::JobTimings;
use session_server::net::{Net, TurmoilNet};
use session_server::rng::Rng;
use session_server::runner::{self, Runner, RunnerParts};
use tokio::sync::watch;

use crate::actors::gitlab;
use crate::actors::{middlebox, service, session_probe, workhorse};
use crate::scenario::{ContainerStart, Dur, FrontProxy, Scenario};
use crate::timeline::{self, Progress};
use crate::trace::{Event, Injected, Recorder, What};
use ground::SimGround;

pub const SESSION_PORT: u16 = 8093;
const DEFAULT_TICK: Duration = Duration::from_millis(10);

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
    let gitlab = gitlab::of_scenario(scenario, &recorder);
    let end = scenario.ends_by();
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

    let hosts = scenario.runner.hosts();
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
    let (over_tx, over) = watch::channel(false);
    let (browsers, done_browsers) = browsers::add(
        &mut sim, scenario, &gitlab, &recorder, &progress, &over, tick,
    );
    // The director ends the run: once the timeline settled, it probes each
    // ended job's session URL (LC-7 over sockets), and once that is done and
    // the settle time over, tells the browsers the run is over. Where hops
    // are slow (the fuzz world's 1 s tick) its probe outlasts the settle
    // time. It is a host whose software idles (finished, so turmoil does not
    // tick a runtime for it) until the ground starts it
    // (`SimGround::settle`): one host fewer to step every tick of every run. Registered here, last, as before: its
    // address and the world's random stream stay the same.
    let probes: Arc<Mutex<Vec<(u64, session_probe::Probe)>>> = Arc::default();
    let settling: Arc<Mutex<Option<Duration>>> = Arc::default();
    let over_tx = Arc::new(over_tx);
    let patience = session_probe::timeout(tick);
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
                        let answer = session_probe::probe(&TurmoilNet, &session, patience).await;
                        found.lock().expect("probes lock").push((job, answer));
                    }
                };
                let _ = tokio::time::timeout(settle.max(patience), async {
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
    let mut ground = SimGround {
        sim: &mut sim,
        recorder: recorder.clone(),
        controls,
        settling,
        over,
        browsers,
        told: false,
        finished: false,
        name: scenario.id.clone(),
    };
    ground::at_once(timeline::run(scenario, &mut ground, &gitlab, &progress))
        .map_err(|e| anyhow::anyhow!(e))?;
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

/// The config.toml of runner host `host`.
pub fn runner_config(scenario: &Scenario, host: &str) -> String {
    let r = &scenario.runner;
    let mut toml = format!(
        "concurrent = {}\ncheck_interval = {}\n\n",
        r.concurrent, r.check_interval
    );
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
        "[[runners]]\nname = \"{host}\"\nurl = \"http://gitlab:80\"\ntoken = \"{}\"\nexecutor = \"{}\"\n",
        gitlab::RUNNER_TOKEN,
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
