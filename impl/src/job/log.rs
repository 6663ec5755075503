//! The job log (trace): what the job prints and what the runner says about it,
//! sent to GitLab in increments (JOB-3).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// An append-only job log, shared by the job and its reporter.
#[derive(Clone, Default)]
pub struct JobLog(Arc<Inner>);

#[derive(Default)]
struct Inner {
    bytes: Mutex<Vec<u8>>,
    grew: Notify,
}

impl JobLog {
    pub fn append(&self, bytes: &[u8]) {
        self.0
            .bytes
            .lock()
            .expect("job log lock poisoned")
            .extend_from_slice(bytes);
        self.0.grew.notify_waiters();
    }

    /// One line of the runner's own (the SPEC's job log lines, LC-1..3).
    pub fn line(&self, line: &str) {
        tracing::info!(target: "job", "{line}");
        self.append(format!("{line}\n").as_bytes());
    }

    pub fn len(&self) -> usize {
        self.0.bytes.lock().expect("job log lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes from `offset` on.
    pub fn since(&self, offset: usize) -> Bytes {
        let bytes = self.0.bytes.lock().expect("job log lock poisoned");
        Bytes::copy_from_slice(bytes.get(offset..).unwrap_or_default())
    }

    /// Resolves the next time the log grows.
    pub async fn grew(&self) {
        self.0.grew.notified().await
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.since(0)).into_owned()
    }
}
