//! `cargo bench -p session-server --bench docker`: the docker executor on a
//! real Docker Engine, printed one figure a line (value, unit, what). Nothing
//! here asserts a timing.
//!
//! 1. Output throughput of a terminal: an exec into the build container
//!    (busybox sh on a TTY, through the engine's hijacked stream) beside a
//!    shell-executor terminal (bash on a PTY), runs interleaved.
//! 2. Keystroke echo round trip, the same two terminals side by side.
//! 3. Container setup per job, phase by phase, through the executor's own
//!    engine code: create, start, first byte of the script's output, exit,
//!    removal.
//!
//! Needs an engine at `DOCKER_HOST` with the test image (`.ci/docker-test-image`);
//! without one it prints why and exits 0. `-- 2 3` runs parts 2 and 3 only.
//! The PTY's own limit (`script`) is part 1 of `--bench terminal`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bollard::Docker;
use futures_util::{SinkExt, StreamExt};
use session_server::config::{DockerConfig, PullPolicy};
use session_server::executor::engine::build::{BuildContainer, ContainerSpec};
use session_server::executor::engine::Engine;
use session_server::machine::ScriptExit;
use session_server::net::TokioNet;
use session_server::runner::StopMode;
use support::{connect, job, selected, world, World};
use tokio::io::AsyncReadExt;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Browser = WebSocketStream<TlsStream<tokio::net::TcpStream>>;

const TEST_IMAGE: &str = "session-harness/busybox:test";
/// The runner token of this bench's containers: labelled `bench-do`, removed
/// at the end whatever happened.
const TOKEN: &str = "bench-docker";
/// Bytes of output per throughput run (busybox's `yes | head -c`).
/// The engine's TTY exec path runs at a few MB/s at most (part 1 prints the
/// docker CLI's own figure): a bigger volume only makes the bench longer.
const VOLUME: u64 = 4_000_000;
const THROUGHPUT_RUNS: usize = 3;
const KEYSTROKES: usize = 1_000;
const WARMUP_KEYSTROKES: usize = 50;
/// Jobs whose container setup is timed.
const SETUPS: usize = 5;
/// The longest any single wait of the bench may take.
const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        let Some(docker) = engine().await else {
            return Ok(());
        };
        let result = run_all().await;
        // Whatever failed, no container of this bench stays behind.
        let engine = Engine::new(bench_docker_config(), TOKEN).map_err(|e| anyhow!("{e}"))?;
        let left = engine.clean_up().await;
        if left > 0 {
            println!("(removed {left} container(s) the bench left)");
        }
        drop(docker);
        result
    });
    drop(runtime);
    if let Err(e) = result {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

/// The engine with the test image, or `None` after saying why not.
async fn engine() -> Option<Docker> {
    let why = match Docker::connect_with_defaults() {
        Err(e) => format!("no usable DOCKER_HOST: {e}"),
        Ok(docker) => match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Ok(Ok(_)) => match docker.inspect_image(TEST_IMAGE).await {
                Ok(_) => return Some(docker),
                Err(e) => format!("the engine has no image {TEST_IMAGE} ({e})"),
            },
            Ok(Err(e)) => format!("no Docker Engine answers at DOCKER_HOST: {e}"),
            Err(_) => "the Docker Engine at DOCKER_HOST does not answer within 5 s".into(),
        },
    };
    println!(
        "SKIPPED the docker bench: {why}. Start dockerd, set DOCKER_HOST and run \
         .ci/docker-test-image (README: the docker executor)."
    );
    None
}

fn bench_docker_config() -> DockerConfig {
    DockerConfig {
        image: Some(TEST_IMAGE.into()),
        pull_policy: PullPolicy::Never,
        ..DockerConfig::default()
    }
}

async fn run_all() -> anyhow::Result<()> {
    if selected(1) || selected(2) {
        let machine = Arc::new(support::os_machine());
        let shell = world("shell", 600, machine.clone(), |_| {}).await;
        let docker = world("docker", 600, machine, |parts| {
            let runner = &mut parts.config.runners[0];
            runner.token = TOKEN.into();
            runner.docker = bench_docker_config();
        })
        .await;
        let result = terminals(&shell, &docker).await;
        for w in [shell, docker] {
            timed("the runner to stop", w.runner.stop(StopMode::Abort)).await?;
        }
        result?;
    }
    if selected(3) {
        container_setup().await?;
    }
    Ok(())
}

