//! Generated session lifecycles: a runner configuration, one job, and a
//! timeline of browsers, operators and network faults, as a proptest strategy
//! that shrinks toward fewer, simpler steps. A lifecycle becomes an ordinary
//! scenario, so a failing one can be written out and replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use serde::Serialize;

use crate::scenario::{
    Action, BrowserSpec, ContainerStart, Dur, Executor, Expect, JobSpec, Link, Open, RunnerSpec,
    Scenario, Step, StopMode, Token, UserSpec, Via,
};
use crate::world::gitlab::Role;

/// Bytes of a paste: more than the reference's 32 KiB cut (WS-5).
pub const PASTE: usize = 40 * 1024;
/// The browser that checks, after the job, that its session is gone (LC-7).
pub const PROBE: &str = "probe";

#[derive(Clone, Debug, Serialize)]
pub struct Lifecycle {
    pub docker: bool,
    /// `[session_server] session_timeout`; 0 and negative mean the default (CFG-3).
    pub session_timeout: i64,
    pub job_timeout: u64,
    pub script_seconds: u64,
    pub exit_code: i32,
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
    },
    /// Someone without the right: Mallory through GitLab, or direct with a wrong or no token.
    Intrude {
        how: Intruder,
    },
    Type {
        who: Who,
        paste: bool,
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
    WrongToken,
    NoToken,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![3 => Just(Who::Alice), 1 => Just(Who::Tab2)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (who(), any::<bool>()).prop_map(|(who, direct)| Op::Open { who, direct }),
        1 => prop_oneof![Just(Intruder::Mallory), Just(Intruder::WrongToken), Just(Intruder::NoToken)].prop_map(|how| Op::Intrude { how }),
        5 => (who(), prop::bool::weighted(0.15)).prop_map(|(who, paste)| Op::Type { who, paste }),
        2 => who().prop_map(|who| Op::Close { who }),
        1 => who().prop_map(|who| Op::Vanish { who }),
        1 => Just(Op::Cancel),
        1 => any::<bool>().prop_map(|graceful| Op::Signal { graceful }),
        1 => (who(), 1u64..=90).prop_map(|(who, seconds)| Op::PartitionBrowser { who, seconds }),
        1 => (1u64..=20).prop_map(|seconds| Op::HoldRunnerLink { seconds }),
        1 => (5u64..=90).prop_map(|seconds| Op::PartitionRunnerLink { seconds }),
    ]
}

/// Lifecycles of at most `max_steps` ops.
pub fn lifecycle(max_steps: usize) -> impl Strategy<Value = Lifecycle> {
    (
        prop::bool::weighted(0.3),
        prop_oneof![1 => Just(0i64), 1 => Just(-1i64), 8 => 5i64..=150],
        30u64..=300,
        1u64..=90,
        prop_oneof![4 => Just(0), 1 => 1i32..=3],
        0u64..=20,
        any::<u64>(),
        prop::collection::vec(
            (0u64..=30, op()).prop_map(|(after, op)| Timed { after, op }),
            0..=max_steps,
        ),
    )
        .prop_map(
            |(
                docker,
                session_timeout,
                job_timeout,
                script_seconds,
                exit_code,
                container_start,
                seed,
                ops,
            )| Lifecycle {
                docker,
                session_timeout,
                job_timeout,
                script_seconds,
                exit_code,
                container_start: if docker { container_start } else { 0 },
                seed,
                ops,
            },
        )
}

impl Lifecycle {
    /// A time by which the job has ended, whatever happens: its deadline, or
    /// the end of its script plus the longest terminal wait, plus slack.
    fn surely_ended(&self) -> Duration {
        let timeout = match self.session_timeout {
            s if s > 0 => s as u64,
            _ => 1800,
        };
        let end = (self.container_start + self.script_seconds + timeout).min(self.job_timeout);
        Duration::from_secs(end + 30)
    }

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
        // LC-7: once the job has surely ended, its session must answer 404.
        steps.push(Step {
            at: Dur(self.surely_ended()),
            action: Action::Open(open(PROBE, true)),
        });
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
        let job_end =
            Duration::from_secs(self.container_start + self.script_seconds + self.job_timeout);
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
            (PROBE, Some("alice")),
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
            spec: ["EX-1", "EX-4", "WS-5", "LC-1", "LC-6", "LC-7"]
                .map(String::from)
                .to_vec(),
            seed: self.seed,
            tick: Some(Dur(Duration::from_millis(500))),
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
                prepare: None,
                container_start: self.docker.then(|| {
                    ContainerStart::After(Dur(Duration::from_secs(self.container_start)))
                }),
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
        let script_end = self.container_start + self.script_seconds;
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
    // A fault at `at`, healed `seconds` later.
    let healed = |fault: fn(Link) -> Action, heal: fn(Link) -> Action, (a, b): (&str, &str), seconds: u64| {
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
        Op::Open { who, direct } => vec![step(Action::Open(open(who.name(), *direct)))],
        Op::Intrude { how } => {
            let (browser, token) = match how {
                Intruder::Mallory => ("mallory", None),
                Intruder::WrongToken => ("intruder", Some(Token::Wrong)),
                Intruder::NoToken => ("anon", Some(Token::None)),
            };
            let via = match token {
                Some(token) => Via::Direct {
                    token,
                    insecure: false,
                },
                None => Via::Gitlab,
            };
            vec![step(Action::Open(Open {
                browser: browser.into(),
                job: 1,
                via,
                protocols: None,
            }))]
        }
        Op::Type { who, paste } => {
            let padding = if *paste {
                "a".repeat(PASTE)
            } else {
                String::new()
            };
            vec![step(Action::Type {
                browser: who.name().into(),
                text: format!("echo k{index}z{padding}\r"),
                repeat: 1,
            })]
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
        Op::PartitionBrowser { who, seconds } => {
            healed(Action::Partition, Action::Repair, (who.name(), "gitlab"), *seconds)
        }
        Op::HoldRunnerLink { seconds } => healed(Action::Hold, Action::Release, ("gitlab", "runner"), *seconds),
        Op::PartitionRunnerLink { seconds } => {
            healed(Action::Partition, Action::Repair, ("gitlab", "runner"), *seconds)
        }
    }
}

/// `browser` opening job 1: through GitLab, or straight at the runner with its own token.
fn open(browser: &str, direct: bool) -> Open {
    Open {
        browser: browser.into(),
        job: 1,
        via: if direct {
            Via::Direct {
                token: Token::Own,
                insecure: false,
            }
        } else {
            Via::Gitlab
        },
        protocols: None,
    }
}
