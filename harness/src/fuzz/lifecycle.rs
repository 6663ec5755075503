//! Generated session lifecycles: a runner configuration, one job, and a
//! timeline of browsers, operators and network faults, as a proptest strategy
//! that shrinks toward fewer, simpler steps. A lifecycle becomes an ordinary
//! scenario, so a failing one can be written out and replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use serde::Serialize;

use crate::scenario::{
    self, Action, BrowserSpec, ContainerStart, Dur, Executor, Expect, JobSpec, Link, Open,
    RunnerSpec, Scenario, Step, StopMode, UserSpec, Via,
};
use crate::scenario::{Role, Shape};

/// Bytes of a paste: more than the reference's 32 KiB cut (WS-5).
pub const PASTE: usize = 40 * 1024;
/// The fuzz world's tick. Every hop of a message takes a tick, and turmoil
/// steps every running host each tick, busy or idle: the tick sets the cost
/// of a case. Every timed rule the invariants judge is 5 s or coarser, and
/// their allowances (`SLACK`, `SAME_MOMENT`) cover a few hops of a second.
pub const TICK: Duration = Duration::from_secs(1);
/// The client that sends requests that are not upgrades (`Op::Request`).
pub const CURL: &str = "curl";
const TERMINAL: &str = "terminal.gitlab.com";
const BASE64: &str = "base64.terminal.gitlab.com";

#[derive(Clone, Debug, Serialize)]
pub struct Lifecycle {
    pub docker: bool,
    /// `[session_server] session_timeout`; 0 and negative mean the default (CFG-3).
    pub session_timeout: i64,
    pub job_timeout: u64,
    pub script_seconds: u64,
    pub exit_code: i32,
    /// Seconds the executor prepares before the job runs (EX-3's 60 s wait).
    pub prepare: u64,
    /// Seconds before docker's build container runs (DK-1's 15 s wait).
    pub container_start: u64,
    /// Turmoil's seed: message latencies.
    pub seed: u64,
    pub ops: Vec<Timed>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timed {
    /// Seconds after the previous op.
    pub after: u64,
    pub op: Op,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Who {
    /// The job's owner, and her second tab.
    Alice,
    Tab2,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Alice => "alice",
            Who::Tab2 => "tab2",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    Open {
        who: Who,
        direct: bool,
        protocols: Protocols,
    },
    /// Someone without the right: Mallory through GitLab, or direct with a token of a wrong shape.
    Intrude {
        how: Intruder,
    },
    /// A request at the terminal endpoint that is not a WebSocket upgrade,
    /// straight at the runner, with the session's token or a wrong one
    /// (EX-1 before EX-2; WS-8 for HTTP/1.0).
    Request {
        shape: Shape,
        token: Token,
    },
    Type {
        who: Who,
        input: Input,
    },
    Close {
        who: Who,
    },
    Vanish {
        who: Who,
    },
    Cancel,
    Signal {
        graceful: bool,
    },
    PartitionBrowser {
        who: Who,
        seconds: u64,
    },
    HoldRunnerLink {
        seconds: u64,
    },
    PartitionRunnerLink {
        seconds: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Intruder {
    Mallory,
    /// Straight at the runner with a token of this shape (EX-1, EX-7).
    Direct(Token),
}

/// The `Authorization` a direct request carries (EX-1, EX-7): the session's
/// own token, or one of the wrong shapes a client gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Token {
    Own,
    Missing,
    Empty,
    Bearer,
    Wrong,
    /// The first half of the right one.
    Prefix,
    /// The right one with a character appended.
    Appended,
    /// The right one in capitals.
    OtherCase,
}

impl Token {
    /// The scenario's token of this shape (`token = "..."`).
    pub fn as_step(self) -> scenario::Token {
        match self {
            Token::Own => scenario::Token::Own,
            Token::Missing => scenario::Token::None,
            Token::Empty => scenario::Token::Empty,
            Token::Bearer => scenario::Token::Bearer,
            Token::Wrong => scenario::Token::Wrong,
            Token::Prefix => scenario::Token::Prefix,
            Token::Appended => scenario::Token::Appended,
            Token::OtherCase => scenario::Token::OtherCase,
        }
    }
}

/// The subprotocols a browser offers (WS-1..3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protocols {
    Terminal,
    Base64,
    Both,
    Neither,
}

/// What a browser types (WS-5, WS-7, WS-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Input {
    /// `echo kNz`: its output is checked exactly once and in order.
    Echo,
    /// The same, padded past the reference's 32 KiB cut, then Enter on its own.
    Paste,
    /// `sleep 5`: the shell is busy for what comes next.
    Busy,
    /// `sleep 100 &`: a background job that holds the terminal open.
    Background,
    /// `exit`: the shell ends, the connection closes with 1000 (WS-7).
    Exit,
}

fn wrong_token() -> impl Strategy<Value = Token> {
    prop_oneof![
        Just(Token::Missing),
        Just(Token::Empty),
        Just(Token::Bearer),
        Just(Token::Wrong),
        Just(Token::Prefix),
        Just(Token::Appended),
        Just(Token::OtherCase),
    ]
}

fn protocols() -> impl Strategy<Value = Protocols> {
    prop_oneof![
        6 => Just(Protocols::Terminal),
        2 => Just(Protocols::Base64),
        1 => Just(Protocols::Both),
        1 => Just(Protocols::Neither),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        12 => Just(Input::Echo),
        5 => Just(Input::Paste),
        2 => Just(Input::Busy),
        1 => Just(Input::Background),
        1 => Just(Input::Exit),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![1 => Just(Who::Alice), 1 => Just(Who::Tab2)]
}

/// Who types: mostly one browser, so that several inputs meet in one
/// connection (a paste cut short shows only when later output arrives).
fn typist() -> impl Strategy<Value = Who> {
    prop_oneof![3 => Just(Who::Alice), 1 => Just(Who::Tab2)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        7 => (who(), any::<bool>(), protocols()).prop_map(|(who, direct, protocols)| Op::Open { who, direct, protocols }),
        1 => prop_oneof![1 => Just(Intruder::Mallory), 3 => wrong_token().prop_map(Intruder::Direct)].prop_map(|how| Op::Intrude { how }),
        1 => (prop_oneof![Just(Shape::Get), Just(Shape::Post), Just(Shape::Http10Upgrade)], prop_oneof![3 => Just(Token::Own), 1 => wrong_token()])
            .prop_map(|(shape, token)| Op::Request { shape, token }),
        6 => (typist(), input()).prop_map(|(who, input)| Op::Type { who, input }),
        2 => who().prop_map(|who| Op::Close { who }),
        1 => who().prop_map(|who| Op::Vanish { who }),
        1 => Just(Op::Cancel),
        1 => any::<bool>().prop_map(|graceful| Op::Signal { graceful }),
        1 => (who(), 1u64..=90).prop_map(|(who, seconds)| Op::PartitionBrowser { who, seconds }),
        1 => (1u64..=20).prop_map(|seconds| Op::HoldRunnerLink { seconds }),
        1 => (5u64..=90).prop_map(|seconds| Op::PartitionRunnerLink { seconds }),
    ]
}

/// `session_timeout` (CFG-3): the default (0, negative), any, or around the
/// time the job has left after its script (`None`: decided with the job).
fn session_timeout() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(Some(0i64)),
        1 => Just(Some(-1i64)),
        6 => (5i64..=150).prop_map(Some),
        2 => Just(None),
    ]
}

