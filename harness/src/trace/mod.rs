//! The trace: every observable event of a run, with virtual time, actor and
//! the SPEC rule it bears on. The rendered trace is the scenario's snapshot.
//!
//! Only what the harness sees from outside the runner is recorded: statuses,
//! frames, closes, job log and state as GitLab receives them, faults injected.
//! Session ids, tokens and certificates are never written into an event.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::spec::RuleId;

mod injected;
mod link;
mod target;

pub use injected::Injected;
pub use link::{Carries, Link};
pub use target::{Endpoint, Target};

/// Who closed a terminal connection, as a browser sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Close {
    /// A close frame arrived with this code and reason.
    Frame { code: u16, reason: String },
    /// The connection ended without a close frame (a client library says 1006).
    Abnormal,
}

impl Close {
    pub fn describe(&self) -> String {
        match self {
            Close::Frame { code, reason } if reason.is_empty() => format!("{code}"),
            Close::Frame { code, reason } => format!("{code} {reason}"),
            Close::Abnormal => "1006 (no close frame)".to_string(),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// The runner took a job; what its request said (JOB-1).
    JobTaken {
        job: u64,
        runner: String,
        session: bool,
        terminal: bool,
    },
    /// A line of the job log reached GitLab.
    JobLog { job: u64, line: String },
    /// The runner reported the job's final state.
    JobState {
        job: u64,
        state: String,
        failure_reason: Option<String>,
        exit_code: Option<i32>,
    },
    /// A browser asks for a terminal.
    Open {
        browser: String,
        target: Target,
        protocols: Vec<String>,
    },
    /// A browser's HTTP GET of a job's service through GitLab (WI-4).
    Fetch { browser: String, target: Target },
    /// The answer to an open or a fetch: an HTTP status (101 on an open's success).
    Answer {
        browser: String,
        status: u16,
        protocol: Option<String>,
        body: String,
    },
    Typed {
        browser: String,
        bytes: usize,
        preview: String,
        /// The whole input, for invariants; the trace shows the preview.
        #[serde(skip)]
        text: String,
    },
    Output {
        browser: String,
        bytes: usize,
        frames: usize,
        preview: String,
        /// The whole output, for expectations; the trace shows the preview.
        #[serde(skip)]
        text: String,
    },
    /// A data frame of the wrong type for the connection's subprotocol, or
    /// base64 that does not decode (WS-2, WS-3). Never seen from a good runner.
    Malformed { browser: String, problem: String },
    /// A Ping reached a browser (summarized at close, not rendered alone).
    Ping { browser: String },
    Closed {
        browser: String,
        close: Close,
        pings: String,
    },
    /// Rails' answer to Workhorse (AU, WI-2).
    Authorize {
        user: String,
        job: u64,
        verdict: Authorization,
    },
    /// Workhorse's connection to the runner (WH-2..5, TLS-2).
    RunnerLink { job: u64, event: Link },
    /// A fault or an operator action the scenario injected, or a step the
    /// harness could not carry out.
    Injected { description: Injected },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Virtual time since the start, in milliseconds.
    pub at_ms: u64,
    pub actor: String,
    /// The SPEC.md rule the event bears on.
    pub spec: Option<RuleId>,
    #[serde(flatten)]
    pub what: What,
}

/// Rails' answer to Workhorse: allowed, or denied with an HTTP status; `service`:
/// the job's service asked for through the proxy (WI-2), `None` for the terminal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Authorization {
    Allowed {
        service: Option<String>,
    },
    Denied {
        status: u16,
        reason: String,
        service: Option<String>,
    },
}

impl Authorization {
    /// Allowed to open the job's terminal (not a service of it).
    pub fn allows_terminal(&self) -> bool {
        matches!(self, Authorization::Allowed { service: None })
    }
}

impl std::fmt::Display for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let service = match self {
            Authorization::Allowed { service } | Authorization::Denied { service, .. } => service,
        };
        match self {
            Authorization::Allowed { .. } => f.write_str("allowed")?,
            Authorization::Denied { status, reason, .. } => {
                write!(f, "denied {status} ({reason})")?
            }
        }
        match service {
            Some(service) => write!(f, " (service proxy to {service})"),
            None => Ok(()),
        }
    }
}

