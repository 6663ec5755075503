//! Endpoint-level conformance: the checks that need only a session (its URL,
//! token and certificate, as the job request carries them: JOB-2) and no control
//! over its job. A fixed list of cases, run in order, each naming its SPEC ids;
//! the harness talks to the session as Workhorse does (TLS trusting only the
//! session certificate, the token in `Authorization`) and judges each upgrade
//! itself ([`handshake`]).
//!
//! The session's job must go on running its script meanwhile (`sleep 600`):
//! once the script has ended, closing a terminal lets the job finish (LC-2) and
//! its session is gone (LC-7).
//!
//! - [`access`]: TLS, routing, the token, the upgrade (TLS, RT, EX-1/2/7)
//! - [`protocol`]: subprotocols, pings, long input, input into a busy shell (WS)
//! - [`lifecycle`]: one terminal at a time, closes, exits, reconnects (EX-4, WS-7)

mod access;
mod handshake;
mod lifecycle;
mod protocol;
mod terminal;

use std::time::{Duration, Instant};

use crate::actors::gitlab::SessionInfo;

use crate::expect::{Failure, Verdict};
use crate::report;

const TERMINAL: &str = "terminal.gitlab.com";
const BASE64: &str = "base64.terminal.gitlab.com";
/// Longest a case may take, on top of its own waits (a slow shell's first output).
const CASE_LIMIT: Duration = Duration::from_secs(45);

pub struct Case {
    pub name: &'static str,
    pub spec: &'static [&'static str],
    pub title: &'static str,
}

#[rustfmt::skip]
pub const CASES: [Case; 23] = [
    Case { name: "tls", spec: &["TLS-1", "TLS-2"], title: "TLS 1.2+ with the session certificate as the only root" },
    Case { name: "unknown-session", spec: &["RT-1"], title: "Another session id is 404" },
    Case { name: "id-prefix", spec: &["RT-1"], title: "A path that only starts with the session's id is 404" },
    Case { name: "unknown-endpoint", spec: &["RT-2"], title: "A path in the session other than exec and proxy is 404" },
    Case { name: "no-token", spec: &["EX-1"], title: "No Authorization header is 401" },
    Case { name: "wrong-token", spec: &["EX-1"], title: "Another token of the same length is 401" },
    Case { name: "token-appended", spec: &["EX-1", "EX-7"], title: "The token with characters appended is 401" },
    Case { name: "token-prefix", spec: &["EX-1", "EX-7"], title: "A prefix of the token is 401" },
    Case { name: "token-case", spec: &["EX-1", "EX-7"], title: "The token in another case is 401" },
    Case { name: "bearer-token", spec: &["EX-1", "EX-7"], title: "'Bearer <token>' is 401: the header must be the token" },
    Case { name: "not-an-upgrade", spec: &["EX-2"], title: "A request that is not a WebSocket upgrade is 405" },
    Case { name: "terminal-protocol", spec: &["EX-6", "WS-1", "WS-2"], title: "terminal.gitlab.com: 101, binary frames both ways" },
    Case { name: "base64-protocol", spec: &["WS-1", "WS-3"], title: "base64.terminal.gitlab.com: 101, base64 in text frames both ways" },
    Case { name: "no-subprotocol", spec: &["WS-1"], title: "No subprotocol offered: 101 without one, raw bytes flow" },
    Case { name: "second-terminal", spec: &["EX-4"], title: "A second terminal is 423 whatever it offers; the first goes on" },
    Case { name: "long-input", spec: &["WS-5"], title: "One input message of 40,000 bytes reaches the shell whole" },
    Case { name: "huge-input", spec: &["WS-5"], title: "One input message of 1 MiB reaches the shell whole" },
    Case { name: "paste-while-busy", spec: &["WS-8", "WS-5"], title: "A paste into a busy command: control frames still answered, nothing lost" },
    Case { name: "pings", spec: &["WS-4"], title: "The first Ping arrives within 30 s of the upgrade" },
    Case { name: "client-close", spec: &["WS-7"], title: "A client's close 1000 is answered with close 1000" },
    Case { name: "reconnect", spec: &["WS-7", "EX-4"], title: "After the close reply, an immediate reconnect gets 101, not 423" },
    Case { name: "shell-exit", spec: &["WS-7"], title: "exit ends the connection; the next one gets a new shell" },
    Case { name: "background-job-exit", spec: &["WS-7"], title: "exit with a background job holding the terminal still ends the connection" },
];

/// How many cases [`run`] reports.
pub const COUNT: usize = CASES.len();

/// What the endpoint-level cases may take.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Run the `pings` case (it waits up to 30 s).
    pub pings: bool,
    /// The least tolerance of an observed time.
    pub slack: Duration,
}

/// The session under test, and where its parts are.
pub struct Target {
    session: SessionInfo,
    /// `host:port`
    address: String,
    /// `wss://host:port/session/<id>`
    base: String,
    settings: Settings,
}

