//! `cargo bench -p session-server --bench terminal`: figures of the session
//! server on this machine, printed one a line (value, unit, what was measured).
//! Nothing here asserts a timing: the targets in the output are for reading.
//!
//! 1. Output throughput of a real PTY through the WebSocket, against the raw
//!    PTY limit of the same machine (`script`).
//! 2. Keystroke echo round trip on loopback.
//! 3. TLS + WebSocket upgrade setups per second against one session.
//! 4. Memory per idle session at 1,000 sessions, in a separate runner process.
//!
//! Every wait is bounded; a failure prints what failed and exits non-zero.
//! `cargo bench -p session-server --bench terminal -- 2 3` runs parts 2 and 3 only.

mod server_process;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use server_process::{count, free_port, kill_all, raise_fd_limit, ServerProcess, TempDir};
use session_server::coordinator::api::SessionInfo;
use session_server::machine::sim::SimMachine;
use session_server::net::{Net, TokioNet};
use session_server::runner::StopMode;
use session_server::session::Session;
use support::{connect, job, selected, world, Gitlab, World};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A browser's end of a terminal connection.
type Browser = WebSocketStream<TlsStream<tokio::net::TcpStream>>;

/// The subprotocol offered by every client here: raw bytes in binary frames.
const BINARY: &[&str] = &["terminal.gitlab.com"];

/// Bytes of command output in one throughput run.
const VOLUME: u64 = 50_000_000;
/// Throughput is measured in pairs (one relayed run, one raw PTY run, back to
/// back, their order alternating), so that a drift of the machine's load
/// (others compiling, say) touches both runs of a pair alike.
const THROUGHPUT_PAIRS: usize = 6;
const KEYSTROKES: usize = 2_000;
/// Keystrokes sent before the measured ones, to warm caches and the scheduler.
const WARMUP_KEYSTROKES: usize = 50;
const SETUP_PERIOD: Duration = Duration::from_secs(3);
const SETUP_PERIOD_REAL_PTY: Duration = Duration::from_secs(2);
const IDLE_SESSIONS: u64 = 1_000;
/// Job variable put on every job of the memory run: its processes (scripts and
/// terminal shells inherit the job's variables) are found by it in /proc.
const MARKER_VARIABLE: &str = "SESSION_SERVER_BENCH_RUN";