impl What {
    /// A data frame's payload that `browser` received (one frame).
    pub fn output(browser: &str, bytes: &[u8]) -> What {
        What::Output {
            browser: browser.to_string(),
            bytes: bytes.len(),
            frames: 1,
            preview: preview(bytes),
            text: String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Records events from every host of a run.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Vec<Event>>>,
    clock: Clock,
}

/// Simulated time inside turmoil; real time since the recorder's start elsewhere.
#[derive(Clone)]
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Duration {
        turmoil::sim_elapsed().unwrap_or_else(|| self.0.elapsed())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            inner: Arc::default(),
            clock: Clock(std::time::Instant::now()),
        }
    }
}

impl Recorder {
    pub fn record(&self, actor: &str, spec: Option<&str>, what: What) {
        self.record_at(self.clock.now(), actor, spec, what);
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Records at an explicit time: for the scenario runner, outside any host.
    pub fn record_at(&self, at: Duration, actor: &str, spec: Option<&str>, what: What) {
        let at_ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        let event = Event {
            at_ms,
            actor: actor.to_string(),
            spec: spec.map(RuleId::of),
            what,
        };
        self.inner.lock().expect("recorder lock").push(event);
    }

    /// The events in canonical order: by time, then in the order recorded
    /// (which turmoil makes deterministic).
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.inner.lock().expect("recorder lock").clone();
        events.sort_by_key(|e| e.at_ms);
        events
    }
}

/// Characters of a preview, after escaping.
const PREVIEW: usize = 48;

/// A short, escaped preview of terminal bytes.
pub fn preview(bytes: &[u8]) -> String {
    // Only a prefix is read: an output frame may be 64 KiB, and escaping all
    // of it to keep 48 characters was a percent of a fuzz case. The prefix
    // holds more than PREVIEW characters whenever it is not all the bytes (a
    // character is at most 4 bytes, an invalid byte one U+FFFD), so those
    // it shows decode as in the whole; a character cut at its end is past them.
    let prefix = &bytes[..bytes.len().min(4 * (PREVIEW + 2))];
    let text: String = String::from_utf8_lossy(prefix).escape_debug().collect();
    if prefix.len() < bytes.len() || text.chars().count() > PREVIEW {
        format!("{}…", text.chars().take(PREVIEW).collect::<String>())
    } else {
        text
    }
}

/// Renders events as the snapshot text: one line an event, pings folded into
/// the close line, consecutive output of one browser folded into one line.
pub fn render(events: &[Event]) -> String {
    let mut out = String::new();
    let mut folded: Vec<Event> = Vec::new();
    for event in events {
        match (&event.what, folded.last_mut()) {
            (What::Ping { .. }, _) => continue,
            (
                What::Output {
                    browser,
                    bytes,
                    frames,
                    preview: p,
                    text,
                },
                Some(Event {
                    what:
                        What::Output {
                            browser: last,
                            bytes: b,
                            frames: f,
                            preview: lp,
                            text: lt,
                        },
                    at_ms,
                    ..
                }),
            ) if browser == last && event.at_ms - *at_ms < 1000 => {
                *b += bytes;
                *f += frames;
                lt.push_str(text);
                if lp.chars().count() < 48 {
                    lp.push_str(p);
                    *lp = lp.chars().take(48).collect();
                }
            }
            _ => folded.push(event.clone()),
        }
    }
    for event in &folded {
        let at = crate::duration::clock(event.at_ms);
        let spec = event.spec.map(|s| format!("  [{s}]")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{at:>10}  {:<10} {}{spec}",
            event.actor,
            line(&event.what)
        );
    }
    out
}