impl Target {
    pub fn new(session: SessionInfo, settings: Settings) -> Result<Target, String> {
        let rest = session.url.strip_prefix("https://").ok_or_else(|| {
            format!(
                "the session URL {:?} is not https:// (CFG-2: the advertised URL is https:// + advertise_address)",
                session.url
            )
        })?;
        let address = rest.split('/').next().unwrap_or(rest).to_string();
        let base = format!("wss://{}", rest.trim_end_matches('/'));
        Ok(Target {
            session,
            address,
            base,
            settings,
        })
    }

    fn exec(&self) -> String {
        format!("{}/exec", self.base)
    }
}

impl Case {
    pub fn id(&self) -> String {
        format!("endpoint/{}", self.name)
    }
    pub fn spec(&self) -> Vec<String> {
        self.spec.iter().map(|s| s.to_string()).collect()
    }
    /// Why the case will not run with `settings`; `None`: it runs.
    pub fn skipped(&self, settings: &Settings) -> Option<String> {
        (self.name == "pings" && !settings.pings)
            .then(|| "--no-pings: it waits up to 30 s for the runner's first Ping".to_string())
    }
}

/// Reports every case without running it, for `why`: failed (the runner gave
/// no session to check; `why` is the cause), or skipped.
pub fn unrun(why: &str, failed: bool, report: &mut dyn FnMut(report::Case)) {
    for case in &CASES {
        let (id, spec) = (case.id(), case.spec());
        report(if failed {
            let mut unrun = report::Case::judged(
                &id,
                case.title,
                &spec,
                Verdict::default(),
                Some("not run: there is no session to check".into()),
                Duration::ZERO,
            );
            unrun.cause = Some(why.to_string());
            unrun
        } else {
            report::Case::skipped(&id, case.title, &spec, why.to_string())
        });
    }
}

/// Runs every case against `target`, in order, handing each result to `report`.
pub async fn run(target: &Target, report: &mut dyn FnMut(report::Case)) {
    let mut no_tls = None;
    for case in &CASES {
        let (id, spec) = (case.id(), case.spec());
        if let Some(why) = no_tls.clone().or_else(|| case.skipped(&target.settings)) {
            report(report::Case::skipped(&id, case.title, &spec, why));
            continue;
        }
        let started = Instant::now();
        let limit = CASE_LIMIT + terminal::FIRST_OUTPUT + protocol::ping_limit(target);
        let checked = tokio::time::timeout(limit, check(case.name, target))
            .await
            .unwrap_or_else(|_| {
                Err(failure(
                    "the case's end",
                    format!("within {} s", limit.as_secs()),
                    "still waiting (a request or a close that never came)",
                ))
            });
        let verdict = match checked {
            Ok(non_strict) => Verdict {
                failures: Vec::new(),
                non_strict,
            },
            Err(f) => Verdict {
                failures: vec![f],
                non_strict: Vec::new(),
            },
        };
        if case.name == "tls" && !verdict.passed() {
            no_tls = Some("needs a TLS connection to the session (endpoint/tls failed)".into());
        }
        report(report::Case::judged(
            &id,
            case.title,
            &spec,
            verdict,
            None,
            started.elapsed(),
        ));
    }
}

/// `Ok`: passed, with the notes of a non-strict pass.
type Checked = Result<Vec<String>, Failure>;

fn failure(check: &str, expected: impl Into<String>, observed: impl Into<String>) -> Failure {
    Failure {
        check: check.into(),
        expected: expected.into(),
        observed: observed.into(),
    }
}

async fn check(name: &str, t: &Target) -> Checked {
    match name {
        "tls" => access::tls(t).await,
        "unknown-session" | "id-prefix" | "unknown-endpoint" => access::routing(name, t).await,
        "no-token" | "wrong-token" | "token-appended" | "token-prefix" | "token-case"
        | "bearer-token" => access::token(name, t).await,
        "not-an-upgrade" => access::not_an_upgrade(t).await,
        "terminal-protocol" => protocol::speaks(t, &[TERMINAL], Some(TERMINAL)).await,
        "base64-protocol" => protocol::speaks(t, &[BASE64], Some(BASE64)).await,
        "no-subprotocol" => protocol::speaks(t, &[], None).await,
        "long-input" => protocol::whole_input(t, 40_000).await,
        "huge-input" => protocol::whole_input(t, 1 << 20).await,
        "paste-while-busy" => protocol::paste_while_busy(t).await,
        "pings" => protocol::pings(t).await,
        "second-terminal" => lifecycle::second_terminal(t).await,
        "client-close" => lifecycle::client_close(t).await,
        "reconnect" => lifecycle::reconnect(t).await,
        "shell-exit" => lifecycle::shell_exit(t, "exit").await,
        "background-job-exit" => lifecycle::shell_exit(t, "sleep 30 & exit").await,
        other => unreachable!("no case {other}"),
    }
}