fn main() {
    let started = Instant::now();
    if let Err(e) = raise_fd_limit() {
        eprintln!("warning: could not raise the fd limit: {e:#}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(run_all());
    // Drop the runtime (and with it any worlds' tasks) before exiting.
    drop(runtime);
    match result {
        Ok(()) => println!("(whole bench: {:.0} s)", started.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run_all() -> anyhow::Result<()> {
    // Parts 1, 2 and the real-PTY half of 3 share one in-process runner on real
    // processes; each uses a job (and so a session and a shell) of its own.
    if selected(1) || selected(2) || selected(3) {
        let real = world("shell", 600, Arc::new(support::os_machine()), |_| {}).await;
        let result = async {
            if selected(1) {
                output_throughput(&real).await?;
            }
            if selected(2) {
                keystroke_echo(&real).await?;
            }
            if selected(3) {
                // The simulated shell first (the server alone), then a real PTY each.
                setups_per_second_simulated().await?;
                setups_per_second(&real, 3, SETUP_PERIOD_REAL_PTY, "bash in a real PTY").await?;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        // Stopped even after a failure: its jobs' processes are killed.
        stop(real).await?;
        result?;
    }
    if selected(4) {
        memory_per_idle_session().await?;
    }
    Ok(())
}

/// Prints one figure: the value, its unit, and what was measured.
fn figure(value: f64, unit: &str, what: &str) {
    if value.fract() == 0.0 {
        println!("{value:>12} {unit:<14} {what}"); // counts
    } else {
        println!("{value:>12.3} {unit:<14} {what}");
    }
}

fn heading(title: &str) {
    println!("\n== {title}");
}

/// `work`, or an error naming `what` after `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("timed out after {limit:?} waiting for {what}"))
}

/// Stops an in-process runner: jobs are aborted, their processes killed.
async fn stop(world: World) -> anyhow::Result<()> {
    within(
        Duration::from_secs(60),
        "the in-process runner to stop",
        world.runner.stop(StopMode::Abort),
    )
    .await
}

// ---------------------------------------------------------------------------
// Terminal client helpers

/// The next output frame's bytes; an error if the connection ends.
async fn next_output(ws: &mut Browser) -> anyhow::Result<Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(Message::Text(t))) => return Ok(Bytes::from(t.as_str().to_owned())),
            Some(Ok(Message::Close(frame))) => bail!("the server closed the terminal: {frame:?}"),
            Some(Ok(_)) => continue, // ping, pong
            Some(Err(e)) => bail!("terminal connection failed: {e}"),
            None => bail!("terminal connection ended"),
        }
    }
}

/// Reads output until `done` holds for everything read so far; returns it.
async fn read_until(
    ws: &mut Browser,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        while !done(&seen) {
            seen.extend_from_slice(&next_output(ws).await?);
        }
        Ok::<_, anyhow::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(result) => result.with_context(|| {
            format!(
                "reading until {what}; saw {:?}",
                String::from_utf8_lossy(&seen)
            )
        })?,
        Err(_) => bail!(
            "no {what} within 30 s; saw {:?}",
            String::from_utf8_lossy(&seen)
        ),
    }
    Ok(seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads and discards output until none came for `quiet` (e.g. a prompt after
/// the output that was waited for), so that the next measure starts clean.
async fn drain(ws: &mut Browser, quiet: Duration) -> anyhow::Result<()> {
    let drained = async {
        while let Ok(frame) = tokio::time::timeout(quiet, next_output(ws)).await {
            frame?;
        }
        Ok::<_, anyhow::Error>(())
    };
    within(Duration::from_secs(30), "the terminal to go quiet", drained).await?
}

async fn type_text(ws: &mut Browser, text: &str) -> anyhow::Result<()> {
    ws.send(Message::binary(text.as_bytes().to_vec()))
        .await
        .context("sending keystrokes")
}

/// Runs `echo` of a marker and waits for its output: the shell is up and idle.
/// The typed line echoes as `MARK''-N`; only the output has `MARK-N` + CRLF.
async fn sync(ws: &mut Browser, n: u32) -> anyhow::Result<()> {
    type_text(ws, &format!("echo SYNC''-{n}\n")).await?;
    let needle = format!("SYNC-{n}\r\n");
    read_until(ws, &needle, |seen| contains(seen, needle.as_bytes())).await?;
    drain(ws, Duration::from_millis(100)).await
}

/// Queues job `id` (script `sleep 600`) and connects a terminal to its session.
async fn open_job_terminal(world: &World, id: u64) -> anyhow::Result<(SessionInfo, Browser)> {
    world.gitlab.push(job(id, &["sleep 600"], &[]));
    let session = within(
        Duration::from_secs(30),
        "the runner to take the job",
        world.session(id),
    )
    .await?;
    let ws = within(
        Duration::from_secs(30),
        "the terminal upgrade",
        connect(&TokioNet, &session, BINARY),
    )
    .await?;
    Ok((session, ws))
}

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

// ---------------------------------------------------------------------------
// 1. Output throughput

/// MB/s (10^6 bytes) of `yes | head -c 50000000` in a terminal, seen by the
/// browser, against the same command under `script` (the PTY alone), in
/// pairs: each pair's ratio compares runs made within seconds of each other.
async fn output_throughput(world: &World) -> anyhow::Result<()> {
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

/// User + system CPU seconds so far: of this process, and of its main thread.
///
/// The main thread runs `block_on`, so only the client's work (reading frames,
/// TLS decryption); the runtime's worker threads run the server and the I/O driver.
fn cpu_seconds() -> Cpu {
    Cpu {
        process: stat_cpu_seconds("/proc/self/stat"),
        main_thread: stat_cpu_seconds(&format!("/proc/self/task/{}/stat", std::process::id())),
    }
}

#[derive(Clone, Copy, Default)]
struct Cpu {
    process: f64,
    main_thread: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            process: self.process - earlier.process,
            main_thread: self.main_thread - earlier.main_thread,
        }
    }
}

/// User + system CPU seconds in a /proc `stat` file.
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Counted after the command name, which may hold spaces: index 0 is the
    // state (field 3), so utime (field 14) and stime (15) are 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a system setting.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
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

// ---------------------------------------------------------------------------
// 2. Keystroke echo round trip

/// Milliseconds from sending a one-byte binary frame to receiving its echo.
///
/// The terminal runs `stty raw -echo; exec cat`: each byte typed comes back as
/// exactly that byte, echoed by a process as a shell's line editor does
/// (bash's readline echoes itself too), with no line to keep short and
/// no prompt redraw to tell apart.
async fn keystroke_echo(world: &World) -> anyhow::Result<()> {
    heading("2. Keystroke echo round trip on loopback (bash -> stty raw -echo; cat)");
    let (_session, mut ws) = open_job_terminal(world, 2).await?;
    sync(&mut ws, 1).await?;
    type_text(&mut ws, "stty raw -echo; echo READY''-GO; exec cat\n").await?;
    read_until(&mut ws, "READY-GO", |seen| contains(seen, b"READY-GO")).await?;
    drain(&mut ws, Duration::from_millis(100)).await?;

    let mut samples = Vec::with_capacity(KEYSTROKES);
    let mut odd_replies = 0;
    for i in 0..WARMUP_KEYSTROKES + KEYSTROKES {
        let key = b'a' + (i % 26) as u8;
        let start = Instant::now();
        ws.send(Message::binary(vec![key]))
            .await
            .context("sending a keystroke")?;
        let mut reply = Vec::new();
        let echoed = async {
            while !reply.contains(&key) {
                reply.extend_from_slice(&next_output(&mut ws).await?);
            }
            Ok::<_, anyhow::Error>(())
        };
        within(Duration::from_secs(5), "a keystroke's echo", echoed).await??;
        let round_trip = start.elapsed();
        if reply != [key] {
            odd_replies += 1;
        }
        if i >= WARMUP_KEYSTROKES {
            samples.push(round_trip.as_secs_f64() * 1e3);
        }
    }
    drop(ws);
    samples.sort_by(f64::total_cmp);
    let what = |q: &str| {
        format!("{q} keystroke echo round trip, {KEYSTROKES} one-byte binary frames, sequential")
    };
    figure(percentile(&samples, 0.50), "ms", &what("p50"));
    figure(percentile(&samples, 0.90), "ms", &what("p90"));
    figure(
        percentile(&samples, 0.99),
        "ms",
        &what("p99 (target < 0.5 ms)"),
    );
    figure(samples[samples.len() - 1], "ms", &what("max"));
    if odd_replies > 0 {
        figure(
            odd_replies as f64,
            "replies",
            "echoes that were not exactly the key sent (should be 0)",
        );
    }
    Ok(())
}

/// The nearest-rank percentile of sorted `samples`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// 3. TLS + upgrade setups per second

/// Setups against a session of the simulated machine: its shell is a task, so
/// the figure is the server's (TLS, HTTP, upgrade, relay, close), not fork/exec.
async fn setups_per_second_simulated() -> anyhow::Result<()> {
    heading("3. TLS + WebSocket upgrade setups per second, sequential, one session");
    let sim = world("shell", 600, Arc::new(SimMachine), |_| {}).await;
    let result = setups_per_second(&sim, 1, SETUP_PERIOD, "simulated shell (SimMachine)").await;
    stop(sim).await?;
    result
}

/// Repeats full setups on job `id`'s session for `period`; prints setups/s.
async fn setups_per_second(
    world: &World,
    id: u64,
    period: Duration,
    machine: &str,
) -> anyhow::Result<()> {
    let (session, ws) = open_job_terminal(world, id).await?;
    // The server's side of the session, to know when its terminal slot is free.
    let server_side = world
        .runner
        .sessions()
        .route(&support::path(&session, "/exec"))
        .map(|(session, _)| session)
        .context("the runner has no such session")?;
    close_and_wait(ws, &server_side).await?;
    for _ in 0..10 {
        one_setup(&session, &server_side).await?; // warm-up
    }
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let mut setups = 0u32;
    while start.elapsed() < period {
        one_setup(&session, &server_side)
            .await
            .with_context(|| format!("setup {}", setups + 1))?;
        setups += 1;
    }
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    figure(
        f64::from(setups) / seconds,
        "setups/s",
        &format!(
            "{machine}: TCP connect, TLS handshake (trusting only the session cert), upgrade to 101, close frame, wait for the close; {setups} in {seconds:.1} s"
        ),
    );
    figure(
        seconds * 1e3 / f64::from(setups),
        "ms",
        &format!("{machine}: mean time of one such setup"),
    );
    // Both ends run here, on 2 threads or more: which share is the server's.
    figure(
        (cpu.process - cpu.main_thread) * 1e3 / f64::from(setups),
        "CPU ms",
        &format!("{machine}: per setup, runtime workers (the runner's server)"),
    );
    figure(
        cpu.main_thread * 1e3 / f64::from(setups),
        "CPU ms",
        &format!("{machine}: per setup, the client (bench main thread)"),
    );
    Ok(())
}

/// One full setup: TCP connect, TLS handshake, upgrade, close, wait for the close.
async fn one_setup(session: &SessionInfo, server_side: &Session) -> anyhow::Result<()> {
    // `connect` dials, shakes hands trusting only the session certificate
    // (a fresh client config each time: no TLS resumption) and expects the 101.
    let ws = within(
        Duration::from_secs(10),
        "a terminal upgrade",
        connect(&TokioNet, session, BINARY),
    )
    .await?;
    close_and_wait(ws, server_side).await
}

/// Sends a close frame and waits for the server's: its close frame, the end of
/// the transport (TLS close_notify or FIN), and its release of the session's
/// single terminal slot, without which the next setup would get 423.
async fn close_and_wait(mut ws: Browser, server_side: &Session) -> anyhow::Result<()> {
    let closed = async {
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .context("sending the close frame")?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
                other => bail!("no close frame from the server: {other:?}"),
            }
        }
        let mut buf = [0u8; 512];
        while let Ok(1..) = ws.get_mut().read(&mut buf).await {}
        server_side.disconnected().await;
        Ok(())
    };
    within(Duration::from_secs(10), "the server's close", closed).await?
}

// ---------------------------------------------------------------------------
// 4. Memory per idle session

/// RSS of a separate `session-server run` process with 1,000 running jobs:
/// before any job, with the jobs running, and with a terminal connected to
/// each (idle, the prompt read).
async fn memory_per_idle_session() -> anyhow::Result<()> {
    heading(
        "4. Memory per idle session, 1,000 sessions, separate session-server process (sh = dash)",
    );
    let dir = TempDir::new()?;
    let marker = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let gitlab = Gitlab::default();
    let listener = TokioNet.bind("127.0.0.1:0").await?;
    let gitlab_address = support::local(listener.local_addr()?);
    gitlab.serve(listener);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        memory_config(&gitlab_address, free_port()?, dir.path()),
    )
    .context("writing config.toml")?;
    let mut server = ServerProcess::start(
        &config,
        &dir.path().join("server.log"),
        MARKER_VARIABLE,
        marker,
    )?;
    // The idle browsers stay up until the runner's shutdown closes them.
    let result = measure_idle_sessions(&gitlab, &mut server).await;
    if result.is_err() {
        eprintln!(
            "--- session-server log (last lines) ---\n{}",
            server.log_tail()
        );
    }
    // Stop and count leftovers even after a failure, so nothing of this run stays.
    let stopped = stop_and_count_leftovers(&mut server).await;
    let idle_browsers = result?;
    for task in idle_browsers {
        task.abort();
    }
    stopped
}

