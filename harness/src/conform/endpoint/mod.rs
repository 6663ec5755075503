//! Endpoint-level conformance: the checks that need only a session (its URL,
//! token and certificate, as the job request carries them: JOB-2) and no control
//! over its job. A fixed list of cases, run in order, each naming its SPEC ids;
//! the harness talks to the session as Workhorse does (TLS trusting only the
//! session certificate, the token in `Authorization`) and judges each upgrade
//! itself (`handshake`).
//!
//! The session's job must go on running its script meanwhile (`sleep 600`):
//! once the script has ended, closing a terminal lets the job finish (LC-2) and
//! its session is gone (LC-7).
//!
//! - `access`: TLS, routing, the token, the upgrade (TLS, RT, EX-1/2/7)
//! - `protocol`: subprotocols, pings, long input, input into a busy shell (WS)
//! - `lifecycle`: one terminal at a time, closes, exits, reconnects (EX-4, WS-7)

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
    pub check: Check,
}

/// What a case does to the session, and what it expects.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    Tls,
    /// A path other than the session's `exec` (RT-1, RT-2): 404.
    Route(Route),
    /// A wrong `Authorization` (EX-1, EX-7): 401.
    Token(BadToken),
    NotAnUpgrade,
    /// The subprotocols `offered`, and the one the runner must choose.
    Speaks {
        offered: &'static [&'static str],
        chosen: Option<&'static str>,
    },
    /// One input message of this many bytes.
    WholeInput(usize),
    PasteWhileBusy,
    Pings,
    SecondTerminal,
    ClientClose,
    Reconnect,
    /// The shell ends after this line.
    ShellExit(&'static str),
}

/// Where a request goes that is not the session's `exec`.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    UnknownSession,
    /// A path that only starts with the session's id.
    IdPrefix,
    UnknownEndpoint,
}

/// A wrong shape of the session's token.
#[derive(Clone, Copy, Debug)]
pub enum BadToken {
    Missing,
    /// Another of the same length.
    Wrong,
    Appended,
    Prefix,
    OtherCase,
    Bearer,
}

#[rustfmt::skip]
pub const CASES: [Case; 23] = [
    Case { name: "tls", spec: &["TLS-1", "TLS-2"], title: "TLS 1.2+ with the session certificate as the only root", check: Check::Tls },
    Case { name: "unknown-session", spec: &["RT-1"], title: "Another session id is 404", check: Check::Route(Route::UnknownSession) },
    Case { name: "id-prefix", spec: &["RT-1"], title: "A path that only starts with the session's id is 404", check: Check::Route(Route::IdPrefix) },
    Case { name: "unknown-endpoint", spec: &["RT-2"], title: "A path in the session other than exec and proxy is 404", check: Check::Route(Route::UnknownEndpoint) },
    Case { name: "no-token", spec: &["EX-1"], title: "No Authorization header is 401", check: Check::Token(BadToken::Missing) },
    Case { name: "wrong-token", spec: &["EX-1"], title: "Another token of the same length is 401", check: Check::Token(BadToken::Wrong) },
    Case { name: "token-appended", spec: &["EX-1", "EX-7"], title: "The token with characters appended is 401", check: Check::Token(BadToken::Appended) },
    Case { name: "token-prefix", spec: &["EX-1", "EX-7"], title: "A prefix of the token is 401", check: Check::Token(BadToken::Prefix) },
    Case { name: "token-case", spec: &["EX-1", "EX-7"], title: "The token in another case is 401", check: Check::Token(BadToken::OtherCase) },
    Case { name: "bearer-token", spec: &["EX-1", "EX-7"], title: "'Bearer <token>' is 401: the header must be the token", check: Check::Token(BadToken::Bearer) },
    Case { name: "not-an-upgrade", spec: &["EX-2"], title: "A request that is not a WebSocket upgrade is 405", check: Check::NotAnUpgrade },
    Case { name: "terminal-protocol", spec: &["EX-6", "WS-1", "WS-2"], title: "terminal.gitlab.com: 101, binary frames both ways", check: Check::Speaks { offered: &[TERMINAL], chosen: Some(TERMINAL) } },
    Case { name: "base64-protocol", spec: &["WS-1", "WS-3"], title: "base64.terminal.gitlab.com: 101, base64 in text frames both ways", check: Check::Speaks { offered: &[BASE64], chosen: Some(BASE64) } },
    Case { name: "no-subprotocol", spec: &["WS-1"], title: "No subprotocol offered: 101 without one, raw bytes flow", check: Check::Speaks { offered: &[], chosen: None } },
    Case { name: "second-terminal", spec: &["EX-4"], title: "A second terminal is 423 whatever it offers; the first goes on", check: Check::SecondTerminal },
    Case { name: "long-input", spec: &["WS-5"], title: "One input message of 40,000 bytes reaches the shell whole", check: Check::WholeInput(40_000) },
    Case { name: "huge-input", spec: &["WS-5"], title: "One input message of 1 MiB reaches the shell whole", check: Check::WholeInput(1 << 20) },
    Case { name: "paste-while-busy", spec: &["WS-8", "WS-5"], title: "A paste into a busy command: control frames still answered, nothing lost", check: Check::PasteWhileBusy },
    Case { name: "pings", spec: &["WS-4"], title: "The first Ping arrives within 30 s of the upgrade", check: Check::Pings },
    Case { name: "client-close", spec: &["WS-7"], title: "A client's close 1000 is answered with close 1000", check: Check::ClientClose },
    Case { name: "reconnect", spec: &["WS-7", "EX-4"], title: "After the close reply, an immediate reconnect gets 101, not 423", check: Check::Reconnect },
    Case { name: "shell-exit", spec: &["WS-7"], title: "exit ends the connection; the next one gets a new shell", check: Check::ShellExit("exit") },
    Case { name: "background-job-exit", spec: &["WS-7"], title: "exit with a background job holding the terminal still ends the connection", check: Check::ShellExit("sleep 30 & exit") },
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
        (matches!(self.check, Check::Pings) && !settings.pings)
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
        let checked = tokio::time::timeout(limit, check(case.check, target))
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
        if matches!(case.check, Check::Tls) && !verdict.passed() {
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

async fn check(check: Check, t: &Target) -> Checked {
    match check {
        Check::Tls => access::tls(t).await,
        Check::Route(route) => access::routing(route, t).await,
        Check::Token(token) => access::token(token, t).await,
        Check::NotAnUpgrade => access::not_an_upgrade(t).await,
        Check::Speaks { offered, chosen } => protocol::speaks(t, offered, chosen).await,
        Check::WholeInput(size) => protocol::whole_input(t, size).await,
        Check::PasteWhileBusy => protocol::paste_while_busy(t).await,
        Check::Pings => protocol::pings(t).await,
        Check::SecondTerminal => lifecycle::second_terminal(t).await,
        Check::ClientClose => lifecycle::client_close(t).await,
        Check::Reconnect => lifecycle::reconnect(t).await,
        Check::ShellExit(line) => lifecycle::shell_exit(t, line).await,
    }
}