/// Seconds an executor prepares (EX-3): mostly none, sometimes around 60 s.
fn prepare() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 1 => 1u64..=50, 1 => 55u64..=65]
}

/// Seconds before docker's container runs (DK-1): often around 15 s.
fn container_start() -> impl Strategy<Value = u64> {
    prop_oneof![2 => 0u64..=20, 1 => 12u64..=18]
}

prop_compose! {
    /// The runner's configuration and the job, before its browsers and faults.
    fn job()(
        docker in prop::bool::weighted(0.3),
        session_timeout in session_timeout(),
        near_deadline in -5i64..=5,
        job_timeout in 30u64..=300,
        script_seconds in 1u64..=90,
        exit_code in prop_oneof![4 => Just(0), 1 => 1i32..=3],
        prepare in prepare(),
        container_start in container_start(),
    ) -> Lifecycle {
        let container_start = if docker { container_start } else { 0 };
        // LC-1: a session_timeout a few seconds either side of the time
        // the job has left when its script ends.
        let left = job_timeout as i64 - (prepare + container_start + script_seconds) as i64;
        let session_timeout = session_timeout.unwrap_or_else(|| (left + near_deadline).max(1));
        Lifecycle {
            docker,
            session_timeout,
            job_timeout,
            script_seconds,
            exit_code,
            prepare,
            container_start,
            seed: 0,
            ops: Vec::new(),
        }
    }
}

/// Seconds between two ops: mostly a few, so that ops meet (a reconnect at
/// once, a paste into a busy shell, a close racing a cancel); sometimes up to
/// 30, so that timed rules (pings every 30 s, waits of 15 and 60 s, session
/// timeouts) pass between them.
fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0u64..=5, 2 => 6u64..=30]
}

/// Lifecycles of at most `max_steps` ops.
pub fn lifecycle(max_steps: usize) -> impl Strategy<Value = Lifecycle> {
    let ops = prop::collection::vec(
        (gap(), op()).prop_map(|(after, op)| Timed { after, op }),
        0..=max_steps,
    );
    (job(), any::<u64>(), ops).prop_map(|(job, seed, ops)| Lifecycle { seed, ops, ..job })
}

