//! One terminal at a time (EX-4), and how a terminal ends (WS-7): the client's
//! close, the shell's exit (also with a background job holding the terminal),
//! and the slot free again at once.

use super::terminal::{self, close, end_of, End, DEFAULT};
use super::{failure, Checked, Target, BASE64, TERMINAL};
use crate::actors::ws::Dialed;
use crate::expect;
use crate::judge;

/// EX-4: while one terminal is open, others are 423 whatever they offer.
pub async fn second_terminal(t: &Target) -> Checked {
    let mut first = terminal::open(t, &[TERMINAL]).await?;
    for offered in [TERMINAL, BASE64] {
        let got = match terminal::dial(t, &[offered]).await {
            Dialed::Refused { status, .. } => status.to_string(),
            Dialed::Open { mut ws, .. } => {
                close(&mut ws).await;
                "101: a second terminal".into()
            }
            Dialed::Failed(why) => why,
        };
        if got != "423" {
            first.close().await;
            return Err(failure(
                &format!("a second terminal offering {offered}"),
                "423",
                got,
            ));
        }
    }
    let still = first.echo("first").await;
    first.close().await;
    still.map(|()| Vec::new())
}

pub async fn client_close(t: &Target) -> Checked {
    let first = terminal::open(t, DEFAULT).await?;
    match first.close().await {
        End::Frame(Some(1000)) => Ok(Vec::new()),
        other => Err(failure(
            "the answer to a close 1000",
            "close 1000",
            other.describe(),
        )),
    }
}

/// WS-7: once the close reply is sent the slot is free: the very next
/// request gets 101 (no retry).
pub async fn reconnect(t: &Target) -> Checked {
    let first = terminal::open(t, DEFAULT).await?;
    let end = first.close().await;
    if !matches!(end, End::Frame(_)) {
        return Err(failure(
            "the answer to a close 1000",
            "a close frame",
            end.describe(),
        ));
    }
    let check = "a terminal request right after the close reply";
    match terminal::dial(t, DEFAULT).await {
        Dialed::Open { mut ws, .. } => {
            close(&mut ws).await;
            Ok(Vec::new())
        }
        Dialed::Refused { status: 423, body } => Err(failure(
            check,
            "101",
            format!("423 {body}: the closed terminal still held the session's slot"),
        )),
        Dialed::Refused { status, body } => Err(failure(check, "101", format!("{status} {body}"))),
        Dialed::Failed(why) => Err(failure(check, "101", why)),
    }
}

/// Types `exit_line` (`exit`, or one that leaves a background job holding the
/// terminal): the connection ends, and the next one gets a new shell.
pub async fn shell_exit(t: &Target, exit_line: &str) -> Checked {
    let mut first = terminal::open(t, DEFAULT).await?;
    let check = format!("the connection after `{exit_line}`");
    first
        .send(format!("{exit_line}\r").as_bytes(), &check)
        .await?;
    let notes = match end_of(&mut first.ws).await {
        End::Frame(_) => Vec::new(),
        // The shell's exit is an end the runner decides: judged as a
        // scenario's browser's close is (WS-6).
        dropped @ End::Dropped => {
            let strictness = judge::real(t.settings.slack).strictness;
            let who = format!("after `{exit_line}`");
            match expect::missing_close_frame(strictness, &who, "1000 shell exited") {
                Some(note) => vec![note],
                None => {
                    return Err(failure(
                        &check,
                        "close 1000 shell exited",
                        dropped.describe(),
                    ))
                }
            }
        }
        still @ End::StillOpen => {
            let hint = if exit_line == "exit" {
                ""
            } else {
                ": the shell's exit, not the terminal's end of file, ends it (WS-7)"
            };
            first.close().await;
            return Err(failure(
                &check,
                "closed",
                format!("{}{hint}", still.describe()),
            ));
        }
    };
    let mut next = terminal::open(t, DEFAULT).await?;
    let seen = next.echo("after-exit").await;
    next.close().await;
    seen.map(|()| notes)
}
