//! The terminal protocol (WS): the subprotocol the 101 selects and its frames,
//! the server's pings, input messages delivered whole, and input into a busy
//! shell that never stops the server from answering control frames.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::terminal::{self, nonce, tail, ANSWER, DEFAULT};
use super::{failure, Checked, Target, BASE64, TERMINAL};

/// WS-4: the server pings every 30 s.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// The reference's cut of a single input message (WS-5).
const REFERENCE_CUT: usize = 32 * 1024;

/// The longest the `pings` case waits for a Ping: 30 s and the slack.
pub fn ping_limit(t: &Target) -> Duration {
    PING_INTERVAL + t.settings.slack
}

/// A terminal offering `offered` must be 101 with `selected`, and a command's
/// output must come back in that protocol's frames (WS-1..3).
pub async fn speaks(t: &Target, offered: &[&str], selected: Option<&str>) -> Checked {
    let mut terminal = terminal::open(t, offered).await?;
    if terminal.protocol.as_deref() != selected {
        let observed = format!("{:?}", terminal.protocol);
        terminal.close().await;
        return Err(failure(
            "the subprotocol the answer selects",
            format!("{selected:?}"),
            observed,
        ));
    }
    let seen = terminal.echo("speaks").await;
    let wanted = if terminal.protocol.as_deref() == Some(BASE64) {
        "text"
    } else {
        "binary"
    };
    let other = terminal.kinds.iter().copied().find(|k| *k != wanted);
    terminal.close().await;
    seen?;
    match other {
        Some(other) => Err(failure(
            "the output's frames",
            format!("{wanted} frames only"),
            format!("a {other} frame"),
        )),
        None => Ok(Vec::new()),
    }
}

/// One input message of `size` bytes (ending in a newline) reaches the shell
/// whole: the shell counts the bytes of the line it reads (WS-5).
pub async fn whole_input(t: &Target, size: usize) -> Checked {
    let mut terminal = terminal::open(t, DEFAULT).await?;
    let ready = format!("conform-ready-{}", nonce());
    // Non-canonical and without echo: a line longer than the terminal's line
    // buffer (4 KiB) is read whole, and not sent back.
    let command = format!(
        "stty -icanon -echo; echo {}; head -n 1 | wc -c; stty icanon echo",
        ready.replacen('-', "\"\"-", 1)
    );
    let output = terminal.run(&command, &ready, ANSWER).await?;
    let mut line = vec![b'x'; size];
    line[size - 1] = b'\n';
    let check = format!("one message of {size} bytes, counted by the shell");
    terminal.send(&line, &check).await?;
    let mut seen = output;
    let counted = |o: &str| count_after(o, &ready).is_some();
    let within = ANSWER + Duration::from_secs(5);
    let whole = tokio::time::timeout(within, terminal.read_until(&mut seen, counted)).await;
    if whole != Ok(true) {
        // Perhaps the message was cut and the newline lost: end the line to
        // learn how much arrived.
        let _ = terminal.send(b"\n", &check).await;
        let _ = tokio::time::timeout(ANSWER, terminal.read_until(&mut seen, counted)).await;
    }
    let got = count_after(&seen, &ready);
    terminal.close().await;
    match got {
        Some(n) if n == size => Ok(Vec::new()),
        Some(n) => {
            // The shell counted the newline the harness added after a cut.
            let arrived = n.saturating_sub(1);
            let why = if arrived == REFERENCE_CUT {
                ": the runner cuts an input message at 32 KiB, as the reference does (WS-5: a paste loses input)"
            } else {
                ": input was lost"
            };
            Err(failure(
                &check,
                format!("{size} bytes"),
                format!("{arrived} of {size} bytes reached the shell{why}"),
            ))
        }
        None => Err(failure(
            &check,
            format!("{size} bytes"),
            format!(
                "no count from the shell; the output ended {:?}",
                tail(&seen, 120)
            ),
        )),
    }
}