impl Lifecycle {
    /// Network faults the lifecycle injects.
    pub fn faults(&self) -> usize {
        self.ops
            .iter()
            .filter(|t| {
                matches!(
                    t.op,
                    Op::PartitionBrowser { .. }
                        | Op::HoldRunnerLink { .. }
                        | Op::PartitionRunnerLink { .. }
                )
            })
            .count()
    }

    /// The lifecycle as a scenario whose invariants are checked.
    pub fn to_scenario(&self, name: &str) -> Scenario {
        let mut steps = Vec::new();
        let mut t = Duration::from_secs(2);
        for (i, timed) in self.ops.iter().enumerate() {
            t += Duration::from_secs(timed.after);
            steps.extend(steps_of(&timed.op, i, t));
        }
        // A partition of a browser that does nothing else has no host to cut.
        let acting: BTreeSet<String> = steps
            .iter()
            .filter_map(|s| s.browser().map(str::to_string))
            .collect();
        steps.retain(|s| match &s.action {
            Action::Partition(Link { a, .. })
            | Action::Repair(Link { a, .. })
            | Action::Hold(Link { a, .. })
            | Action::Release(Link { a, .. }) => a == "gitlab" || acting.contains(a),
            _ => true,
        });
        steps.sort_by_key(|s| s.at);
        let last = steps.iter().map(|s| s.at.0).max().unwrap_or_default();
        let job_end = Duration::from_secs(
            self.prepare + self.container_start + self.script_seconds + self.job_timeout,
        );
        let mut users = BTreeMap::new();
        users.insert(
            "alice".to_string(),
            UserSpec {
                role: Role::Developer,
            },
        );
        users.insert(
            "mallory".to_string(),
            UserSpec {
                role: Role::Developer,
            },
        );
        let mut browsers = BTreeMap::new();
        for (name, user) in [
            ("tab2", Some("alice")),
            ("intruder", Some("alice")),
            ("anon", None),
            (CURL, None),
        ] {
            browsers.insert(
                name.to_string(),
                BrowserSpec {
                    user: user.map(str::to_string),
                },
            );
        }
        let mut script = vec![format!("sleep {}", self.script_seconds)];
        if self.exit_code != 0 {
            script.push(format!("exit {}", self.exit_code));
        }
        Scenario {
            title: format!("fuzz lifecycle {name}"),
            user_sees: "a generated session lifecycle; the invariants of SPEC must hold".into(),
            spec: super::invariants::rules_checked()
                .into_iter()
                .map(String::from)
                .collect(),
            seed: self.seed,
            tick: Some(Dur(TICK)),
            end: Some(Dur(last.max(job_end) + Duration::from_secs(120))),
            invariants: true,
            conformance_skip: Some("a generated lifecycle with simulated faults".into()),
            runner: RunnerSpec {
                executor: if self.docker {
                    Executor::Docker
                } else {
                    Executor::Shell
                },
                session_timeout: Some(self.session_timeout),
                // One job, one slot: the runner does not ask GitLab for
                // more work every 3 s while its job runs (a fifth of a case's cost).
                concurrent: 1,
                // Once its job ended, the runner asks GitLab for another
                // every `check_interval` until the run ends (after the last
                // op, and the director's LC-7 probe): at 30 s instead of
                // GitLab Runner's default 3 s. A request
                // that fails (GitLab cut off at the start) is retried 30 s
                // later: the lifecycle starts later, and is judged from when
                // its job was taken.
                check_interval: 30,
                ..RunnerSpec::default()
            },
            gitlab: Default::default(),
            network: Default::default(),
            users,
            projects: BTreeMap::new(),
            jobs: vec![JobSpec {
                id: 1,
                owner: "alice".into(),
                project: "demo".into(),
                script,
                timeout: Some(Dur(Duration::from_secs(self.job_timeout))),
                prepare: (self.prepare > 0).then(|| Dur(Duration::from_secs(self.prepare))),
                container_start: self
                    .docker
                    .then(|| ContainerStart::After(Dur(Duration::from_secs(self.container_start)))),
                webide: false,
                services: None,
            }],
            browsers,
            steps,
            expect: Expect::default(),
            path: Default::default(),
            id: format!("regressions/{name}"),
            in_catalogue: false,
        }
    }

