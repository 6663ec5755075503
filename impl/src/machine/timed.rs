//! A machine with executor timings per job, set by whoever builds the world.
//!
//! This is how simulations and tests model an executor that prepares slowly or
//! a build container that starts late (EX-3, DK-1). The timings come from the
//! world's builder, never from the job: nothing GitLab sends can slow a
//! production runner down (a plain `session-server` never builds a `Timed`).

use std::collections::BTreeMap;
use std::io;

use super::{JobTimings, Machine, ScriptRun, ScriptSpec};
use crate::terminal::{Terminal, TerminalSpec};

/// `inner`, with the timings of some jobs set.
#[derive(Clone, Debug, Default)]
pub struct Timed<M> {
    inner: M,
    timings: BTreeMap<u64, JobTimings>,
}

impl<M: Machine> Timed<M> {
    pub fn new(inner: M) -> Self {
        Timed {
            inner,
            timings: BTreeMap::new(),
        }
    }

    /// Job `job_id` prepares and starts its container as `timings` say.
    pub fn with_job(mut self, job_id: u64, timings: JobTimings) -> Self {
        self.timings.insert(job_id, timings);
        self
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M: Machine> Machine for Timed<M> {
    fn run_script(&self, spec: &ScriptSpec) -> io::Result<ScriptRun> {
        self.inner.run_script(spec)
    }

    fn open_terminal(&self, spec: &TerminalSpec) -> io::Result<Terminal> {
        self.inner.open_terminal(spec)
    }

    fn default_builds_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.default_builds_dir()
    }

    fn runs_containers(&self) -> bool {
        self.inner.runs_containers()
    }

    fn job_timings(&self, job_id: u64) -> JobTimings {
        self.timings
            .get(&job_id)
            .copied()
            .unwrap_or_else(|| self.inner.job_timings(job_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::sim::SimMachine;
    use std::time::Duration;

    #[test]
    fn timings_are_per_job_and_default_to_none() {
        let slow = JobTimings {
            prepare: Duration::from_secs(30),
            container_start: None,
        };
        let machine = Timed::new(SimMachine).with_job(7, slow);
        assert_eq!(machine.job_timings(7), slow);
        assert_eq!(machine.job_timings(8), JobTimings::default());
        assert_eq!(SimMachine.job_timings(7), JobTimings::default());
    }
}
