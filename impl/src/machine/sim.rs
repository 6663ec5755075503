//! The simulated machine: scripts and shells interpreted in-process
//! ([`crate::terminal::sim_shell`]) on `tokio::time`.

use std::io;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Machine, ScriptExit, ScriptRun, ScriptSpec};
use crate::terminal::{sim_shell, Closing, Terminal, TerminalSpec};

#[derive(Clone, Copy, Debug, Default)]
pub struct SimMachine;

impl Machine for SimMachine {
    fn run_script(&self, spec: &ScriptSpec) -> io::Result<ScriptRun> {
        let (outside, inside) = sim_shell::pipe();
        let lines = spec.lines.clone();
        let (done_tx, done_rx) = watch::channel(None::<ScriptExit>);
        let done_tx = Arc::new(done_tx);
        let done = done_tx.clone();
        let task = tokio::spawn(async move {
            let code = sim_shell::script(&lines, inside).await.unwrap_or(1);
            done.send_replace(Some(ScriptExit::Code(code)));
        });
        let abort = task.abort_handle();
        let kill = move || -> Closing {
            abort.abort();
            // Aborted before it finished: the script was killed.
            done_tx.send_if_modified(|exit| {
                let unfinished = exit.is_none();
                if unfinished {
                    *exit = Some(ScriptExit::Killed);
                }
                unfinished
            });
            Box::pin(std::future::ready(()))
        };
        let mut exit_rx = done_rx;
        Ok(ScriptRun {
            output: Box::new(outside),
            exit: Box::pin(async move {
                let exit = exit_rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| io::Error::other("script task lost"))?;
                Ok(exit.expect("checked by wait_for"))
            }),
            kill: Box::new(kill),
        })
    }

    fn open_terminal(&self, spec: &TerminalSpec) -> io::Result<Terminal> {
        Ok(sim_shell::open(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn script_runs_and_reports_its_code() {
        let spec = ScriptSpec {
            lines: vec!["echo hi".into(), "exit 2".into()],
            ..Default::default()
        };
        let mut run = SimMachine.run_script(&spec).unwrap();
        let mut out = String::new();
        run.output.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "$ echo hi\nhi\n$ exit 2\n");
        assert_eq!(run.exit.await.unwrap(), ScriptExit::Code(2));
    }

    #[tokio::test(start_paused = true)]
    async fn killed_script_reports_killed() {
        let spec = ScriptSpec {
            lines: vec!["sleep 100".into()],
            ..Default::default()
        };
        let run = SimMachine.run_script(&spec).unwrap();
        (run.kill)().await;
        assert_eq!(run.exit.await.unwrap(), ScriptExit::Killed);
    }
}
