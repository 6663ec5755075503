//! The timeline engine's ground in a simulated world: turmoil's clock, its
//! network, and the runner hosts' stop signals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_server::runner;
use tokio::sync::watch;

use super::browsers::LateBrowser;
use crate::scenario::{Action, StopMode};
use crate::timeline::{Ground, NotHere, Pace};
use crate::trace::{Injected, Recorder, What};

/// How often the engine asks whether everything settled.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// After everything settled, the world runs this much longer to catch late
/// events (and the director probes ended jobs' sessions, LC-7, however long
/// that takes: see `session_probe::timeout`).
const SETTLE: Duration = Duration::from_secs(2);

/// The simulation under the timeline.
pub struct SimGround<'a, 'b> {
    pub sim: &'b mut turmoil::Sim<'a>,
    pub recorder: Recorder,
    /// Each runner host's stop signal.
    pub controls: Vec<Arc<watch::Sender<Option<runner::StopMode>>>>,
    /// The director's settle time, set when it is started.
    pub settling: Arc<Mutex<Option<Duration>>>,
    /// Said by the director when it is done.
    pub over: watch::Receiver<bool>,
    pub browsers: Vec<LateBrowser>,
    /// A step was taken since the director said the run is over.
    pub told: bool,
    /// The browsers saw that the run is over, and none of them runs.
    pub finished: bool,
    pub name: String,
}

impl Ground for SimGround<'_, '_> {
    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn check_every(&self) -> Duration {
        CHECK_EVERY
    }

    fn signal(&mut self, mode: StopMode) {
        let stop = match mode {
            StopMode::Graceful => runner::StopMode::Graceful,
            StopMode::Abort => runner::StopMode::Abort,
        };
        for control in &self.controls {
            control.send_replace(Some(stop));
        }
    }

    fn network(&mut self, action: &Action) -> Result<(), NotHere> {
        let sim = &mut *self.sim;
        match action {
            Action::Partition(link) => sim.partition(link.a.as_str(), link.b.as_str()),
            Action::Repair(link) => sim.repair(link.a.as_str(), link.b.as_str()),
            Action::Hold(link) => sim.hold(link.a.as_str(), link.b.as_str()),
            Action::Release(link) => sim.release(link.a.as_str(), link.b.as_str()),
            Action::Crash { host } => sim.crash(host.as_str()),
            Action::Bounce { host } => sim.bounce(host.as_str()),
            _ => return Err(NotHere),
        }
        Ok(())
    }

    fn record(&self, spec: Option<&'static str>, injected: Injected) {
        let what = What::Injected {
            description: injected,
        };
        self.recorder.record_at(self.now(), "scenario", spec, what);
    }

    /// Starts the browsers whose first step is near, and takes a step.
    async fn advance(&mut self) -> Result<(), String> {
        for browser in &self.browsers {
            browser.start_if_due(self.sim);
        }
        self.sim
            .step()
            .map_err(|e| format!("simulating {}: {e}", self.name))?;
        // The run ends once the browsers saw it over: a step after the one
        // that said so, as when they were turmoil's clients, unless none was
        // left to see it (one that never started counts as one waiting).
        if *self.over.borrow() {
            let running = self.browsers.iter().any(|b| b.running(self.sim));
            let all_started = self.browsers.iter().all(LateBrowser::started);
            self.finished = !running && (self.told || all_started);
            self.told = true;
        }
        Ok(())
    }

    /// The director host, idle until now, is started: it probes ended jobs'
    /// sessions while the world runs on, then says the run is over.
    fn settle(&mut self, late: Duration) {
        *self.settling.lock().expect("settling lock") = Some(SETTLE.saturating_sub(late));
        self.sim.bounce("director");
    }

    fn over(&self) -> bool {
        self.finished
    }
}

/// A simulated browser waits on turmoil's clock; the simulated shell is
/// there when it answers, so typing waits for nothing more.
pub struct SimPace;

impl Pace for SimPace {
    async fn until(&mut self, at: Duration, _typing: bool) {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        if at > now {
            tokio::time::sleep(at - now).await;
        }
    }
}

/// Runs `future` to its end on this thread. The simulation's ground never
/// waits: each `advance` is a turmoil step done at once, so the engine's
/// future ends within one poll. (An executor such as tokio's could not run
/// it: turmoil's hosts are tokio runtimes that it enters itself.)
pub fn at_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the simulation's timeline waited on something"),
    }
}