    /// A coarse state of the reference model after each op, to count how much
    /// of the state space a run reached: (executor, job phase, terminals the
    /// model expects open, faults active).
    pub fn model_states(&self) -> BTreeSet<(bool, u8, u8, u8)> {
        let mut states = BTreeSet::new();
        let mut t = 2;
        let mut open: BTreeSet<Who> = BTreeSet::new();
        let mut faults_until: Vec<u64> = Vec::new();
        let script_end = self.prepare + self.container_start + self.script_seconds;
        let mut ended = false;
        for timed in &self.ops {
            t += timed.after;
            match &timed.op {
                Op::Open { who, .. } if open.is_empty() => {
                    open.insert(*who);
                }
                Op::Close { who } | Op::Vanish { who } => {
                    open.remove(who);
                }
                Op::Cancel | Op::Signal { graceful: false } => {
                    ended = true;
                    open.clear();
                }
                Op::PartitionBrowser { seconds, .. }
                | Op::HoldRunnerLink { seconds }
                | Op::PartitionRunnerLink { seconds } => faults_until.push(t + seconds),
                _ => {}
            }
            let phase = if ended || t >= self.job_timeout {
                3
            } else if t < script_end {
                1
            } else {
                2
            };
            let faults = faults_until
                .iter()
                .filter(|until| **until > t)
                .count()
                .min(3) as u8;
            states.insert((self.docker, phase, open.len() as u8, faults));
        }
        states
    }
}

fn steps_of(op: &Op, index: usize, at: Duration) -> Vec<Step> {
    let step = |action: Action| Step {
        at: Dur(at),
        action,
    };
    // A fault between `a` and `b` at `at`, healed `seconds` later.
    let healed = |fault: fn(Link) -> Action,
                  heal: fn(Link) -> Action,
                  (a, b): (&str, &str),
                  seconds: u64| {
        let link = Link {
            a: a.into(),
            b: b.into(),
        };
        vec![
            step(fault(link.clone())),
            Step {
                at: Dur(at + Duration::from_secs(seconds)),
                action: heal(link),
            },
        ]
    };
    match op {
        Op::Open {
            who,
            direct,
            protocols,
        } => {
            let token = direct.then_some(Token::Own);
            vec![step(Action::Open(open(who.name(), token, *protocols)))]
        }
        Op::Intrude { how } => {
            let open = match how {
                Intruder::Mallory => open("mallory", None, Protocols::Terminal),
                Intruder::Direct(token) => {
                    let browser = if *token == Token::Missing {
                        "anon"
                    } else {
                        "intruder"
                    };
                    open(browser, Some(*token), Protocols::Terminal)
                }
            };
            vec![step(Action::Open(open))]
        }
        Op::Request { shape, token } => {
            let mut open = open(CURL, Some(*token), Protocols::Terminal);
            open.request = Some(*shape);
            vec![step(Action::Open(open))]
        }
        Op::Type { who, input } => {
            let typed = |text: String| {
                step(Action::Type {
                    browser: who.name().into(),
                    text,
                    repeat: 1,
                })
            };
            match input {
                Input::Echo => vec![typed(format!("echo k{index}z\r"))],
                // Pasted, then Enter: the shell runs what arrived of the
                // paste, so its output line shows whether all of it did (WS-5).
                Input::Paste => vec![
                    typed(format!("echo k{index}z{}", "a".repeat(PASTE))),
                    typed("\r".into()),
                ],
                Input::Busy => vec![typed("sleep 5\r".into())],
                Input::Background => vec![typed("sleep 100 &\r".into())],
                Input::Exit => vec![typed("exit\r".into())],
            }
        }
        Op::Close { who } => vec![step(Action::Close {
            browser: who.name().into(),
        })],
        Op::Vanish { who } => vec![step(Action::Vanish {
            browser: who.name().into(),
        })],
        Op::Cancel => vec![step(Action::Cancel { job: 1 })],
        Op::Signal { graceful } => vec![step(Action::Signal {
            mode: if *graceful {
                StopMode::Graceful
            } else {
                StopMode::Abort
            },
        })],
        Op::PartitionBrowser { who, seconds } => healed(
            Action::Partition,
            Action::Repair,
            (who.name(), "gitlab"),
            *seconds,
        ),
        Op::HoldRunnerLink { seconds } => healed(
            Action::Hold,
            Action::Release,
            ("gitlab", "runner"),
            *seconds,
        ),
        Op::PartitionRunnerLink { seconds } => healed(
            Action::Partition,
            Action::Repair,
            ("gitlab", "runner"),
            *seconds,
        ),
    }
}

/// `browser` opening job 1: through GitLab, or straight at the runner with
/// a token of shape `direct`.
fn open(browser: &str, direct: Option<Token>, protocols: Protocols) -> Open {
    Open {
        browser: browser.into(),
        job: 1,
        via: match direct {
            Some(token) => Via::Direct {
                token: token.as_step(),
                insecure: false,
            },
            None => Via::Gitlab,
        },
        protocols: match protocols {
            Protocols::Terminal => None,
            Protocols::Base64 => Some(vec![BASE64.into()]),
            Protocols::Both => Some(vec![BASE64.into(), TERMINAL.into()]),
            Protocols::Neither => Some(Vec::new()),
        },
        request: None,
        proxy: None,
    }
}
