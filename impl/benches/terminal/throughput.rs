//! Part 1: output throughput of a real PTY through the relay and a TLS
//! WebSocket, against the raw PTY limit measured in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;

use crate::client::{contains, drain, next_output, open_job_terminal, sync, type_text, Browser};
use crate::cpu::{cpu_seconds, Cpu};
use crate::support::World;
use crate::{figure, heading, within};

/// Bytes of command output in one throughput run.
const VOLUME: u64 = 50_000_000;
/// Throughput is measured in pairs (one relayed run, one raw PTY run, back to
/// back, their order alternating), so that a drift of the machine's load
/// (others compiling, say) touches both runs of a pair alike.
const THROUGHPUT_PAIRS: usize = 6;

/// The best (largest) and the median of `values`.
fn best_and_median(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 0 {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    } else {
        sorted[n / 2]
    };
    (sorted[n - 1], median)
}

/// MB/s (10^6 bytes) of `yes | head -c 50000000` in a terminal, seen by the
/// browser, against the same command under `script` (the PTY alone), in
/// pairs: each pair's ratio compares runs made within seconds of each other.
pub(crate) async fn output_throughput(world: &World) -> anyhow::Result<()> {
    heading("1. Output throughput of a real PTY (bash, shell executor, OsMachine)");
    let (_session, mut ws) = open_job_terminal(world, 1).await?;
    sync(&mut ws, 1).await?;
    let (mut relayed, mut wire, mut raw, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last = RelayedRun::default();
    for pair in 1..=THROUGHPUT_PAIRS {
        // Alternate which goes first: neither side always gets the warmer machine.
        let relay_first = pair % 2 == 1;
        let mut raw_seconds = 0.0;
        if !relay_first {
            raw_seconds = raw_pty_run_answering(&mut ws)
                .await
                .with_context(|| format!("raw PTY run of pair {pair}"))?;
        }
        last = relayed_run(&mut ws)
            .await
            .with_context(|| format!("WebSocket throughput run of pair {pair}"))?;
        if relay_first {
            raw_seconds = raw_pty_run_answering(&mut ws)
                .await
                .with_context(|| format!("raw PTY run of pair {pair}"))?;
        }
        let (relay_rate, raw_rate) = (
            VOLUME as f64 / last.seconds / 1e6,
            VOLUME as f64 / raw_seconds / 1e6,
        );
        println!(
            "{:>12} pair {pair}      relay {relay_rate:.2} MB/s ({} frames, {:.0} bytes each), raw PTY {raw_rate:.2} MB/s, ratio {:.3} ({} first)",
            "",
            last.frames,
            last.bytes as f64 / last.frames as f64,
            relay_rate / raw_rate,
            if relay_first { "relay" } else { "raw" },
        );
        relayed.push(relay_rate);
        wire.push(last.bytes as f64 / last.seconds / 1e6);
        raw.push(raw_rate);
        ratios.push(relay_rate / raw_rate);
    }
    drop(ws);
    let (ws_best, ws_median) = best_and_median(&relayed);
    let (raw_best, raw_median) = best_and_median(&raw);
    let runs = THROUGHPUT_PAIRS;
    let what = format!(
        "of command output ({VOLUME} bytes) through PTY -> relay -> TLS WebSocket -> client, from sending the command to seeing its end marker"
    );
    figure(ws_best, "MB/s", &format!("best of {runs}, {what}"));
    figure(ws_median, "MB/s", &format!("median of {runs}, {what}"));
    figure(
        last.bytes as f64,
        "bytes",
        "received by the client in one run (the PTY turns each \\n into \\r\\n)",
    );
    figure(
        best_and_median(&wire).1,
        "MB/s",
        &format!("median of {runs}, the same runs counted in bytes received"),
    );
    figure(
        last.cpu.process - last.cpu.main_thread,
        "CPU s",
        &format!(
            "used by the runtime's workers (the runner's relay, and the I/O driver) during the last run of {:.1} s",
            last.seconds
        ),
    );
    figure(
        last.cpu.main_thread,
        "CPU s",
        "used by the client (bench main thread: TLS decryption, frame parsing) during that run",
    );
    let raw_what =
        format!("raw PTY limit: script -qc \"yes | head -c {VOLUME}\" /dev/null > /dev/null");
    figure(raw_best, "MB/s", &format!("best of {runs}, {raw_what}"));
    figure(raw_median, "MB/s", &format!("median of {runs}, {raw_what}"));
    figure(
        ws_best / raw_best,
        "ratio",
        "WebSocket / raw PTY, best against best (target: >= 0.95)",
    );
    figure(
        ws_median / raw_median,
        "ratio",
        "WebSocket / raw PTY, median against median (target: >= 0.95)",
    );
    let (best_ratio, median_ratio) = best_and_median(&ratios);
    figure(
        median_ratio,
        "ratio",
        &format!(
            "WebSocket / raw PTY, median of the {runs} pairs' ratios (best pair {best_ratio:.3})"
        ),
    );
    Ok(())
}

/// What the client saw of one throughput run.
#[derive(Default)]
struct RelayedRun {
    /// From sending the command until the client has the end marker.
    seconds: f64,
    /// Received meanwhile, and in how many frames.
    bytes: u64,
    frames: u64,
    /// CPU time of this process (the runner's server and the client) meanwhile.
    cpu: Cpu,
}

async fn relayed_run(ws: &mut Browser) -> anyhow::Result<RelayedRun> {
    // The typed line echoes as `DONE''-MARK`; only the output has `DONE-MARK`.
    const MARK: &[u8] = b"DONE-MARK";
    let command = format!("yes | head -c {VOLUME}; echo DONE''-MARK\n");
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    type_text(ws, &command).await?;
    let (mut bytes, mut frames) = (0u64, 0u64);
    // The last bytes seen, so that a marker split over two frames is found.
    let mut tail = Vec::new();
    let read = async {
        loop {
            let frame = next_output(ws).await?;
            bytes += frame.len() as u64;
            frames += 1;
            tail.extend_from_slice(&frame);
            if contains(&tail, MARK) {
                return Ok::<_, anyhow::Error>(());
            }
            tail.drain(..tail.len().saturating_sub(MARK.len() - 1));
        }
    };
    within(Duration::from_secs(120), "the end marker", read).await??;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    drain(ws, Duration::from_millis(200)).await?;
    Ok(RelayedRun {
        seconds,
        bytes,
        frames,
        cpu,
    })
}

/// `raw_pty_run` while the terminal's client keeps reading: it answers the
/// server's Pings as a browser does. On a loaded machine two raw runs back to
/// back can outlast the server's read deadline (60 s of silence), which would
/// rightly end a terminal whose client reads nothing.
async fn raw_pty_run_answering(ws: &mut Browser) -> anyhow::Result<f64> {
    let raw = raw_pty_run();
    tokio::pin!(raw);
    loop {
        tokio::select! {
            seconds = &mut raw => return seconds,
            frame = ws.next() => match frame {
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("terminal connection failed during the raw run: {e}"),
                None => bail!("terminal connection ended during the raw run"),
            },
        }
    }
}

/// Seconds that `script` takes to pass the same output through a PTY to /dev/null.
async fn raw_pty_run() -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut child = Command::new("script")
        .args(["-qc", &format!("yes | head -c {VOLUME}"), "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting script(1) (util-linux)")?;
    let pid = child.id() as libc::pid_t;
    let waited = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    let seconds = start.elapsed().as_secs_f64();
    match waited {
        Ok(joined) => {
            let status = joined.context("waiting for script")??;
            ensure!(status.success(), "script exited with {status}");
            Ok(seconds)
        }
        Err(_) => {
            // SAFETY: only sends a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            bail!("script took over 120 s")
        }
    }
}
