//! Hanging up a terminal's session (WS-7, LC-3): what closing a terminal
//! window does. Its processes get SIGHUP (and SIGCONT, for stopped jobs), then
//! SIGKILL after a grace period, and its shell is reaped, so that nothing of
//! the terminal is left behind, not even a zombie.
//!
//! One thread serves every terminal being ended, and only while there is one,
//! so that an idle terminal costs no thread and a shutdown that closes a
//! thousand terminals scans /proc once per round rather than once per terminal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use portable_pty::Child;
use tokio::sync::watch;

use crate::terminal::Closing;
/// How long the processes get to act on SIGHUP (save history, clean up) before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_millis(200);
/// How long to wait for SIGKILLed processes to disappear; only a process stuck
/// in the kernel (uninterruptible sleep) takes longer.
const KILL_WAIT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The reaper thread only signals, sleeps and scans /proc.
const REAPER_STACK_SIZE: usize = 64 * 1024;

/// A terminal's shell, to be reaped once, on close or at EOF.
pub(super) struct Reaper {
    pid: libc::pid_t,
    /// Taken when the ending starts.
    child: Mutex<Option<Box<dyn Child + Send + Sync>>>,
    reaped: watch::Sender<bool>,
}

impl Reaper {
    pub(super) fn new(pid: libc::pid_t, child: Box<dyn Child + Send + Sync>) -> Arc<Reaper> {
        Arc::new(Reaper {
            pid,
            child: Mutex::new(Some(child)),
            reaped: watch::Sender::new(false),
        })
    }

    /// Starts the hangup, if not yet started; resolves once the shell is reaped.
    pub(super) fn close(self: &Arc<Self>) -> Closing {
        self.start();
        let mut reaped = self.reaped.subscribe();
        Box::pin(async move {
            // An error means the reaper thread died (a bug): nothing left to wait for.
            let _ = reaped.wait_for(|&reaped| reaped).await;
        })
    }

    /// Starts the hangup, if not yet started.
    pub(super) fn start(self: &Arc<Self>) {
        if let Some(child) = lock(&self.child).take() {
            end(Ending {
                reaper: Arc::clone(self),
                child,
                hung_up_at: None,
            });
        }
    }
}

/// A terminal whose processes are being ended.
struct Ending {
    reaper: Arc<Reaper>,
    child: Box<dyn Child + Send + Sync>,
    hung_up_at: Option<Instant>,
}

/// Terminals being ended, and whether a thread works on them.
///
/// One thread serves all of them, so that closing many at once (a shutdown)
/// costs one /proc scan per round rather than one per terminal; it exits when
/// none is left, so idle terminals cost no thread.
static ENDINGS: Mutex<(Vec<Ending>, bool)> = Mutex::new((Vec::new(), false));

fn end(ending: Ending) {
    let mut endings = lock(&ENDINGS);
    endings.0.push(ending);
    if endings.1 {
        return;
    }
    endings.1 = true;
    drop(endings);
    let spawned = std::thread::Builder::new()
        .name("pty-reaper".into())
        .stack_size(REAPER_STACK_SIZE)
        .spawn(run_endings);
    if spawned.is_err() {
        // No thread to be had: block this caller rather than leave the
        // processes running and the shell a zombie.
        run_endings();
    }
}

fn run_endings() {
    let mut endings = Vec::new();
    loop {
        {
            let mut queued = lock(&ENDINGS);
            endings.append(&mut queued.0);
            if endings.is_empty() {
                queued.1 = false;
                return;
            }
        }
        let leaders: Vec<libc::pid_t> = endings.iter().map(|e| e.reaper.pid).collect();
        let trees = trees(&leaders);
        endings.retain_mut(|ending| {
            let tree = trees.get(&ending.reaper.pid).map_or(&[][..], Vec::as_slice);
            !ending.step(tree)
        });
        std::thread::sleep(POLL_INTERVAL);
    }
}

impl Ending {
    /// Moves the ending on, given the live processes of the terminal's tree;
    /// returns whether it is over.
    fn step(&mut self, tree: &[libc::pid_t]) -> bool {
        let now = Instant::now();
        match self.hung_up_at {
            None => {
                // Stopped jobs (^Z) act on the hangup only once continued, as
                // the kernel does it when a session leader exits.
                signal_tree(self.reaper.pid, tree, &[libc::SIGHUP, libc::SIGCONT]);
                self.hung_up_at = Some(now);
            }
            // Each round: this also reaches what forked since the last one.
            Some(at) if now >= at + HANGUP_GRACE => {
                signal_tree(self.reaper.pid, tree, &[libc::SIGKILL])
            }
            Some(_) => {}
        }
        let given_up = self
            .hung_up_at
            .is_some_and(|at| now >= at + HANGUP_GRACE + KILL_WAIT);
        // Only a process stuck in the kernel outlives KILL_WAIT: stop waiting for
        // it, but not for the shell, which must not stay a zombie.
        if !tree.is_empty() && !given_up {
            return false;
        }
        // Err: reaped elsewhere, e.g. with SIGCHLD ignored.
        let reaped = !matches!(self.child.try_wait(), Ok(None));
        if reaped {
            self.reaper.reaped.send_replace(true);
        }
        reaped
    }
}

/// Sends `signals` to `leader`'s process group and to the other processes of
/// its `tree`: an interactive shell's job control puts each job (`sleep 1000 &`)
/// in a process group of its own, within the shell's session.
fn signal_tree(leader: libc::pid_t, tree: &[libc::pid_t], signals: &[libc::c_int]) {
    if tree.is_empty() {
        return; // nothing to end, and the group's number may be free for reuse
    }
    for &signal in signals {
        // SAFETY: killpg and kill only send signals; ESRCH (gone meanwhile) is fine.
        // killpg reaches even what forks while the signal is being sent.
        unsafe { libc::killpg(leader, signal) };
        for &pid in tree {
            // SAFETY: as above.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// The live (non-zombie) processes of each leader's process group and session,
/// from one scan of /proc. Zombies do not count: they only wait for their
/// parent, which may be an init that never reaps them.
fn trees(leaders: &[libc::pid_t]) -> HashMap<libc::pid_t, Vec<libc::pid_t>> {
    let mut trees: HashMap<_, _> = leaders.iter().map(|&leader| (leader, Vec::new())).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // Without /proc, take each leader for alive: its group is signalled
        // until KILL_WAIT runs out, and then its shell is reaped.
        return leaders
            .iter()
            .map(|&leader| (leader, vec![leader]))
            .collect();
    };
    for pid in entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()) {
        let Some((pgrp, session)) = live_groups(pid) else {
            continue;
        };
        if let Some(tree) = trees.get_mut(&pgrp) {
            tree.push(pid);
        } else if let Some(tree) = trees.get_mut(&session) {
            tree.push(pid);
        }
    }
    trees
}

/// The process group and session of `pid`, unless it is gone or a zombie.
fn live_groups(pid: libc::pid_t) -> Option<(libc::pid_t, libc::pid_t)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and
    // parentheses, so the fields are counted from the last ')'.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next();
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    (!matches!(state, "Z" | "X")).then_some((pgrp, session))
}

/// The live processes of `leader`'s process group and session (for tests, here
/// and of scripts).
#[cfg(test)]
pub(crate) fn tree_members(leader: libc::pid_t) -> Vec<libc::pid_t> {
    trees(&[leader]).remove(&leader).unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop terminals from being ended.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
