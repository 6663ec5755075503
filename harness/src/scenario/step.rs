//! One step of a scenario's timeline: when (`at`) and what (`do`). Each kind
//! of step is a variant with exactly the keys it takes, so a key of another
//! kind, an unknown `do` or an unknown choice is refused when the file is
//! read, and code that acts on a step matches on the kind, with nothing left
//! to check later.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::Dur;
use super::{ProxyTarget, Role, Shape};

/// A step at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Step {
    pub at: Dur,
    #[serde(flatten)]
    pub action: Action,
}

/// What a step does; the file's `do` key names the variant.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "do", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// A browser opens a job's terminal (or, with `proxy`, a WebSocket to a
    /// job's service through Workhorse, WI-3).
    Open(Open),
    /// A browser GETs a job's service through Workhorse's proxy (WI-4).
    Fetch {
        browser: String,
        job: u64,
        proxy: ProxyTarget,
    },
    /// A browser types `text`, `repeat` times in one message (a paste).
    Type {
        browser: String,
        text: String,
        #[serde(default = "once", skip_serializing_if = "is_once")]
        repeat: usize,
    },
    /// A browser closes its terminal with a close frame.
    Close { browser: String },
    /// A browser's connection drops without a close frame.
    Vanish { browser: String },
    /// GitLab cancels a job.
    Cancel { job: u64 },
    /// The runner's operator stops it.
    Signal { mode: StopMode },
    /// A user's role in every project becomes `role`.
    Revoke { user: String, role: Role },
    /// A project is archived.
    Archive { project: String },
    /// The network between two hosts is cut.
    Partition(Link),
    /// ... and restored.
    Repair(Link),
    /// Messages between two hosts are held.
    Hold(Link),
    /// ... and delivered.
    Release(Link),
    /// A host crashes (its sockets close).
    Crash { host: String },
    /// A host restarts.
    Bounce { host: String },
}

/// A browser's step, borrowed from its [`Action`]: what code that drives a
/// browser matches on, with no arm for the steps that are not a browser's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowserStep<'a> {
    Open(&'a Open),
    Fetch { job: u64, proxy: &'a ProxyTarget },
    Type { text: &'a str, repeat: usize },
    Close,
    Vanish,
}

fn once() -> usize {
    1
}

fn is_once(n: &usize) -> bool {
    *n == 1
}

impl Action {
    /// The `do` of the step, as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Open(_) => "open",
            Action::Fetch { .. } => "fetch",
            Action::Type { .. } => "type",
            Action::Close { .. } => "close",
            Action::Vanish { .. } => "vanish",
            Action::Cancel { .. } => "cancel",
            Action::Signal { .. } => "signal",
            Action::Revoke { .. } => "revoke",
            Action::Archive { .. } => "archive",
            Action::Partition(_) => "partition",
            Action::Repair(_) => "repair",
            Action::Hold(_) => "hold",
            Action::Release(_) => "release",
            Action::Crash { .. } => "crash",
            Action::Bounce { .. } => "bounce",
        }
    }

    /// The browser that takes the step; `None`: GitLab, the operator or the network.
    pub fn browser(&self) -> Option<&str> {
        self.browser_step().map(|(browser, _)| browser)
    }

    /// The browser that takes the step, and the step; `None`: GitLab's, the
    /// operator's or the network's.
    pub fn browser_step(&self) -> Option<(&str, BrowserStep<'_>)> {
        match self {
            Action::Open(open) => Some((&open.browser, BrowserStep::Open(open))),
            Action::Fetch {
                browser,
                job,
                proxy,
            } => Some((browser, BrowserStep::Fetch { job: *job, proxy })),
            Action::Type {
                browser,
                text,
                repeat,
            } => Some((
                browser,
                BrowserStep::Type {
                    text,
                    repeat: *repeat,
                },
            )),
            Action::Close { browser } => Some((browser, BrowserStep::Close)),
            Action::Vanish { browser } => Some((browser, BrowserStep::Vanish)),
            Action::Cancel { .. }
            | Action::Signal { .. }
            | Action::Revoke { .. }
            | Action::Archive { .. }
            | Action::Partition(_)
            | Action::Repair(_)
            | Action::Hold(_)
            | Action::Release(_)
            | Action::Crash { .. }
            | Action::Bounce { .. } => None,
        }
    }

    /// A fault only the simulated network can inject.
    pub fn is_network_fault(&self) -> bool {
        match self {
            Action::Partition(_)
            | Action::Repair(_)
            | Action::Hold(_)
            | Action::Release(_)
            | Action::Crash { .. }
            | Action::Bounce { .. } => true,
            Action::Open(_)
            | Action::Fetch { .. }
            | Action::Type { .. }
            | Action::Close { .. }
            | Action::Vanish { .. }
            | Action::Cancel { .. }
            | Action::Signal { .. }
            | Action::Revoke { .. }
            | Action::Archive { .. } => false,
        }
    }
}

impl Step {
    pub fn browser(&self) -> Option<&str> {
        self.action.browser()
    }
}

/// A browser opening a job's terminal. In the file: `browser`, `job`, `via`
/// (`"gitlab"`, the default, or `"direct"`), with `token`, `insecure` and
/// `request` for a direct open only, `proxy` through GitLab only, and
/// `protocols`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "OpenKeys", into = "OpenKeys")]
pub struct Open {
    pub browser: String,
    pub job: u64,
    pub via: Via,
    /// The WebSocket subprotocols offered; `None`: GitLab's frontend's.
    pub protocols: Option<Vec<String>>,
    /// A request that is not a WebSocket upgrade (EX-2, WS-8), direct only.
    pub request: Option<Shape>,
    /// `<service>/<port>/<path>`: the job's service through Workhorse's
    /// `proxy.ws` instead of its terminal (WI-3), through GitLab only.
    pub proxy: Option<ProxyTarget>,
}

