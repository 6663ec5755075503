//! A deterministic in-process shell for simulation.
//!
//! It behaves like a small POSIX shell on a tty in canonical mode: it prints a
//! prompt, echoes what is typed, runs a line on Enter, ends on `exit` or on
//! Ctrl-D (0x04, what Workhorse sends when the browser leaves, WH-5) at an empty
//! line. Time passes only through `tokio::time`, so it lives inside turmoil.
//!
//! Builtins: `echo ARGS`, `sleep SECONDS`, `exit [CODE]`, `true`, `false`,
//! `seq N` (N lines, for volume). Anything else is "command not found" (127).
//! `sleep SECONDS &` is a background job: like a real one it holds the
//! terminal open after the shell exits, until it ends (WS-7). A foreground
//! `sleep` reads no input meanwhile, so a paste waits in the terminal's
//! buffer of [`PIPE_BYTES`] and then in the writer, as on a real tty.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{Closing, Size, Terminal, TerminalControl, TerminalSpec};

pub const PROMPT: &str = "$ ";
/// The terminal's buffer each way.
pub const PIPE_BYTES: usize = 64 * 1024;

/// What a line did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on; the line's exit status.
    Next(i32),
    /// The shell exits with this code.
    Exit(i32),
}

/// Opens a simulated interactive shell. Must be called inside a tokio runtime.
pub fn open(_spec: &TerminalSpec) -> Terminal {
    let (outside, inside) = tokio::io::duplex(PIPE_BYTES);
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (mut input, mut output) = tokio::io::split(inside);
        let mut background = Background::default();
        let _ = interactive(&mut input, &mut output, &mut background).await;
        let _ = exit_tx.send(());
        // Background jobs hold the terminal open (no EOF) until they end.
        if let Some(last) = background.last_ends {
            tokio::time::sleep_until(last).await;
        }
    });
    let (reader, writer) = tokio::io::split(outside);
    Terminal {
        reader: Box::new(reader),
        writer: Box::new(writer),
        // Also resolves when the shell is killed (the sender is dropped).
        exited: Box::pin(async move {
            let _ = exit_rx.await;
        }),
        control: Box::new(SimControl(task.abort_handle())),
    }
}

/// The shell's background jobs: only `sleep N &`, so only when the last ends.
#[derive(Default)]
struct Background {
    jobs: u32,
    last_ends: Option<Instant>,
}

impl Background {
    /// Starts `line` in the background if it ends with `&`; returns the job's
    /// announcement, or `None` for a foreground line.
    fn start(&mut self, line: &str) -> Option<String> {
        let command = line.trim_end().strip_suffix('&')?;
        let words: Vec<&str> = command.split_whitespace().collect();
        let seconds = match words.as_slice() {
            ["sleep", s] => s.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0),
            _ => None,
        };
        let Some(seconds) = seconds else {
            return Some("sh: only `sleep N &` runs in the background here\r\n".into());
        };
        let ends = Instant::now() + Duration::from_secs_f64(seconds);
        self.last_ends = Some(self.last_ends.map_or(ends, |last| last.max(ends)));
        self.jobs += 1;
        Some(format!("[{}] {}\r\n", self.jobs, 1000 + self.jobs))
    }
}

/// Kills the shell task and its background jobs; nothing outlives it, so
/// closing completes at once.
pub(crate) struct SimControl(pub(crate) AbortHandle);

impl TerminalControl for SimControl {
    fn resize(&self, _size: Size) -> io::Result<()> {
        Ok(())
    }

    fn close(&self) -> Closing {
        self.0.abort();
        Box::pin(std::future::ready(()))
    }
}

impl Drop for SimControl {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn interactive(
    mut input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    background: &mut Background,
) -> io::Result<i32> {
    output.write_all(PROMPT.as_bytes()).await?;
    let mut line = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            return Ok(0); // the terminal was closed
        }
        for &byte in &buf[..n] {
            match byte {
                b'\r' | b'\n' => {
                    output.write_all(b"\r\n").await?;
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    if let Some(started) = background.start(&text) {
                        output.write_all(started.as_bytes()).await?;
                    } else if let Flow::Exit(code) = run_line(&text, &mut output, "\r\n").await? {
                        return Ok(code);
                    }
                    output.write_all(PROMPT.as_bytes()).await?;
                }
                0x04 if line.is_empty() => {
                    output.write_all(b"exit\r\n").await?;
                    return Ok(0);
                }
                0x03 => {
                    line.clear();
                    output.write_all(b"^C\r\n").await?;
                    output.write_all(PROMPT.as_bytes()).await?;
                }
                0x7f | 0x08 => {
                    if line.pop().is_some() {
                        output.write_all(b"\x08 \x08").await?;
                    }
                }
                _ => {
                    line.push(byte);
                    output.write_all(&[byte]).await?;
                }
            }
        }
        output.flush().await?;
    }
}

