//! The real machine: job scripts and terminals are processes of this host.
//!
//! Must be used within a tokio runtime: a script's exit is awaited by a task.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::process::Command;
use tokio::sync::watch;

use crate::machine::{Machine, ScriptExit, ScriptRun, ScriptSpec};
use crate::terminal::{pty, Closing, Terminal, TerminalSpec};

/// Runs scripts and terminals as processes of this host.
pub struct OsMachine {
    /// Shell for scripts that name none.
    pub default_shell: String,
    /// HOME of scripts and terminals (a job variable may still set its own);
    /// `None` keeps the runner's. Tests give one of their own: a shell reads
    /// its HOME's dotfiles, and a host's may stall it (`pyenv init`).
    pub home: Option<std::path::PathBuf>,
}

impl Default for OsMachine {
    /// `bash` where it is installed, as GitLab prefers it; `sh` otherwise.
    fn default() -> Self {
        let shell = if on_path("bash") { "bash" } else { "sh" };
        OsMachine {
            default_shell: shell.into(),
            home: None,
        }
    }
}

impl OsMachine {
    /// The environment a process gets: HOME first, so that the job's variables win.
    fn env(&self, env: &[(String, String)]) -> Vec<(String, String)> {
        let home = self
            .home
            .as_ref()
            .map(|home| ("HOME".to_string(), home.display().to_string()));
        home.into_iter().chain(env.iter().cloned()).collect()
    }
}

fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        dir.join(program)
            .metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

/// How a script ended, shared by its exit future and its kill (`io::Error` is not `Clone`).
type Exit = Option<Result<ScriptExit, (io::ErrorKind, String)>>;

impl Machine for OsMachine {
    fn run_script(&self, spec: &ScriptSpec) -> io::Result<ScriptRun> {
        let shell = spec.shell.as_deref().unwrap_or(&self.default_shell);
        let context = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("{what} for a script run by {shell:?}: {e}"),
            )
        };

        // One pipe for stdout and stderr, so that the log shows them in the order written.
        let (output_tx, output) =
            tokio::net::unix::pipe::pipe().map_err(|e| context("creating the output pipe", e))?;
        // The script writes to it like to any pipe, blocking; only our end is async.
        let output_tx = output_tx
            .into_blocking_fd()
            .map_err(|e| context("preparing the output pipe", e))?;
        let stderr = output_tx
            .try_clone()
            .map_err(|e| context("duplicating the output pipe", e))?;

        let mut command = Command::new(shell);
        command
            .args(shell_options(shell))
            .arg("-c")
            .arg(spec.lines.join("\n"))
            .envs(self.env(&spec.env))
            // A group of its own, so that a kill reaches everything it started.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(output_tx)
            .stderr(stderr);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let spawned = command.spawn();
        // The command still holds our copies of the write end: the output would
        // never reach EOF while they live.
        drop(command);
        let mut child = spawned.map_err(|e| context("spawning the shell", e))?;
        let pid = child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            .ok_or_else(|| io::Error::other(format!("the script run by {shell:?} has no pid")))?;

        // The task owns the child so that it is reaped even if nobody awaits the exit.
        let (exit_tx, exit_rx) = watch::channel::<Exit>(None);
        tokio::spawn(async move {
            let exit = child.wait().await.map(script_exit);
            exit_tx.send_replace(Some(
                exit.map_err(|e| (e.kind(), format!("waiting for the script: {e}"))),
            ));
        });

        let mut exited = exit_rx.clone();
        let exit = Box::pin(async move {
            // None: the task was dropped unfinished, with its runtime.
            let exit = exited
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|exit| exit.clone());
            match exit {
                Some(Ok(exit)) => Ok(exit),
                Some(Err((kind, message))) => Err(io::Error::new(kind, message)),
                None => Err(io::Error::other(
                    "the script's waiter was dropped (runtime shut down?)",
                )),
            }
        });
        let kill = Box::new(move || -> Closing {
            // SAFETY: killpg only sends a signal, to the script's own group (pid > 1,
            // so never ours nor init's). Without job control, everything the script
            // started stays in it; after its exit, this still reaches what it left
            // behind (pids are allocated cyclically: the number is not reused soon).
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            let mut exited = exit_rx.clone();
            Box::pin(async move {
                // An error means the waiter is gone with its runtime: nothing left to wait for.
                let _ = exited.wait_for(Option::is_some).await;
            })
        });
        Ok(ScriptRun {
            output: Box::new(output),
            exit,
            kill,
        })
    }

    fn open_terminal(&self, spec: &TerminalSpec) -> io::Result<Terminal> {
        let spec = TerminalSpec {
            env: self.env(&spec.env),
            ..spec.clone()
        };
        pty::open(&spec)
    }

    /// Each job gets `<temp dir>/session-server-builds/<job id>`, as GitLab
    /// Runner's shell executor gets a directory under its builds_dir.
    fn default_builds_dir(&self) -> Option<std::path::PathBuf> {
        Some(std::env::temp_dir().join("session-server-builds"))
    }

    /// A real host: docker jobs go to a Docker Engine.
    fn runs_containers(&self) -> bool {
        true
    }
}

/// Stop at the first failing command, as GitLab's generated scripts do; bash
/// also fails a pipeline when any of its commands fails.
fn shell_options(shell: &str) -> &'static [&'static str] {
    if Path::new(shell)
        .file_name()
        .is_some_and(|name| name == "bash")
    {
        &["-e", "-o", "pipefail"]
    } else {
        &["-e"]
    }
}

