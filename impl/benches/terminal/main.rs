//! `cargo bench -p session-server --bench terminal`: figures of the session
//! server on this machine, printed one a line (value, unit, what was measured).
//! Nothing here asserts a timing: the targets in the output are for reading.
//!
//! 1. Output throughput of a real PTY through the WebSocket, against the raw
//!    PTY limit of the same machine (`script`): [`throughput`].
//! 2. Keystroke echo round trip on loopback: [`echo`].
//! 3. TLS + WebSocket upgrade setups per second against one session: [`setups`].
//! 4. Memory per idle session at 1,000 sessions, in a separate runner process:
//!    [`memory`] (the process: [`server_process`]).
//!
//! Every wait is bounded; a failure prints what failed and exits non-zero.
//! `cargo bench -p session-server --bench terminal -- 2 3` runs parts 2 and 3 only.

mod client;
mod cpu;
mod echo;
mod memory;
mod server_process;
mod setups;
#[path = "../../tests/support/mod.rs"]
mod support;
mod throughput;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use server_process::raise_fd_limit;
use session_server::runner::StopMode;
use support::{selected, world, World};

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
                throughput::output_throughput(&real).await?;
            }
            if selected(2) {
                echo::keystroke_echo(&real).await?;
            }
            if selected(3) {
                // The simulated shell first (the server alone), then a real PTY each.
                setups::simulated().await?;
                setups::real_pty(&real).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        // Stopped even after a failure: its jobs' processes are killed.
        stop(real).await?;
        result?;
    }
    if selected(4) {
        memory::memory_per_idle_session().await?;
    }
    Ok(())
}

/// Prints one figure: the value, its unit, and what was measured.
pub(crate) fn figure(value: f64, unit: &str, what: &str) {
    if value.fract() == 0.0 {
        println!("{value:>12} {unit:<14} {what}"); // counts
    } else {
        println!("{value:>12.3} {unit:<14} {what}");
    }
}

pub(crate) fn heading(title: &str) {
    println!("\n== {title}");
}

/// `work`, or an error naming `what` after `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("timed out after {limit:?} waiting for {what}"))
}

/// Stops an in-process runner: jobs are aborted, their processes killed.
pub(crate) async fn stop(world: World) -> anyhow::Result<()> {
    within(
        Duration::from_secs(60),
        "the in-process runner to stop",
        world.runner.stop(StopMode::Abort),
    )
    .await
}
