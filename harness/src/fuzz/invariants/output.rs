//! What flows through a terminal: each data frame of its subprotocol's type,
//! base64 input decoded (WS-2, WS-3), and output in order, exactly once and
//! whole (WS-5).

use std::collections::BTreeMap;

use super::{at, violation, Judge};
use crate::trace::{Event, What};

/// WS-2, WS-3: every data frame the runner sends has its subprotocol's type
/// (binary for `terminal.gitlab.com` and for none, base64 text for
/// `base64.terminal.gitlab.com`), and base64 input is decoded: the terminal
/// never echoes a typed line's base64 form. Reads `Answer` (the protocol of
/// each browser's connection), `Typed`, `Output` (a frame judged) and
/// `Malformed` (the browser's finding).
pub(super) fn frames_follow_the_subprotocol(events: &[Event], found: &mut Judge) {
    use base64::Engine as _;
    const BASE64: &str = "base64.terminal.gitlab.com";
    let mut protocols: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    // Per base64 connection: the base64 forms of its typed input, its output.
    let mut typed: BTreeMap<&str, (Vec<String>, String)> = BTreeMap::new();
    let judge_echo = |browser: &str, (sent, output): (Vec<String>, String), found: &mut Judge| {
        for line in sent {
            found.ran("WS-3");
            if output.contains(&line) {
                violation(
                    found,
                    "frame-type-of-the-subprotocol",
                    "WS-3",
                    format!("{browser}'s terminal echoed its base64 input {line:?} undecoded: base64 input must be decoded before it reaches the terminal"),
                );
            }
        }
    };
    for e in events {
        match &e.what {
            What::Answer {
                browser,
                status: 101,
                protocol,
                ..
            } => {
                protocols.insert(browser, protocol.as_deref());
                if let Some(old) = typed.remove(browser.as_str()) {
                    judge_echo(browser, old, found);
                }
                if protocol.as_deref() == Some(BASE64) {
                    typed.insert(browser, Default::default());
                }
            }
            What::Typed { browser, text, .. } => {
                // Short input may show by chance; a line's base64 form will not.
                if let Some((sent, _)) = typed.get_mut(browser.as_str()).filter(|_| text.len() >= 6)
                {
                    sent.push(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
            What::Output { browser, text, .. } => {
                let base64 = protocols.get(browser.as_str()).copied().flatten() == Some(BASE64);
                found.ran(if base64 { "WS-3" } else { "WS-2" });
                if let Some((_, output)) = typed.get_mut(browser.as_str()) {
                    output.push_str(text);
                }
            }
            What::Malformed { browser, problem } => {
                let detail = format!("{browser} received {problem} at {}", at(e.at_ms));
                if e.spec.is_some_and(|s| s == "WS-3") {
                    violation(found, "frame-type-of-the-subprotocol", "WS-3", detail);
                } else {
                    violation(found, "frame-type-of-the-subprotocol", "WS-2", detail);
                }
            }
            _ => {}
        }
    }
    for (browser, connection) in typed {
        judge_echo(browser, connection, found);
    }
}

/// WS-5: while connected, what is typed reaches the shell and what it prints
/// reaches the browser, in order, exactly once. The typed input of a
/// connection is cut into lines at Enter, as the shell reads it (a paste and
/// its Enter may be messages of their own). Each `echo X` line must show `X`
/// as an output line at most once, and if a later one shows, every earlier
/// one showed before it. A line that shows with the right start must show
/// whole: a paste cut short in transit is run short, and its output says so.
pub(super) fn output_in_order_exactly_once(events: &[Event], found: &mut Judge) {
    #[derive(Default)]
    struct Segment {
        commands: Vec<String>,
        output: String,
        /// Typed since the last Enter.
        pending: String,
    }
    let mut segments: std::collections::BTreeMap<String, Segment> = Default::default();
    let mut finished: Vec<(String, Segment)> = Vec::new();
    for e in events {
        match &e.what {
            What::Answer {
                browser,
                status: 101,
                ..
            } => {
                if let Some(old) = segments.insert(browser.clone(), Segment::default()) {
                    finished.push((browser.clone(), old));
                }
            }
            What::Typed { browser, text, .. } => {
                if let Some(seg) = segments.get_mut(browser) {
                    seg.pending.push_str(text);
                    while let Some(enter) = seg.pending.find('\r') {
                        let line: String = seg.pending.drain(..=enter).collect();
                        let line = &line[..line.len() - 1];
                        // Control characters edit the line: not judged.
                        if let Some(args) = line
                            .strip_prefix("echo ")
                            .filter(|a| !a.chars().any(char::is_control))
                        {
                            seg.commands.push(args.to_string());
                        }
                    }
                }
            }
            What::Output { browser, text, .. } => {
                if let Some(seg) = segments.get_mut(browser) {
                    seg.output.push_str(text);
                }
            }
            What::Closed { browser, .. } => {
                if let Some(seg) = segments.remove(browser) {
                    finished.push((browser.clone(), seg));
                }
            }
            _ => {}
        }
    }
    finished.extend(segments);
    for (browser, seg) in finished {
        let positions: Vec<Vec<usize>> = seg
            .commands
            .iter()
            .map(|line| {
                let needle = format!("\r\n{line}\r\n");
                seg.output.match_indices(&needle).map(|(i, _)| i).collect()
            })
            .collect();
        let short = |line: &str| line.chars().take(24).collect::<String>();
        for (line, at) in seg.commands.iter().zip(&positions) {
            found.ran("WS-5");
            if at.is_empty() {
                if let Some(ran) = ran_altered(&seg.output, line) {
                    violation(
                        found,
                        "input-whole",
                        "WS-5",
                        format!(
                            "{browser}: `echo {}` was typed as a line of {} bytes, and the shell ran one of {} bytes: input was lost in transit (a message is delivered whole or refused with close 1009)",
                            short(line),
                            "echo ".len() + line.len(),
                            "echo ".len() + ran
                        ),
                    );
                }
            }
            if at.len() > 1 {
                violation(
                    found,
                    "output-exactly-once",
                    "WS-5",
                    format!(
                        "{browser}: the output of `echo {}` arrived {} times",
                        short(line),
                        at.len()
                    ),
                );
            }
        }
        if let Some(last) = positions.iter().rposition(|p| !p.is_empty()) {
            let mut previous = 0;
            for (line, at) in seg.commands[..=last].iter().zip(&positions) {
                match at.first() {
                    None => violation(
                        found,
                        "output-in-order",
                        "WS-5",
                        format!(
                            "{browser}: `echo {}` was lost, while a later command's output arrived",
                            short(line)
                        ),
                    ),
                    Some(&i) if i < previous => violation(
                        found,
                        "output-in-order",
                        "WS-5",
                        format!("{browser}: `echo {}` arrived out of order", short(line)),
                    ),
                    Some(&i) => previous = i,
                }
            }
        }
    }
}

/// The length of the output line that starts as `line`'s output would (its
/// first 16 characters, after a line break) but is not it: what the shell
/// ran instead. A line still being written (no line break yet) is not judged.
pub(super) fn ran_altered(output: &str, line: &str) -> Option<usize> {
    let start: String = line.chars().take(16).collect();
    let needle = format!("\r\n{start}");
    output.match_indices(&needle).find_map(|(i, _)| {
        let rest = &output[i + 2..];
        let end = rest.find("\r\n")?;
        (rest[..end] != *line).then_some(end)
    })
}