fn script_exit(status: ExitStatus) -> ScriptExit {
    // No code means a signal ended it.
    status.code().map_or(ScriptExit::Killed, ScriptExit::Code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);

    fn script(lines: &[&str]) -> ScriptSpec {
        ScriptSpec {
            lines: lines.iter().map(|line| line.to_string()).collect(),
            ..ScriptSpec::default()
        }
    }

    /// Runs a script to its end: its output and its exit.
    async fn run(machine: &OsMachine, spec: &ScriptSpec) -> (String, ScriptExit) {
        let mut run = machine.run_script(spec).expect("starting the script");
        let mut output = String::new();
        timeout(LIMIT, run.output.read_to_string(&mut output))
            .await
            .expect("output did not end")
            .expect("reading the output");
        let exit = timeout(LIMIT, run.exit)
            .await
            .expect("no exit")
            .expect("waiting for the exit");
        (output, exit)
    }

    #[tokio::test]
    async fn script_output_merges_stdout_and_stderr_in_order() {
        let spec = script(&["echo one", "echo two >&2", "echo three", "echo four >&2"]);
        let (output, exit) = run(&OsMachine::default(), &spec).await;
        assert_eq!(output, "one\ntwo\nthree\nfour\n");
        assert_eq!(exit, ScriptExit::Code(0));
    }

    #[tokio::test]
    async fn script_exit_code_is_reported() {
        let machine = OsMachine::default();
        assert_eq!(
            run(&machine, &script(&["exit 3"])).await.1,
            ScriptExit::Code(3)
        );
        // -e: the first failing line ends the script.
        let (output, exit) = run(&machine, &script(&["false", "echo not reached"])).await;
        assert_eq!((output.as_str(), exit), ("", ScriptExit::Code(1)));
    }

    #[tokio::test]
    async fn bash_scripts_fail_on_a_failing_pipeline() {
        if !on_path("bash") {
            return;
        }
        let bash = OsMachine {
            default_shell: "bash".into(),
            home: None,
        };
        assert_eq!(
            run(&bash, &script(&["false | true"])).await.1,
            ScriptExit::Code(1)
        );
        let sh = ScriptSpec {
            shell: Some("sh".into()),
            ..script(&["false | true"])
        };
        assert_eq!(run(&bash, &sh).await.1, ScriptExit::Code(0));
    }

    #[tokio::test]
    async fn script_runs_in_its_cwd_with_its_env() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let spec = ScriptSpec {
            cwd: Some(dir.clone()),
            env: vec![("JOB_VAR".into(), "job value".into())],
            ..script(&["echo \"$(pwd)|$JOB_VAR\""])
        };
        let (output, _) = run(&OsMachine::default(), &spec).await;
        assert_eq!(output, format!("{}|job value\n", dir.display()));
    }

    #[tokio::test]
    async fn a_missing_shell_is_an_error() {
        let machine = OsMachine {
            default_shell: "/nonexistent/shell".into(),
            home: None,
        };
        let error = machine
            .run_script(&script(&["true"]))
            .err()
            .expect("a missing shell ran");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn script_kill_kills_the_process_tree() {
        // The last line keeps bash from exec'ing the foreground sleep in its own place.
        let spec = script(&["echo $$", "sleep 1000 &", "sleep 1000", "true"]);
        let run = OsMachine::default().run_script(&spec).unwrap();
        let mut output = BufReader::new(run.output);
        let mut first = String::new();
        timeout(LIMIT, output.read_line(&mut first))
            .await
            .unwrap()
            .unwrap();
        let pid: libc::pid_t = first.trim().parse().expect("the script's pid");
        timeout(LIMIT, async {
            while pty::tree_members(pid).len() < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the shell and both sleeps never ran");

        let closing = (run.kill)();
        let again = (run.kill)();
        timeout(LIMIT, closing).await.expect("kill timed out");
        timeout(LIMIT, again).await.expect("second kill timed out");
        assert_eq!(
            timeout(LIMIT, run.exit).await.unwrap().unwrap(),
            ScriptExit::Killed
        );
        // SIGKILL lands asynchronously; every process must go, and with them the output.
        timeout(LIMIT, async {
            while !pty::tree_members(pid).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("processes of the script survived the kill");
        let mut rest = String::new();
        timeout(LIMIT, output.read_to_string(&mut rest))
            .await
            .expect("output did not end after the kill")
            .unwrap();
    }

    #[tokio::test]
    async fn open_terminal_opens_a_pty() {
        let _ptys = pty::tests::PTYS.lock().await;
        use tokio::io::AsyncWriteExt;
        let spec = TerminalSpec {
            command: vec!["sh".into()],
            ..TerminalSpec::default()
        };
        let machine = OsMachine {
            home: Some(pty::tests::private_home()),
            ..OsMachine::default()
        };
        let mut terminal = machine.open_terminal(&spec).unwrap();
        terminal
            .writer
            .write_all(b"tty; echo \"home=$HOME:end\"\n")
            .await
            .unwrap();
        let mut seen = String::new();
        let mut buf = [0; 1024];
        timeout(LIMIT, async {
            while !seen.contains(":end\r\n") {
                let n = terminal.reader.read(&mut buf).await.unwrap();
                assert!(n > 0, "EOF before tty answered: {seen:?}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await
        .expect("tty did not answer");
        assert!(seen.contains("/dev/pts/"), "{seen:?}");
        let home = format!("home={}:end\r\n", pty::tests::private_home().display());
        assert!(
            seen.contains(&home),
            "the terminal's HOME is not the machine's: {seen:?}"
        );
        timeout(LIMIT, terminal.control.close())
            .await
            .expect("close timed out");
    }
}