/// Runs script lines in order, stopping at the first failure like GitLab's
/// `set -eo pipefail` scripts. Returns the exit code.
pub(crate) async fn script(
    lines: &[String],
    mut output: impl AsyncWrite + Unpin,
) -> io::Result<i32> {
    for line in lines {
        output.write_all(format!("$ {line}\n").as_bytes()).await?;
        match run_line(line, &mut output, "\n").await? {
            Flow::Exit(code) => return Ok(code),
            Flow::Next(0) => {}
            Flow::Next(code) => return Ok(code),
        }
    }
    Ok(0)
}

/// One command line. `newline` is `\r\n` on a terminal, `\n` in a job log.
pub(crate) async fn run_line(
    line: &str,
    output: &mut (impl AsyncWrite + Unpin),
    newline: &str,
) -> io::Result<Flow> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&command, args)) = words.split_first() else {
        return Ok(Flow::Next(0));
    };
    let flow = match command {
        "echo" => {
            output
                .write_all(format!("{}{newline}", args.join(" ")).as_bytes())
                .await?;
            Flow::Next(0)
        }
        "true" => Flow::Next(0),
        "false" => Flow::Next(1),
        "exit" => Flow::Exit(args.first().and_then(|c| c.parse().ok()).unwrap_or(0)),
        "sleep" => match args
            .first()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
        {
            Some(seconds) => {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                Flow::Next(0)
            }
            None => {
                output
                    .write_all(format!("sleep: invalid time interval{newline}").as_bytes())
                    .await?;
                Flow::Next(1)
            }
        },
        "seq" => {
            let n: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(0);
            for i in 1..=n {
                output.write_all(format!("{i}{newline}").as_bytes()).await?;
            }
            Flow::Next(0)
        }
        other => {
            output
                .write_all(format!("sh: {other}: command not found{newline}").as_bytes())
                .await?;
            Flow::Next(127)
        }
    };
    output.flush().await?;
    Ok(flow)
}

/// Splits an in-memory pipe into a shell end and a caller end, for the machine.
pub(crate) fn pipe() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(PIPE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_until(t: &mut Terminal, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = t.reader.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "EOF before {needle:?}; saw {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn echoes_input_and_runs_echo() {
        let mut t = open(&TerminalSpec::default());
        t.writer.write_all(b"echo hello\r").await.unwrap();
        let seen = read_until(&mut t, "hello\r\n$ ").await;
        assert_eq!(seen, "$ echo hello\r\nhello\r\n$ ");
    }

    #[tokio::test(start_paused = true)]
    async fn eot_at_empty_line_exits_and_output_ends() {
        let mut t = open(&TerminalSpec::default());
        t.writer.write_all(&[0x04]).await.unwrap();
        read_until(&mut t, "exit\r\n").await;
        let mut rest = Vec::new();
        t.reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_takes_simulated_time() {
        let mut t = open(&TerminalSpec::default());
        let start = tokio::time::Instant::now();
        t.writer.write_all(b"sleep 90\recho done\r").await.unwrap();
        read_until(&mut t, "done\r\n").await;
        assert_eq!(start.elapsed().as_secs(), 90);
    }

    #[tokio::test(start_paused = true)]
    async fn exit_with_a_background_job_ends_the_shell_but_not_the_output() {
        let mut t = open(&TerminalSpec::default());
        let start = tokio::time::Instant::now();
        t.writer.write_all(b"sleep 300 &\rexit\r").await.unwrap();
        read_until(&mut t, "[1] 1001\r\n$ exit\r\n").await;
        (&mut t.exited).await;
        assert_eq!(start.elapsed().as_secs(), 0, "the shell exits at once");
        // The job holds the terminal: EOF only once it ended.
        let mut rest = Vec::new();
        t.reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(start.elapsed().as_secs(), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_foreground_sleep_reads_no_input() {
        let mut t = open(&TerminalSpec::default());
        read_until(&mut t, PROMPT).await;
        t.writer.write_all(b"sleep 100\r").await.unwrap();
        let paste = vec![b'x'; 2 * PIPE_BYTES];
        let written =
            tokio::time::timeout(Duration::from_secs(50), t.writer.write_all(&paste)).await;
        assert!(
            written.is_err(),
            "a busy shell took a paste larger than its buffer"
        );
    }

    #[tokio::test]
    async fn script_stops_at_the_first_failure() {
        let mut out = Vec::new();
        let lines = ["echo a", "false", "echo b"].map(String::from);
        assert_eq!(script(&lines, &mut out).await.unwrap(), 1);
        assert_eq!(String::from_utf8(out).unwrap(), "$ echo a\na\n$ false\n");
        let mut out = Vec::new();
        assert_eq!(script(&["exit 3".to_string()], &mut out).await.unwrap(), 3);
    }
}