/// Stops the runner (it aborts its jobs and kills their processes), then
/// prints how many processes of this run are left, and kills them.
async fn stop_and_count_leftovers(server: &mut ServerProcess) -> anyhow::Result<()> {
    let (status, took) = server.stop().await?;
    figure(
        took.as_secs_f64(),
        "s",
        &format!("from SIGTERM to the runner's exit ({status})"),
    );
    let leftovers = server.processes();
    figure(
        leftovers.len() as f64,
        "processes",
        &format!(
            "of this run left after the runner exited (sleep: {}, sh: {}; should be 0)",
            count(&leftovers, "sleep"),
            count(&leftovers, "sh")
        ),
    );
    if !leftovers.is_empty() {
        kill_all(&leftovers);
        bail!(
            "{} processes of this run outlived the runner (killed now)",
            leftovers.len()
        );
    }
    Ok(())
}

fn memory_config(gitlab: &str, port: u16, dir: &Path) -> String {
    format!(
        "concurrent = {IDLE_SESSIONS}\ncheck_interval = 1\n\n\
         [session_server]\nlisten_address = \"127.0.0.1:{port}\"\nsession_timeout = 1800\n\n\
         [[runners]]\nname = \"bench\"\nurl = \"http://{gitlab}\"\ntoken = \"runner-token\"\n\
         executor = \"shell\"\nshell = \"sh\"\nbuilds_dir = \"{}\"\n",
        dir.join("builds").display()
    )
}

