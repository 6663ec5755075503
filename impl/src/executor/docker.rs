//! The docker executor's build container as the session sees it, and its model.
//!
//! The container is created when the job starts running, runs after its start
//! (an image pull, say), and exits when the script ends. Exec terminals need it
//! running: a request waits up to 15 s for that (DK-1), else the server answers
//! 500 (EX-5). The states are the same for a real container ([`super::engine`]
//! reports them) and for the model, where the "container" is the process tree of
//! the script and its start is a delay the machine sets.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::faults::{self, Fault};
use crate::machine::Machine;
use crate::session::{Opening, TerminalSource, TerminalUnavailable};
use crate::terminal::TerminalSpec;

/// DK-1: how long a terminal request waits for the build container to run.
pub const CONTAINER_WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

/// A build container.
pub struct Container {
    state: watch::Sender<ContainerState>,
    start_delay: Option<Duration>,
}

impl Container {
    /// `start_delay: None` models a container that never gets to run.
    pub fn create(start_delay: Option<Duration>) -> Arc<Self> {
        Arc::new(Container {
            state: watch::channel(ContainerState::Created).0,
            start_delay,
        })
    }

    /// Starts the container and waits until it runs. Never returns for a
    /// container that never runs: the caller bounds it (job deadline, cancel).
    pub async fn start(&self) {
        match self.start_delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
        self.set_running();
    }

    /// A real container is running: its engine said so.
    pub fn set_running(&self) {
        self.state.send_if_modified(|s| {
            let created = *s == ContainerState::Created;
            if created {
                *s = ContainerState::Running;
            }
            created
        });
    }

    /// The script ended: the container stops (DK-3).
    pub fn exit(&self) {
        self.state.send_replace(ContainerState::Exited);
    }

    pub fn state(&self) -> ContainerState {
        *self.state.borrow()
    }

    /// Waits up to `limit` for the container to run; false if it did not.
    async fn wait_running(&self, limit: Duration) -> bool {
        let mut rx = self.state.subscribe();
        let settled = tokio::time::timeout(limit, async {
            rx.wait_for(|s| *s != ContainerState::Created)
                .await
                .map(|s| *s)
        })
        .await;
        matches!(settled, Ok(Ok(ContainerState::Running)))
    }
}

/// Starts one exec once the container runs: in the engine, or on the model's machine.
pub(super) type Exec = Arc<dyn Fn() -> Opening + Send + Sync>;

/// DK-2: terminals are execs in the build container.
pub(super) struct ExecTerminals {
    container: Arc<Container>,
    exec: Exec,
}

impl ExecTerminals {
    pub(super) fn new(container: Arc<Container>, exec: Exec) -> Self {
        ExecTerminals { container, exec }
    }

    /// The model's exec: a shell on the machine, with the job's environment.
    pub(super) fn modelled(
        container: Arc<Container>,
        machine: Arc<dyn Machine>,
        spec: TerminalSpec,
    ) -> Self {
        let exec: Exec = Arc::new(move || {
            let opened = machine
                .open_terminal(&spec)
                .map_err(|e| TerminalUnavailable(e.to_string()));
            Box::pin(std::future::ready(opened))
        });
        ExecTerminals::new(container, exec)
    }
}

impl TerminalSource for ExecTerminals {
    fn open(&self) -> Opening {
        let (container, exec) = (self.container.clone(), self.exec.clone());
        Box::pin(async move {
            let limit = if faults::active(Fault::ShortContainerWait) {
                Duration::from_secs(5)
            } else {
                CONTAINER_WAIT
            };
            if !container.wait_running(limit).await {
                return Err(TerminalUnavailable(format!(
                    "build container is not running (waited {}s)",
                    CONTAINER_WAIT.as_secs()
                )));
            }
            exec().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::sim::SimMachine;

    fn source(container: &Arc<Container>) -> ExecTerminals {
        ExecTerminals::modelled(
            container.clone(),
            Arc::new(SimMachine),
            TerminalSpec::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn exec_waits_for_a_container_that_starts_in_time() {
        let container = Container::create(Some(Duration::from_secs(10)));
        let starter = container.clone();
        tokio::spawn(async move { starter.start().await });
        let begin = tokio::time::Instant::now();
        assert!(source(&container).open().await.is_ok());
        assert_eq!(begin.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn exec_gives_up_after_15_seconds() {
        let container = Container::create(None);
        let starter = container.clone();
        tokio::spawn(async move { starter.start().await });
        let begin = tokio::time::Instant::now();
        let err = source(&container).open().await.err().expect("no terminal");
        assert!(err.0.contains("not running"), "{err}");
        assert_eq!(begin.elapsed().as_secs(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn exec_after_exit_is_refused_at_once() {
        let container = Container::create(Some(Duration::ZERO));
        container.start().await;
        container.exit();
        let begin = tokio::time::Instant::now();
        assert!(source(&container).open().await.is_err());
        assert_eq!(begin.elapsed().as_secs(), 0);
    }
}
