//! What the scenario (or the harness itself) did to the world, and what it
//! could not do: typed, so that judging reads the step, not its sentence.

use std::fmt;

use serde::Serialize;

use crate::scenario::{Action, Link};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "injected", rename_all = "snake_case")]
pub enum Injected {
    /// GitLab cancels the job (LC-4).
    Cancelled {
        job: u64,
    },
    /// The runner's operator sends it a signal (LC-4).
    Signal {
        signal: String,
    },
    /// A user's role in the project changes (AU-2).
    RoleChanged {
        user: String,
        role: String,
    },
    /// The project is archived (AU-2).
    Archived {
        project: String,
    },
    Partition(Link),
    Repaired(Link),
    Held(Link),
    Released(Link),
    Crashed {
        host: String,
    },
    Restarted {
        host: String,
    },
    /// Only GitLab may reach the runner (DP-2).
    Firewall,
    /// A browser drops its connection without a close frame (WS-7).
    Vanished,
    /// A browser types with no terminal open.
    NothingToTypeInto {
        browser: String,
    },
    /// A direct open finds no session URL in GitLab to go to.
    NoSession {
        job: u64,
    },
    /// A real browser failed at what the step asked (`problem`: what and why).
    Chromium {
        problem: String,
    },
    /// A real runner's terminal showed nothing to type after (conform).
    NoOutputYet {
        browser: String,
        seconds: u64,
    },
    /// A step that only the simulation can do, met in a run for real.
    NotForReal {
        action: String,
    },
}

impl Injected {
    /// What the step `action` of GitLab, the runner's operator or the
    /// network does (shared by the simulation and by runs for real), with the
    /// rule it bears on; `None` for a browser's step.
    pub fn of_step(action: &Action) -> Option<(Option<&'static str>, Injected)> {
        let injected = match action {
            Action::Cancel { job } => Injected::Cancelled { job: *job },
            Action::Signal { mode } => Injected::Signal {
                signal: mode.signal().to_string(),
            },
            Action::Revoke { user, role } => Injected::RoleChanged {
                user: user.clone(),
                role: format!("{role:?}"),
            },
            Action::Archive { project } => Injected::Archived {
                project: project.clone(),
            },
            Action::Partition(link) => Injected::Partition(link.clone()),
            Action::Repair(link) => Injected::Repaired(link.clone()),
            Action::Hold(link) => Injected::Held(link.clone()),
            Action::Release(link) => Injected::Released(link.clone()),
            Action::Crash { host } => Injected::Crashed { host: host.clone() },
            Action::Bounce { host } => Injected::Restarted { host: host.clone() },
            Action::Open(_)
            | Action::Fetch { .. }
            | Action::Type { .. }
            | Action::Close { .. }
            | Action::Vanish { .. } => return None,
        };
        let rule = match injected {
            Injected::Cancelled { .. } | Injected::Signal { .. } => Some("LC-4"),
            Injected::RoleChanged { .. } | Injected::Archived { .. } => Some("AU-2"),
            _ => None,
        };
        Some((rule, injected))
    }

    /// The harness could not do what a step asked: a run for real reports it
    /// as the cause of what follows.
    pub fn is_unable(&self) -> bool {
        matches!(
            self,
            Injected::NoSession { .. } | Injected::NoOutputYet { .. } | Injected::NotForReal { .. }
        )
    }

    /// A host of the runner crashed or restarted: its connections are gone.
    pub fn ends_runner(&self) -> bool {
        matches!(self, Injected::Crashed { host } | Injected::Restarted { host } if host.starts_with("runner"))
    }
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Cancelled { job } => write!(f, "job {job} is cancelled in GitLab"),
            Injected::Signal { signal } => write!(f, "the runner receives {signal}"),
            Injected::RoleChanged { user, role } => write!(f, "{user}'s role becomes {role}"),
            Injected::Archived { project } => write!(f, "project {project} is archived"),
            Injected::Partition(Link { a, b }) => {
                write!(f, "network partition between {a} and {b}")
            }
            Injected::Repaired(Link { a, b }) => write!(f, "network between {a} and {b} repaired"),
            Injected::Held(Link { a, b }) => write!(f, "messages between {a} and {b} held"),
            Injected::Released(Link { a, b }) => write!(f, "messages between {a} and {b} released"),
            Injected::Crashed { host } => write!(f, "host {host} crashes"),
            Injected::Restarted { host } => write!(f, "host {host} restarts"),
            Injected::Firewall => f.write_str("firewall: only gitlab may reach the runner"),
            Injected::Vanished => f.write_str("drops its connection without a close frame"),
            Injected::NothingToTypeInto { browser } => {
                write!(f, "{browser} has no open terminal to type into")
            }
            Injected::NoSession { job } => write!(
                f,
                "cannot open job {job} directly: GitLab knows no session for it"
            ),
            Injected::Chromium { problem } => write!(f, "Chromium could not {problem}"),
            Injected::NoOutputYet { browser, seconds } => write!(
                f,
                "cannot wait longer for {browser}'s terminal to show output (its shell's prompt) \
                 before typing: nothing in {seconds} s"
            ),
            Injected::NotForReal { action } => write!(f, "cannot {action} for real: ignored"),
        }
    }
}
