//! The world's browsers as its hosts: each starts shortly before its first
//! step and follows its timeline (`timeline::browse`); one done with its
//! timeline and its connection is kept whole until the run is over.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use session_server::net::{Net, TurmoilNet};
use tokio::sync::watch;

use super::ground::SimPace;
use crate::actors::browser::Browser;
use crate::actors::gitlab::Gitlab;
use crate::scenario::{browser_plans, BrowserPlan, Scenario, Step};
use crate::timeline::{self, Progress};
use crate::trace::Recorder;

/// Adds a host for each of `scenario`'s browsers, each of them busy in
/// `progress` until it is done, and each told by `over` that the run is over.
pub fn add(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    gitlab: &Gitlab,
    recorder: &Recorder,
    progress: &Arc<Progress>,
    over: &watch::Receiver<bool>,
    tick: Duration,
) -> (Vec<LateBrowser>, DoneBrowsers) {
    let done = DoneBrowsers::default();
    let mut browsers = Vec::new();
    let entry = if scenario.network.front_proxy.is_some() {
        "proxy:80"
    } else {
        "gitlab:80"
    };
    for BrowserPlan { name, user, steps } in browser_plans(scenario) {
        let browser = Browser::new(&name, user, TurmoilNet, gitlab.clone(), recorder.clone());
        progress.busy(&name, true);
        let first = steps.iter().map(|s| s.at.0).min().unwrap_or_default();
        let drive = drive_browser(
            browser,
            steps,
            entry.to_string(),
            progress.clone(),
            over.clone(),
            done.clone(),
        );
        browsers.push(LateBrowser::register(sim, name, first, tick, drive));
    }
    (browsers, done)
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
pub struct LateBrowser {
    name: String,
    /// When the simulation starts it.
    start: Duration,
    started: Rc<Cell<bool>>,
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
        let started = Rc::new(Cell::new(start.is_zero()));
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

    pub fn start_if_due(&self, sim: &mut turmoil::Sim<'_>) {
        if !self.started.get() && self.start <= sim.elapsed() {
            self.started.set(true);
            sim.bounce(self.name.as_str());
        }
    }

    pub fn started(&self) -> bool {
        self.started.get()
    }

    pub fn running(&self, sim: &mut turmoil::Sim<'_>) -> bool {
        self.started.get() && sim.is_host_running(self.name.as_str())
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
pub struct DoneBrowsers(Rc<RefCell<Vec<Box<dyn Any>>>>);

async fn drive_browser<N: Net + 'static>(
    browser: Browser<N>,
    steps: Vec<Step>,
    entry: String,
    progress: Arc<Progress>,
    mut over: watch::Receiver<bool>,
    done: DoneBrowsers,
) -> turmoil::Result {
    let browsed = timeline::browse(browser, steps, &entry, SimPace, &progress, over.clone());
    match browsed.await {
        Some(browser) => done.0.borrow_mut().push(Box::new(browser)),
        None => {
            let _ = over.wait_for(|o| *o).await;
        }
    }
    Ok(())
}
