//! Reporting a job to GitLab while it runs (JOB-3): log increments or a
//! keep-alive every update interval, a cancel noticed in the answers, and the
//! final state at the end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tracing::warn;

use super::log::JobLog;
use super::JobResult;
use crate::coordinator::api::{JobResponse, UpdateJob};
use crate::coordinator::Coordinator;
use crate::net::Net;

/// How long the runner keeps trying to report a job's end (GitLab may be
/// unreachable for a while); the pause between tries doubles up to a minute.
const FINAL_PATIENCE: Duration = Duration::from_secs(30 * 60);
const FINAL_PAUSE_MAX: Duration = Duration::from_secs(60);

pub(super) struct Reporter<N: Net> {
    coordinator: Arc<Coordinator<N>>,
    id: u64,
    token: String,
    log: JobLog,
    stop: oneshot::Sender<()>,
    /// The task hands back how much of the log GitLab has.
    task: tokio::task::JoinHandle<usize>,
}

impl<N: Net> Reporter<N> {
    pub(super) fn start(
        coordinator: Arc<Coordinator<N>>,
        job: &JobResponse,
        log: JobLog,
        canceled: watch::Sender<bool>,
        interval: Duration,
    ) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let (c, id, token, l) = (coordinator.clone(), job.id, job.token.clone(), log.clone());
        let task = tokio::spawn(async move {
            let mut sent = 0;
            let mut interval = interval;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => return sent,
                    _ = tokio::time::sleep(interval) => {}
                }
                let remote = if l.len() > sent {
                    send_trace(&c, id, &token, &l, &mut sent).await
                } else {
                    let touch = UpdateJob {
                        token: token.clone(),
                        state: "running".into(),
                        failure_reason: None,
                        exit_code: None,
                    };
                    c.update_job(id, &touch).await
                };
                match remote {
                    Ok(remote) => {
                        if remote.canceled {
                            canceled.send_replace(true);
                        }
                        interval = remote.update_interval.unwrap_or(interval);
                    }
                    Err(e) => warn!(job = id, "updating the job: {e:#}"),
                }
            }
        });
        Reporter {
            coordinator,
            id,
            token: job.token.clone(),
            log,
            stop,
            task,
        }
    }

    /// Sends the rest of the log and the final state; returns `result`.
    pub(super) async fn finish(self, result: JobResult) -> JobResult {
        let _ = self.stop.send(());
        self.log.close();
        let mut sent = self.task.await.unwrap_or(0);
        let (state, failure_reason, exit_code) = match &result {
            JobResult::Success => ("success", None, None),
            JobResult::Failed { reason, exit_code } => {
                ("failed", Some(reason.to_string()), *exit_code)
            }
        };
        let update = UpdateJob {
            token: self.token.clone(),
            state: state.into(),
            failure_reason,
            exit_code,
        };
        let give_up = tokio::time::Instant::now() + FINAL_PATIENCE;
        let mut pause = Duration::from_secs(1);
        while tokio::time::Instant::now() < give_up {
            let trace_done = self.log.len() <= sent
                || send_trace(
                    &self.coordinator,
                    self.id,
                    &self.token,
                    &self.log,
                    &mut sent,
                )
                .await
                .is_ok();
            if trace_done && self.log.len() <= sent {
                match self.coordinator.update_job(self.id, &update).await {
                    Ok(_) => return result,
                    Err(e) => warn!(job = self.id, "final job update: {e:#}"),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(FINAL_PAUSE_MAX);
        }
        warn!(job = self.id, "gave up reporting the job's end to GitLab");
        result
    }
}

async fn send_trace<N: Net>(
    coordinator: &Coordinator<N>,
    id: u64,
    token: &str,
    log: &JobLog,
    sent: &mut usize,
) -> anyhow::Result<crate::coordinator::Remote> {
    let chunk = log.since(*sent);
    let remote = coordinator
        .patch_trace(id, token, *sent, chunk.clone())
        .await?;
    *sent = remote.trace_offset.unwrap_or(*sent + chunk.len());
    Ok(remote)
}