async fn terminals(shell: &World, docker: &World) -> anyhow::Result<()> {
    let mut pty = open(shell, 1).await?;
    let mut exec = open(docker, 1).await?;
    if selected(1) {
        heading(&format!(
            "1. Terminal output throughput, `yes | head -c {VOLUME}`, {THROUGHPUT_RUNS} runs each, interleaved"
        ));
        let container = build_container(1).await?;
        let (mut on_pty, mut on_exec, mut on_cli) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..THROUGHPUT_RUNS as u32 {
            on_pty.push(throughput(&mut pty, run).await.context("shell executor")?);
            on_exec.push(
                throughput(&mut exec, run)
                    .await
                    .context("docker executor")?,
            );
            on_cli.push(docker_cli_throughput(&container).await?);
        }
        let (pty_best, pty_median) = best_and_median(&on_pty);
        let (exec_best, exec_median) = best_and_median(&on_exec);
        figure(pty_best, "MB/s", "best, shell executor: bash on a PTY");
        figure(pty_median, "MB/s", "median, shell executor");
        figure(exec_best, "MB/s", "best, docker executor: exec with a TTY");
        figure(exec_median, "MB/s", "median, docker executor");
        figure(exec_median / pty_median, "x", "docker / shell, medians");
        let (cli_best, cli_median) = best_and_median(&on_cli);
        figure(
            cli_best,
            "MB/s",
            "best, the engine's own limit: `docker exec -it` of the docker CLI under `script`",
        );
        figure(cli_median, "MB/s", "median, docker CLI");
        figure(
            exec_median / cli_median,
            "x",
            "docker executor / docker CLI, medians",
        );
    }
    if selected(2) {
        heading(&format!(
            "2. Keystroke echo round trip (stty raw -echo; cat), {KEYSTROKES} one-byte frames"
        ));
        let on_pty = echo(&mut pty).await.context("shell executor")?;
        let on_exec = echo(&mut exec).await.context("docker executor")?;
        for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
            figure(
                percentile(&on_pty, q),
                "ms",
                &format!("{name}, shell executor"),
            );
            figure(
                percentile(&on_exec, q),
                "ms",
                &format!("{name}, docker executor"),
            );
        }
        figure(on_exec[on_exec.len() - 1], "ms", "max, docker executor");
    }
    Ok(())
}

/// Queues job `id` (`sleep 600`) on `world` and opens its terminal, ready.
async fn open(world: &World, id: u64) -> anyhow::Result<Browser> {
    world.gitlab.push(job(id, &["sleep 600"], &[]));
    let session = timed("the runner to take the job", world.session(id)).await?;
    let mut ws = timed(
        "the terminal upgrade",
        connect(&TokioNet, &session, &["terminal.gitlab.com"]),
    )
    .await?;
    marker(&mut ws, "READY").await?;
    Ok(ws)
}

/// Types `echo <name>''-DONE` and reads until its output: the shell is idle
/// and everything before it was read. Returns how many bytes were read.
async fn marker(ws: &mut Browser, name: &str) -> anyhow::Result<u64> {
    send(ws, format!("echo {name}''-DONE\r").as_bytes()).await?;
    let needle = format!("{name}-DONE\r\n");
    let (mut read, mut tail) = (0u64, Vec::new());
    timed(&format!("{name}-DONE"), async {
        loop {
            let bytes = output(ws).await?;
            read += bytes.len() as u64;
            tail.extend_from_slice(&bytes);
            if tail.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return Ok::<_, anyhow::Error>(());
            }
            // Only the end can still hold the marker.
            let keep = tail.len().saturating_sub(needle.len() * 4);
            tail.drain(..keep);
        }
    })
    .await??;
    // The prompt after the marker.
    while let Ok(bytes) = tokio::time::timeout(Duration::from_millis(100), output(ws)).await {
        bytes?;
    }
    Ok(read)
}

/// MB/s of one `yes | head -c VOLUME` run as the browser receives it.
async fn throughput(ws: &mut Browser, run: u32) -> anyhow::Result<f64> {
    let start = Instant::now();
    send(ws, format!("yes | head -c {VOLUME}; ").as_bytes()).await?;
    let read = marker(ws, &format!("RUN{run}")).await?;
    let seconds = start.elapsed().as_secs_f64();
    if read < VOLUME {
        bail!("only {read} of {VOLUME} bytes arrived");
    }
    Ok(VOLUME as f64 / 1e6 / seconds)
}

/// The build container of job `job_id` of this bench's runner.
async fn build_container(job_id: u64) -> anyhow::Result<String> {
    use bollard::query_parameters::ListContainersOptions;
    use session_server::executor::engine::{JOB_LABEL, RUNNER_LABEL};
    let docker = Docker::connect_with_defaults()?;
    let labels = vec![
        format!("{RUNNER_LABEL}={}", &TOKEN[..8]),
        format!("{JOB_LABEL}={job_id}"),
    ];
    let options = ListContainersOptions {
        filters: Some(std::collections::HashMap::from([("label".into(), labels)])),
        ..ListContainersOptions::default()
    };
    let found = docker.list_containers(Some(options)).await?;
    found
        .into_iter()
        .find_map(|c| c.id)
        .ok_or_else(|| anyhow!("no running build container of job {job_id}"))
}

