//! The job log (trace): what the job prints and what the runner says about it,
//! sent to GitLab in increments (JOB-3), masked (JOB-5).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use super::mask::Masker;

/// An append-only job log, shared by the job and its reporter.
#[derive(Clone, Default)]
pub struct JobLog(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    grew: Notify,
}

/// One lock for both, so that concurrent appends are masked in the order logged.
#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    masker: Masker,
}

impl JobLog {
    /// A log in which every occurrence of `secrets` is `[MASKED]` (JOB-5).
    pub fn masking<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let state = State {
            bytes: Vec::new(),
            masker: Masker::new(secrets),
        };
        JobLog(Arc::new(Inner {
            state: Mutex::new(state),
            grew: Notify::new(),
        }))
    }

    pub fn append(&self, bytes: &[u8]) {
        let mut state = self.state();
        let masked = state.masker.push(bytes);
        state.bytes.extend_from_slice(&masked);
        drop(state);
        self.0.grew.notify_waiters();
    }

    /// Nothing more will be appended: what the masker held back (the possible
    /// start of a secret at the very end) goes into the log.
    pub fn close(&self) {
        let mut state = self.state();
        let rest = state.masker.finish();
        state.bytes.extend_from_slice(&rest);
        drop(state);
        self.0.grew.notify_waiters();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().expect("job log lock poisoned")
    }

    /// One line of the runner's own (the SPEC's job log lines, LC-1..3).
    pub fn line(&self, line: &str) {
        tracing::info!(target: "job", "{line}");
        self.append(format!("{line}\n").as_bytes());
    }

    pub fn len(&self) -> usize {
        self.state().bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes from `offset` on.
    pub fn since(&self, offset: usize) -> Bytes {
        Bytes::copy_from_slice(self.state().bytes.get(offset..).unwrap_or_default())
    }

    /// Resolves the next time the log grows.
    pub async fn grew(&self) {
        self.0.grew.notified().await
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.since(0)).into_owned()
    }
}