/// Returns the idle browsers' tasks, to be kept until the runner has stopped.
async fn measure_idle_sessions(
    gitlab: &Gitlab,
    server: &mut ServerProcess,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    // The first job request means the session server is bound and polling started.
    let first_poll = async {
        while gitlab.requests() == 0 {
            server.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, anyhow::Error>(())
    };
    within(
        Duration::from_secs(30),
        "the runner's first job request",
        first_poll,
    )
    .await??;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = server.rss_kib()?;

    for id in 1..=IDLE_SESSIONS {
        gitlab.push(job(
            id,
            &["sleep 600"],
            &[(MARKER_VARIABLE, &server.marker)],
        ));
    }
    let taken = async {
        let mut sessions = Vec::new();
        for id in 1..=IDLE_SESSIONS {
            sessions.push(gitlab.session(id).await);
        }
        sessions
    };
    let sessions = within(
        Duration::from_secs(60),
        "the runner to take 1,000 jobs",
        taken,
    )
    .await?;
    // Running: every script's `sleep 600` exists (scripts carry the marker).
    let running = async {
        loop {
            server.ensure_running()?;
            let sleeping = count(&server.processes(), "sleep");
            if sleeping as u64 >= IDLE_SESSIONS {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    within(
        Duration::from_secs(60),
        "1,000 `sleep 600` scripts",
        running,
    )
    .await??;
    // Each job reports its log every 3 s, all of them in the same second: let
    // that traffic happen once before measuring, or its buffers would be
    // counted as the terminals'.
    let reported = async {
        for id in 1..=IDLE_SESSIONS {
            gitlab.trace_contains(id, "step_script").await;
        }
    };
    within(
        Duration::from_secs(60),
        "every job's first log update",
        reported,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let jobs_running = server.rss_kib()?;

    let browsers = connect_idle_terminals(sessions).await;
    let connected = browsers.len() as u64;
    // Idle browsers that answer pings, as a real one would.
    let idle: Vec<_> = browsers
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.ensure_running()?;
    let terminals_connected = server.rss_kib()?;
    let still_connected = idle.iter().filter(|task| !task.is_finished()).count();
    let processes = server.processes();

    figure(baseline as f64, "KiB", "RSS of the runner before any job");
    figure(
        jobs_running as f64,
        "KiB",
        "RSS with 1,000 jobs running (sessions exist, no terminal connected)",
    );
    figure(
        terminals_connected as f64,
        "KiB",
        "RSS with the terminals connected and idle, after 2 s",
    );
    figure(
        still_connected as f64,
        "jobs",
        &format!("running with a connected terminal at that moment (of {IDLE_SESSIONS}; {connected} reached the prompt)"),
    );
    figure(
        count(&processes, "sh") as f64,
        "processes",
        "sh of this run at that moment (terminal shells, plus script shells that did not exec sleep)",
    );
    ensure!(
        connected > 0,
        "no terminal connected: no memory per session"
    );
    figure(
        (terminals_connected as f64 - jobs_running as f64) / connected as f64,
        "KiB/session",
        "RSS per idle connected terminal: (connected - jobs running) / connected (target < 64)",
    );
    figure(
        (terminals_connected as f64 - baseline as f64) / connected as f64,
        "KiB/session",
        "RSS per idle session, job included: (connected - before any job) / connected (target < 64)",
    );
    Ok(idle)
}

/// Connects a terminal to each session (a few at a time) and reads each until
/// the shell's prompt; returns those that got there.
async fn connect_idle_terminals(sessions: Vec<SessionInfo>) -> Vec<Browser> {
    let limit = Arc::new(Semaphore::new(32));
    let mut opening = JoinSet::new();
    for session in sessions {
        let limit = limit.clone();
        opening.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let open = async {
                let mut ws = connect(&TokioNet, &session, BINARY).await;
                // dash's prompt: `$ `, or `# ` for root.
                read_until(&mut ws, "the prompt", |seen| {
                    seen.ends_with(b"$ ") || seen.ends_with(b"# ")
                })
                .await?;
                Ok::<_, anyhow::Error>(ws)
            };
            within(Duration::from_secs(60), "a terminal and its prompt", open).await?
        });
    }
    let mut browsers = Vec::new();
    let mut failures = 0;
    while let Some(opened) = opening.join_next().await {
        match opened {
            Ok(Ok(ws)) => browsers.push(ws),
            Ok(Err(e)) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("a terminal did not reach its prompt: {e:#}");
                }
            }
            Err(e) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("a terminal connection failed: {e}");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of the terminals failed");
    }
    browsers
}