/// The number the shell printed after `marker`.
fn count_after(output: &str, marker: &str) -> Option<usize> {
    let (_, rest) = output.split_once(marker)?;
    let digits: String = rest
        .trim_start_matches(['\r', '\n'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let ended = rest.trim_start_matches(['\r', '\n']).len() > digits.len();
    (ended && !digits.is_empty())
        .then(|| digits.parse().ok())
        .flatten()
}

/// WS-8: while a command runs, a paste larger than the terminal's buffers
/// waits for it; meanwhile a Ping is answered, and once the command ends the
/// paste reaches the shell and the next command runs (WS-5).
pub async fn paste_while_busy(t: &Target) -> Checked {
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 8;
    let mut terminal = terminal::open(t, DEFAULT).await?;
    let check = "a paste of 128 KiB while `sleep 4` runs";
    terminal.send(b"sleep 4\r", check).await?;
    // Shell comments: harmless once the shell reads them.
    let line = format!("#{}\n", "p".repeat(62));
    let chunk = line.repeat(CHUNK / line.len());
    let sent = async {
        for _ in 0..CHUNKS {
            terminal.send(chunk.as_bytes(), check).await?;
        }
        Ok::<_, crate::expect::Failure>(())
    };
    match tokio::time::timeout(Duration::from_secs(3), sent).await {
        Ok(sent) => sent?,
        Err(_) => {
            terminal.close().await;
            return Err(failure(
                check,
                "the paste sent: the server goes on reading while the shell is busy",
                "the server stopped reading within 3 s (WS-8)",
            ));
        }
    }
    terminal
        .ws
        .send(Message::Ping(b"conform".to_vec().into()))
        .await
        .map_err(|e| failure("a Ping while the shell is busy", "sent", e.to_string()))?;
    let pong = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match terminal.ws.next().await {
                Some(Ok(Message::Pong(_))) => break Ok(()),
                Some(Ok(Message::Close(frame))) => break Err(format!("closed instead: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("the connection failed: {e}")),
                None => break Err("the connection ended".to_string()),
            }
        }
    })
    .await;
    let pong = match pong {
        Ok(answered) => answered,
        Err(_) => Err(
            "no Pong within 2 s while the shell was busy and the paste waited: the relay froze (WS-8)"
                .to_string(),
        ),
    };
    if let Err(why) = pong {
        terminal.close().await;
        return Err(failure("a Ping while the shell is busy", "a Pong", why));
    }
    // The paste (2,048 comment lines, echoed) goes through the shell first.
    let needle = format!("conform-after-paste-{}", nonce());
    let command = format!("echo {}", needle.replacen('-', "\"\"-", 1));
    let after = terminal
        .run(&command, &needle, Duration::from_secs(20))
        .await;
    terminal.close().await;
    after.map(|_| Vec::new())
}

/// WS-4: the first Ping within 30 s (and the slack) of the upgrade.
pub async fn pings(t: &Target) -> Checked {
    let started = Instant::now();
    let mut terminal = terminal::open(t, &[TERMINAL]).await?;
    let limit = ping_limit(t).saturating_sub(started.elapsed());
    let first = tokio::time::timeout(limit, async {
        loop {
            match terminal.ws.next().await {
                Some(Ok(Message::Ping(_))) => break true,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break false,
            }
        }
    })
    .await;
    let at = started.elapsed();
    terminal.close().await;
    let expected = format!(
        "a Ping within {:.1} s of the upgrade",
        ping_limit(t).as_secs_f64()
    );
    match first {
        Ok(true) => Ok(Vec::new()),
        Ok(false) => Err(failure(
            "the server's first Ping",
            expected,
            format!(
                "the connection ended after {:.1} s without one",
                at.as_secs_f64()
            ),
        )),
        Err(_) => Err(failure(
            "the server's first Ping",
            expected,
            format!(
                "none in {:.1} s: the runner does not ping (a vanished browser goes unnoticed)",
                at.as_secs_f64()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_number_after_the_marker_once_its_line_ended() {
        assert_eq!(
            count_after("x conform-ready-1\r\n40000\r\n$ ", "conform-ready-1"),
            Some(40000)
        );
        assert_eq!(
            count_after("conform-ready-1\r\n4000", "conform-ready-1"),
            None
        );
        assert_eq!(count_after("no marker", "conform-ready-1"), None);
    }
}