fn line(what: &What) -> String {
    match what {
        What::JobTaken {
            job,
            runner,
            session,
            terminal,
        } => format!(
            "job {job} taken by {runner}: session offered: {}, terminal feature: {terminal}",
            if *session { "yes" } else { "no" }
        ),
        What::JobLog { job, line } => format!("job {job} log | {line}"),
        What::JobState {
            job,
            state,
            failure_reason,
            exit_code,
        } => {
            let mut s = format!("job {job} state: {state}");
            if let Some(r) = failure_reason {
                let _ = write!(s, " ({r})");
            }
            if let Some(c) = exit_code {
                let _ = write!(s, ", exit code {c}");
            }
            s
        }
        What::Open {
            target, protocols, ..
        } => {
            if protocols.is_empty() {
                format!("opens {target} (no subprotocol)")
            } else {
                format!("opens {target} ({})", protocols.join(", "))
            }
        }
        What::Fetch { target, .. } => format!("GETs {target}"),
        What::Answer {
            status: 101,
            protocol,
            ..
        } => {
            format!(
                "101 Switching Protocols ({})",
                protocol.as_deref().unwrap_or("no subprotocol")
            )
        }
        What::Answer {
            status: 0, body, ..
        } => format!("no HTTP answer: {}", body.trim()),
        What::Answer { status, body, .. } => format!("{status} {}", body.trim()),
        What::Typed { bytes, preview, .. } => format!("types {bytes} bytes \"{preview}\""),
        What::Output {
            bytes,
            frames,
            preview,
            ..
        } => {
            format!(
                "receives {bytes} bytes in {frames} frame{} \"{preview}\"",
                if *frames == 1 { "" } else { "s" }
            )
        }
        What::Malformed { problem, .. } => format!("receives a malformed frame: {problem}"),
        What::Ping { .. } => "ping".to_string(),
        What::Closed { close, pings, .. } => {
            format!("connection closed: {}{pings}", close.describe())
        }
        What::Authorize { user, job, verdict } => {
            format!("authorize {user} for job {job}: {verdict}")
        }
        What::RunnerLink { job, event } => format!("job {job} runner link: {event}"),
        What::Injected { description } => description.to_string(),
    }
}

/// Pings seen on one connection, summarized in one phrase when it ends.
#[derive(Default)]
pub struct Pings(Vec<Duration>);

impl Pings {
    pub fn saw(&mut self, at: Duration) {
        self.0.push(at);
    }

    /// ` (61 pings from GitLab, every 30s)`, or nothing without pings.
    pub fn summary(&self, from: &str) -> String {
        let n = self.0.len();
        if n == 0 {
            return String::new();
        }
        let intervals: Vec<u64> = self
            .0
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64().round() as u64)
            .collect();
        let every = intervals
            .first()
            .copied()
            .filter(|first| intervals.iter().all(|i| i == first));
        let plural = if n == 1 { "" } else { "s" };
        match every {
            Some(every) => format!(" ({n} ping{plural} {from}, every {every}s)"),
            None => format!(" ({n} ping{plural} {from})"),
        }
    }
}

#[cfg(test)]
mod preview_tests {
    use super::{preview, PREVIEW};

    /// What a preview is: the whole escaped text, cut to PREVIEW characters.
    fn whole(bytes: &[u8]) -> String {
        let text: String = String::from_utf8_lossy(bytes).escape_debug().collect();
        match text.chars().count() > PREVIEW {
            true => format!("{}…", text.chars().take(PREVIEW).collect::<String>()),
            false => text,
        }
    }

    #[test]
    fn a_preview_reads_a_prefix_yet_shows_what_the_whole_would() {
        let pieces: [&[u8]; 6] = [
            b"a",
            "é".as_bytes(),
            "😀".as_bytes(),
            b"\x1b[0m",
            b"\xff",
            b"\r\n",
        ];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut bytes = Vec::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 33) % 400;
            for i in 0..len {
                let piece = pieces[((seed >> (i % 50)) as usize + i as usize) % pieces.len()];
                bytes.extend_from_slice(piece);
            }
            // Cut anywhere, also inside a character.
            bytes.truncate(((seed >> 20) % (bytes.len() as u64 + 1)) as usize);
            assert_eq!(preview(&bytes), whole(&bytes), "{bytes:?}");
        }
    }
}
