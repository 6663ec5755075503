//! The runner under test as a child process (`--runner-cmd`): started with the
//! config the harness wrote, signalled like an operator would (LC-4), stopped
//! with SIGTERM at the end, killed if it will not stop, and its output kept
//! for the report.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

/// How much of the runner's output is kept (the end of it).
const KEPT_OUTPUT: usize = 256 * 1024;
/// How long a runner gets to stop after SIGTERM before it is killed. The
/// reference waits up to 30 s (`shutdown_timeout`) for aborted jobs to report;
/// in a scenario they report at once to a coordinator that answers at once.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A signal for the runner: what an operator sends to stop it (LC-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Abort: jobs and terminals are killed at once.
    Term,
    /// Graceful: no new jobs, running ones finish.
    Quit,
}

pub struct RunnerProcess {
    /// The child, which leads its own process group.
    group: libc::pid_t,
    /// The child is the runner itself (`exec`): signals go to it alone, not to
    /// processes of its jobs that may share its group. Else they go to the
    /// group, to reach the runner in the wrapper.
    direct: bool,
    exit: watch::Receiver<Option<String>>,
    output: Arc<Mutex<Vec<u8>>>,
    /// It had exited when [`RunnerProcess::stop`] was called.
    exited_first: std::sync::atomic::AtomicBool,
}

impl RunnerProcess {
    /// Runs `command` with `sh -c`, `{config}` replaced by `config`'s path.
    pub fn start(command: &str, config: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let quoted = format!("'{}'", config.display().to_string().replace('\'', r"'\''"));
        let command = command.replace("{config}", &quoted);
        let (script, direct) = exec_if_simple(&command);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the runner with `sh -c {command:?}`"))?;
        let group = child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .context("the runner's process has no id")?;
        let output = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            tokio::spawn(keep(pipe, output.clone()));
        }
        let (exited, exit) = watch::channel(None);
        // The task owns the child, so that it is reaped whoever waits for it.
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            exited.send_replace(Some(status));
        });
        Ok(RunnerProcess {
            group,
            direct,
            exit,
            output,
            exited_first: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The runner's process id: the command's own when it is a single
    /// program (`exec`'d); `None` for a compound command, whose process is a
    /// shell and the runner one of its children.
    pub fn pid(&self) -> Option<u32> {
        self.direct.then_some(self.group as u32)
    }

    /// How it exited (e.g. `exit status: 1`), if it has.
    pub fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    pub fn signal(&self, signal: Signal) {
        if self.exited().is_some() {
            return;
        }
        let signal = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Quit => libc::SIGQUIT,
        };
        let to = if self.direct { self.group } else { -self.group };
        // SAFETY: kill only sends a signal, to our child or its group (ids > 1).
        unsafe { libc::kill(to, signal) };
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns how it ended, and whether it
    /// had to be killed.
    pub async fn stop(&self, grace: Duration) -> (String, bool) {
        if let Some(status) = self.exited() {
            self.exited_first
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return (status, false);
        }
        self.signal(Signal::Term);
        let mut exit = self.exit.clone();
        if let Ok(Ok(status)) = tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await {
            let status = status.clone().unwrap_or_default();
            // Whatever the command left behind in its group goes too.
            self.kill(libc::SIGKILL);
            return (status, false);
        }
        self.kill(libc::SIGKILL);
        let status = tokio::time::timeout(Duration::from_secs(5), exit.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|s| s.ok().and_then(|s| s.clone()))
            .unwrap_or_else(|| "not reaped after SIGKILL".into());
        (status, true)
    }

    /// Whether it had already exited when it was to be stopped.
    pub fn exited_before_stop(&self) -> bool {
        self.exited_first.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last `lines` lines it printed (stdout and stderr as they came).
    pub fn output_tail(&self, lines: usize) -> String {
        let output = self.output.lock().expect("output lock");
        let text = String::from_utf8_lossy(&output);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Signals everything the command started.
    fn kill(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal, to the group the child leads (its
        // id is > 1: never ours, nor init's).
        unsafe { libc::kill(-self.group, signal) };
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        // Nothing the harness started outlives it. Once the leader is reaped its
        // id may be reused: then `stop` has already cleaned the group up.
        if self.exited().is_none() {
            self.kill(libc::SIGKILL);
        }
    }
}

/// `exec` a single command, so that it gets the signals itself rather than a
/// shell that would not pass them on; a compound command is left as it is
/// (its group gets them). Whether it was `exec`'d.
fn exec_if_simple(command: &str) -> (String, bool) {
    let compound = command
        .chars()
        .any(|c| matches!(c, ';' | '&' | '|' | '\n' | '(' | ')' | '`'));
    if compound {
        (command.to_string(), false)
    } else {
        (format!("exec {command}"), true)
    }
}

async fn keep(mut pipe: Box<dyn AsyncRead + Send + Unpin>, output: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut output = output.lock().expect("output lock");
        output.extend_from_slice(&buf[..n]);
        if output.len() > KEPT_OUTPUT {
            let excess = output.len() - KEPT_OUTPUT;
            output.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_runner_is_signalled_stopped_and_its_output_kept() {
        let dir = std::env::temp_dir();
        let config = dir.join("session-harness-process-test.toml");
        let script =
            "trap 'echo got TERM; exit 3' TERM; echo config={config}; while :; do sleep 0.05; done";
        let runner = RunnerProcess::start(script, &config, &[]).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(runner.exited().is_none());
        let (status, killed) = runner.stop(Duration::from_secs(5)).await;
        assert!(!killed, "{status}");
        assert!(status.contains('3'), "{status}");
        let output = runner.output_tail(10);
        assert!(
            output.contains(&format!("config={}", config.display())),
            "{output}"
        );
        assert!(output.contains("got TERM"), "{output}");
    }

    #[tokio::test]
    async fn a_simple_command_is_the_runner_itself() {
        let runner = RunnerProcess::start("sleep 30", Path::new("x"), &[]).unwrap();
        assert!(runner.direct);
        let (status, killed) = runner.stop(Duration::from_secs(5)).await;
        assert!(!killed && status.contains("SIGTERM"), "{status}");
    }

    #[tokio::test]
    async fn a_runner_that_ignores_sigterm_is_killed() {
        let runner = RunnerProcess::start(
            "trap '' TERM; while :; do sleep 0.05; done",
            Path::new("x"),
            &[],
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, killed) = runner.stop(Duration::from_millis(300)).await;
        assert!(killed);
    }
}