/// MB/s of the same command through `docker exec -it` on a PTY of `script`
/// (util-linux), output thrown away: what the engine's exec path gives any
/// client, the executor's reference as `script` alone is the PTY's.
async fn docker_cli_throughput(container: &str) -> anyhow::Result<f64> {
    let command = format!("docker exec -it {container} sh -c 'yes | head -c {VOLUME}'");
    let run = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let status = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status();
        (status, start.elapsed())
    });
    let (status, took) = timed("`docker exec` of the docker CLI", run).await??;
    let status = status.context("running `script` (util-linux) and the docker CLI")?;
    if !status.success() {
        bail!("`script -qec \"docker exec -it ...\"` failed: {status}");
    }
    Ok(VOLUME as f64 / 1e6 / took.as_secs_f64())
}

/// Sorted round trips (ms) of single keystrokes echoed by `cat` on a raw TTY.
async fn echo(ws: &mut Browser) -> anyhow::Result<Vec<f64>> {
    send(ws, b"stty raw -echo; echo ECHO''-GO; exec cat\r").await?;
    timed("cat to start", async {
        let mut seen = Vec::new();
        while !seen.windows(7).any(|w| w == b"ECHO-GO") {
            seen.extend_from_slice(&output(ws).await?);
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    while let Ok(bytes) = tokio::time::timeout(Duration::from_millis(100), output(ws)).await {
        bytes?;
    }
    let mut samples = Vec::with_capacity(KEYSTROKES);
    for i in 0..WARMUP_KEYSTROKES + KEYSTROKES {
        let key = b'a' + (i % 26) as u8;
        let start = Instant::now();
        send(ws, &[key]).await?;
        timed("a keystroke's echo", async {
            while !output(ws).await?.contains(&key) {}
            Ok::<_, anyhow::Error>(())
        })
        .await??;
        if i >= WARMUP_KEYSTROKES {
            samples.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

/// Create, start, first byte, exit and removal of a build container, `SETUPS`
/// times, each phase timed apart; the script is `echo` and nothing else.
async fn container_setup() -> anyhow::Result<()> {
    heading(&format!(
        "3. Container setup per job ({TEST_IMAGE}, {SETUPS} jobs, one after the other)"
    ));
    let engine = Engine::new(bench_docker_config(), TOKEN).map_err(|e| anyhow!("{e}"))?;
    let phases = ["create", "start", "first byte", "exit", "remove"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); phases.len()];
    for n in 0..SETUPS as u64 {
        let spec = ContainerSpec {
            job_id: 1000 + n,
            image: TEST_IMAGE.into(),
            script: vec!["echo first".into()],
            working_dir: "/builds/bench".into(),
            ..ContainerSpec::default()
        };
        let mut clock = Instant::now();
        let mut lap = |phase: usize| {
            times[phase].push(clock.elapsed().as_secs_f64() * 1e3);
            clock = Instant::now();
        };
        let created = BuildContainer::create(&engine, &spec)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        lap(0);
        timed("the container to start", created.start())
            .await?
            .map_err(|e| anyhow!("{e}"))?;
        lap(1);
        let mut run = created.run_script()?;
        let mut first = [0u8; 1];
        timed("the script's first byte", run.output.read_exact(&mut first)).await??;
        lap(2);
        match timed("the script's exit", &mut run.exit).await?? {
            ScriptExit::Code(0) => {}
            other => bail!("the script `echo first` ended with {other:?}"),
        }
        lap(3);
        timed("the removal", engine.remove_job(spec.job_id)).await?;
        lap(4);
    }
    for (phase, samples) in phases.iter().zip(&mut times) {
        samples.sort_by(f64::total_cmp);
        figure(
            percentile(samples, 0.5),
            "ms",
            &format!("median {phase} (max {:.1})", samples[samples.len() - 1]),
        );
    }
    let total: f64 = times.iter().map(|s| percentile(s, 0.5)).sum();
    figure(
        total,
        "ms",
        "sum of medians: a job's container from create to removed",
    );
    Ok(())
}

async fn send(ws: &mut Browser, bytes: &[u8]) -> anyhow::Result<()> {
    ws.send(Message::binary(bytes.to_vec()))
        .await
        .context("sending input")
}

/// The next output frame; an error when the terminal ends.
async fn output(ws: &mut Browser) -> anyhow::Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(frame))) => bail!("the terminal closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the terminal connection failed: {e}"),
            None => bail!("the terminal connection ended"),
        }
    }
}

/// `work`, or an error naming `what` after [`LIMIT`].
async fn timed<T>(what: &str, work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(LIMIT, work)
        .await
        .map_err(|_| anyhow!("no {what} within {LIMIT:?}"))
}

fn best_and_median(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() - 1], sorted[sorted.len() / 2])
}

/// The nearest-rank percentile of sorted `samples`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn heading(title: &str) {
    println!("\n== {title}");
}

fn figure(value: f64, unit: &str, what: &str) {
    println!("{value:>12.3} {unit:<6} {what}");
}