/// Where a browser opens the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through Workhorse, as GitLab's job page does.
    Gitlab,
    /// Straight at the session URL GitLab knows, bypassing GitLab; with
    /// `insecure`, without checking the runner's certificate.
    Direct { token: Token, insecure: bool },
}

/// Which token a direct connection to the runner carries (EX-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Token {
    /// The session's own token.
    #[default]
    Own,
    None,
    Empty,
    Wrong,
    /// `Bearer <own token>` (EX-7).
    Bearer,
    /// The first half of the own token.
    Prefix,
    /// The own token with a character appended.
    Appended,
    /// The own token in capitals (it is lowercase hex).
    OtherCase,
    /// Another job's session token.
    OfJob(u64),
}

/// The token shapes of a direct `open` (EX-1, EX-7), besides `job:N`.
const TOKENS: [(&str, Token); 8] = [
    ("own", Token::Own),
    ("none", Token::None),
    ("empty", Token::Empty),
    ("wrong", Token::Wrong),
    ("bearer", Token::Bearer),
    ("prefix", Token::Prefix),
    ("appended", Token::Appended),
    ("other-case", Token::OtherCase),
];

impl Token {
    fn parse(text: &str) -> Result<Token, String> {
        if let Some((_, token)) = TOKENS.iter().find(|(name, _)| *name == text) {
            return Ok(*token);
        }
        match text.strip_prefix("job:").map(str::parse) {
            Some(Ok(job)) => Ok(Token::OfJob(job)),
            _ => Err(format!(
                "token = {text:?}: use one of {} or job:N",
                TOKENS.map(|(name, _)| name).join(", ")
            )),
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Token::Own => "own",
            Token::None => "none",
            Token::Empty => "empty",
            Token::Wrong => "wrong",
            Token::Bearer => "bearer",
            Token::Prefix => "prefix",
            Token::Appended => "appended",
            Token::OtherCase => "other-case",
            Token::OfJob(job) => return write!(f, "job:{job}"),
        };
        f.write_str(name)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Token::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `via` as the file writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Route {
    #[default]
    Gitlab,
    Direct,
}

/// An `open` step's keys as the file writes them: flat, with `token` and
/// `insecure` meaningful only beside `via = "direct"`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct OpenKeys {
    browser: String,
    job: u64,
    #[serde(default, skip_serializing_if = "is_gitlab")]
    via: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<Token>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<Shape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy: Option<ProxyTarget>,
}

fn is_gitlab(route: &Route) -> bool {
    *route == Route::Gitlab
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl TryFrom<OpenKeys> for Open {
    type Error = String;

    fn try_from(keys: OpenKeys) -> Result<Open, String> {
        let via = match keys.via {
            Route::Direct => Via::Direct {
                token: keys.token.unwrap_or_default(),
                insecure: keys.insecure,
            },
            Route::Gitlab if keys.token.is_some() || keys.insecure || keys.request.is_some() => {
                return Err(
                    "token, insecure and request apply to a direct open only: add via = \"direct\", or remove them (GitLab sends its own)"
                        .into(),
                )
            }
            Route::Gitlab => Via::Gitlab,
        };
        if keys.proxy.is_some() && matches!(via, Via::Direct { .. }) {
            return Err(
                "proxy = \"...\" opens a service through GitLab: drop via = \"direct\"".into(),
            );
        }
        Ok(Open {
            browser: keys.browser,
            job: keys.job,
            via,
            protocols: keys.protocols,
            request: keys.request,
            proxy: keys.proxy,
        })
    }
}

impl From<Open> for OpenKeys {
    fn from(open: Open) -> OpenKeys {
        let (via, token, insecure) = match open.via {
            Via::Gitlab => (Route::Gitlab, None, false),
            Via::Direct { token, insecure } => (
                Route::Direct,
                (token != Token::Own).then_some(token),
                insecure,
            ),
        };
        OpenKeys {
            browser: open.browser,
            job: open.job,
            via,
            token,
            protocols: open.protocols,
            insecure,
            request: open.request,
            proxy: open.proxy,
        }
    }
}

/// How the operator stops the runner (LC-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// SIGTERM: jobs and terminals end now.
    Abort,
    /// SIGQUIT: running jobs finish first.
    Graceful,
}

impl StopMode {
    /// The signal the operator sends.
    pub fn signal(self) -> &'static str {
        match self {
            StopMode::Abort => "SIGTERM",
            StopMode::Graceful => "SIGQUIT",
        }
    }
}

/// Two hosts whose link a network fault acts on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub a: String,
    pub b: String,
}

impl Link {
    /// Whether it is the link between GitLab and a runner (Workhorse's link).
    pub fn is_gitlab_to_runner(&self) -> bool {
        self.touches_runner() && (self.a == "gitlab" || self.b == "gitlab")
    }

    /// Whether one end is a runner (`runner`, a replica `runner-N`, or the
    /// TLS proxy in front of one, `runner-proxy`).
    pub fn touches_runner(&self) -> bool {
        [&self.a, &self.b].iter().any(|h| h.starts_with("runner"))
    }
}
