//! The one timeline engine: a scenario's steps at their times, and the end of
//! the run once everything settled. It runs the same way in a simulated world
//! (`world`, turmoil's clock) and against a real runner (`conform`, the wall
//! clock); what differs between the two is a [`Ground`].
//!
//! - GitLab's steps (cancel, revoke, archive) are the same everywhere: the
//!   engine applies them to the harness's GitLab.
//! - The operator's signal and the network's faults reach the runner and the
//!   network in ways only a ground knows.
//! - Each browser follows its own steps ([`browse`]); the engine only hears
//!   from [`Progress`] which of them are still busy.

mod browse;

use std::time::Duration;

pub use browse::{browse, Pace, Plays, Progress};

use crate::actors::gitlab::Gitlab;
use crate::scenario::{Action, Scenario, Step, StopMode};
use crate::trace::Injected;

/// What differs between a simulated world and the real one.
pub trait Ground {
    /// The scenario's clock: the time since its zero.
    fn now(&self) -> Duration;
    /// How often the engine asks whether the run settled: the grid its
    /// checks fall on.
    fn check_every(&self) -> Duration;
    /// The runner's operator stops the runner(s) in `mode`.
    fn signal(&mut self, mode: StopMode);
    /// A fault of the network or a host (`action` is one, see
    /// [`Action::is_network_fault`]). `Err`: this ground cannot inject it.
    fn network(&mut self, action: &Action) -> Result<(), NotHere>;
    /// Records what the scenario did, now.
    fn record(&self, spec: Option<&'static str>, injected: Injected);
    /// Lets time pass: one tick of the simulation, a short wait in real time.
    /// `Err`: the run cannot go on, and why.
    async fn advance(&mut self) -> Result<(), String>;
    /// Everything settled `late` ago: watch the world a little longer (the
    /// settle time, less `late`), then tell the browsers the run is over.
    fn settle(&mut self, late: Duration);
    /// The settle time has passed and everyone heard that the run is over.
    fn over(&self) -> bool;
}

/// A step a ground cannot take.
#[derive(Debug)]
pub struct NotHere;

/// Runs `scenario`'s steps that are not a browser's on `ground`, until the run
/// settled (its steps are done, GitLab's jobs ended and no browser is busy)
/// or reached its `end`, and then until the ground says it is over.
pub async fn run<G: Ground>(
    scenario: &Scenario,
    ground: &mut G,
    gitlab: &Gitlab,
    progress: &Progress,
) -> Result<(), String> {
    let steps: Vec<&Step> = scenario
        .steps
        .iter()
        .filter(|s| s.browser().is_none())
        .collect();
    let last_step = scenario.last_step();
    let end = scenario.ends_by();
    let mut next = 0;
    // The next instant on the grid at which the engine asks whether the run settled.
    let mut check = Duration::ZERO;
    let mut settling = false;
    loop {
        while let Some(step) = steps.get(next).filter(|s| s.at.0 <= ground.now()) {
            apply(step, ground, gitlab);
            next += 1;
        }
        ground.advance().await?;
        if settling && ground.over() {
            return Ok(());
        }
        // A check at instant `check` sees the world as it is now; the
        // settling it starts is shortened by the time since `check`, so
        // that it ends when it would have on the grid.
        let now = ground.now();
        while check < now && !settling {
            let settled = check >= last_step && gitlab.all_done() && progress.idle();
            if settled || check >= end {
                ground.settle(now - check);
                settling = true;
            }
            check += ground.check_every();
        }
    }
}

/// A step of GitLab, the runner's operator or the network, and its record.
fn apply<G: Ground>(step: &Step, ground: &mut G, gitlab: &Gitlab) {
    let Some((spec, injected)) = Injected::of_step(&step.action) else {
        return; // a browser's step: see `browse`
    };
    match &step.action {
        Action::Signal { mode } => ground.signal(*mode),
        action if action.is_network_fault() => {
            if ground.network(action).is_err() {
                let action = action.name().to_string();
                return ground.record(None, Injected::NotForReal { action });
            }
        }
        action => gitlab.act(action),
    }
    ground.record(spec, injected);
}
