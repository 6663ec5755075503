//! A terminal in the build container (DK-2): an exec with a TTY, attached
//! through the engine's hijacked stream, resized like a PTY.

use std::io;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{ResizeExecOptions, WaitContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::task::AbortHandle;

use super::build::short;
use super::stream;
use crate::session::TerminalUnavailable;
use crate::terminal::{Closing, Size, Terminal, TerminalControl, TerminalSpec};

/// GitLab Runner's choice of shell for a terminal: bash if the image has it,
/// else sh (DK-2), looked for where images put them.
const DETECT_SHELL: &str = "for shell in /usr/local/bin/bash /usr/bin/bash /bin/bash \
     /usr/local/bin/sh /usr/bin/sh /bin/sh /busybox/sh; do \
     if [ -x \"$shell\" ]; then exec \"$shell\"; fi; done; \
     echo 'no shell found in the build container' >&2; exit 1";

/// How long an exec that ended waits for its container to stop too: a
/// container that stops takes its execs with it, and then the terminal must
/// end as DK-3 says (`1001 build container exited`, sent by the job), not as a
/// shell that exited. A shell that exited by itself (an exit code of its own)
/// waits briefly; one killed by a signal (the kernel kills a container's
/// processes when its main one ends) waits long enough for a loaded engine to
/// report the container's stop: a fixed 300 ms was too short on a busy machine.
const CONTAINER_STOP_GRACE: Duration = Duration::from_millis(300);
const KILLED_CONTAINER_STOP_GRACE: Duration = Duration::from_secs(5);

/// How often the exec's process is checked: its exit ends the terminal even
/// while a background job it left holds the TTY (WS-7).
const EXIT_POLL: Duration = Duration::from_millis(200);

/// Opens a shell in container `container` with the spec's environment,
/// working directory and size.
pub async fn open(
    docker: Docker,
    container: String,
    spec: TerminalSpec,
) -> Result<Terminal, TerminalUnavailable> {
    let failed = |what: &str, e: bollard::errors::Error| {
        TerminalUnavailable(format!(
            "{what} a terminal in the build container {}: {e}",
            short(&container)
        ))
    };
    let options = CreateExecOptions {
        cmd: Some(vec!["sh".to_string(), "-c".into(), DETECT_SHELL.into()]),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.cwd.as_ref().map(|d| d.display().to_string()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(true),
        ..CreateExecOptions::default()
    };
    let exec = docker
        .create_exec(&container, options)
        .await
        .map_err(|e| failed("creating", e))?
        .id;
    let start = StartExecOptions {
        detach: false,
        tty: true,
        output_capacity: None,
    };
    let (output, input) = match docker
        .start_exec(&exec, Some(start))
        .await
        .map_err(|e| failed("starting", e))?
    {
        StartExecResults::Attached { output, input } => (output, input),
        StartExecResults::Detached => {
            return Err(TerminalUnavailable(
                "the Docker Engine started the terminal's exec detached".into(),
            ))
        }
    };
    let (reader, pump) = stream::reader(
        output,
        exited(docker.clone(), exec.clone(), container.clone()),
    );
    let control = ExecControl {
        docker: docker.clone(),
        exec: exec.clone(),
        pump,
    };
    // Sized once started: the engine refuses to resize an exec before.
    control
        .resize(spec.size)
        .map_err(|e| TerminalUnavailable(e.to_string()))?;
    Ok(Terminal {
        reader: Box::new(reader),
        writer: Box::new(input),
        exited: Box::pin(exited(docker, exec, container)),
        control: Box::new(control),
    })
}

/// Resolves when the exec's shell has exited while its container runs on;
/// stays pending if its container stopped (the job ends the terminal then,
/// DK-3). Both the exec's end and its output's end come here.
async fn exited(docker: Docker, exec: String, container: String) {
    let killed = loop {
        match docker.inspect_exec(&exec).await {
            // Not running and no exit code: not started yet (a loaded engine
            // reports the attached exec as running only a moment later).
            Ok(state) if state.running == Some(false) => {
                if let Some(code) = state.exit_code {
                    break code > 128;
                }
            }
            Ok(_) => {}
            Err(_) => break false,
        }
        tokio::time::sleep(EXIT_POLL).await;
    };
    let grace = if killed {
        KILLED_CONTAINER_STOP_GRACE
    } else {
        CONTAINER_STOP_GRACE
    };
    let stopped = WaitContainerOptions {
        condition: "not-running".into(),
    };
    let mut wait = docker.wait_container(&container, Some(stopped));
    if tokio::time::timeout(grace, wait.next()).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

struct ExecControl {
    docker: Docker,
    exec: String,
    pump: AbortHandle,
}

impl TerminalControl for ExecControl {
    fn resize(&self, size: Size) -> io::Result<()> {
        let (docker, exec) = (self.docker.clone(), self.exec.clone());
        let options = ResizeExecOptions {
            h: i32::from(size.rows),
            w: i32::from(size.cols),
        };
        // The engine answers over HTTP; a terminal's resize does not wait for it.
        tokio::spawn(async move {
            if let Err(e) = docker.resize_exec(&exec, options).await {
                tracing::debug!("resizing a terminal exec: {e}");
            }
        });
        Ok(())
    }

    /// Ends the output at once; the relay then drops the input, which closes
    /// the hijacked connection, and the engine hangs up the exec's TTY. The
    /// build container's end removes whatever is left.
    fn close(&self) -> Closing {
        self.pump.abort();
        Box::pin(std::future::ready(()))
    }
}
