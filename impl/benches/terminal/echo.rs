//! Part 2: keystroke echo round trip on loopback.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{contains, drain, next_output, open_job_terminal, read_until, sync, type_text};
use crate::support::World;
use crate::{figure, heading, within};

const KEYSTROKES: usize = 2_000;
/// Keystrokes sent before the measured ones, to warm caches and the scheduler.
const WARMUP_KEYSTROKES: usize = 50;

/// Milliseconds from sending a one-byte binary frame to receiving its echo.
///
/// The terminal runs `stty raw -echo; exec cat`: each byte typed comes back as
/// exactly that byte, echoed by a process as a shell's line editor does
/// (bash's readline echoes itself too), with no line to keep short and
/// no prompt redraw to tell apart.
pub(crate) async fn keystroke_echo(world: &World) -> anyhow::Result<()> {
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
