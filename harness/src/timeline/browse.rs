//! One browser's own timeline: its steps at their times, then waiting for its
//! connection to end, or for the run to be over.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use session_server::net::Net;
use tokio::sync::watch;

use crate::actors::browser::{Browser, Via};
use crate::scenario::{self, BrowserStep, Open, Step};

/// The protocol a browser asks for when its step names none.
const DEFAULT_PROTOCOL: &str = "terminal.gitlab.com";

/// A browser: the harness's own over sockets, or a page of real Chromium.
pub trait Plays {
    fn name(&self) -> &str;
    /// Takes `step` now (`entry`: where GitLab is reached).
    async fn take(&mut self, step: BrowserStep<'_>, entry: &str);
    /// Until its terminal's connection ends (at once without one).
    async fn closed(&mut self);
}

/// How a browser waits for its next step.
pub trait Pace {
    /// Until `at` on the scenario's clock; before `typing`, until the
    /// browser's shell is there too, when the ground cannot know it is.
    async fn until(&mut self, at: Duration, typing: bool);
}

/// Which browsers are still doing something.
#[derive(Default)]
pub struct Progress(Mutex<BTreeSet<String>>);

impl Progress {
    pub fn busy(&self, name: &str, busy: bool) {
        let mut set = self.0.lock().expect("progress lock");
        if busy {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }

    pub fn idle(&self) -> bool {
        self.0.lock().expect("progress lock").is_empty()
    }
}

/// Takes `browser`'s `steps` (its own, from `scenario::browser_plans`) at
/// their times, then waits for its connection to end or the run to be
/// `over`; tells `progress` it is done. The browser back if its connection
/// ended (its owner decides what becomes of its sockets), `None` if the run
/// ended first.
pub async fn browse<B: Plays, P: Pace>(
    mut browser: B,
    steps: Vec<Step>,
    entry: &str,
    mut pace: P,
    progress: &Progress,
    mut over: watch::Receiver<bool>,
) -> Option<B> {
    for step in &steps {
        let Some((_, action)) = step.action.browser_step() else {
            continue;
        };
        let typing = matches!(action, BrowserStep::Type { .. });
        // A step stuck behind a fault must not outlive the run.
        tokio::select! {
            biased;
            _ = async {
                pace.until(step.at.0, typing).await;
                browser.take(action, entry).await;
            } => {}
            _ = over.wait_for(|o| *o) => break,
        }
    }
    let closed = tokio::select! {
        biased;
        _ = browser.closed() => true,
        _ = over.wait_for(|o| *o) => false,
    };
    progress.busy(browser.name(), false);
    closed.then_some(browser)
}

impl<N: Net> Plays for Browser<N> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn take(&mut self, step: BrowserStep<'_>, entry: &str) {
        match step {
            BrowserStep::Open(Open {
                job,
                via,
                protocols,
                request,
                proxy,
                ..
            }) => {
                let via = match (via, proxy) {
                    (scenario::Via::Direct { token, insecure }, _) => Via::Direct {
                        token: *token,
                        insecure: *insecure,
                    },
                    (scenario::Via::Gitlab, Some(target)) => Via::Service {
                        entry: entry.to_string(),
                        target: target.clone(),
                    },
                    (scenario::Via::Gitlab, None) => Via::Gitlab {
                        entry: entry.to_string(),
                    },
                };
                if let Some(shape) = request {
                    return self.request(*job, &via, *shape).await;
                }
                let protocols = protocols
                    .clone()
                    .unwrap_or_else(|| vec![DEFAULT_PROTOCOL.to_string()]);
                self.open(*job, &via, &protocols).await;
            }
            BrowserStep::Type { text, repeat } => {
                self.type_text(text.repeat(repeat).as_bytes()).await
            }
            BrowserStep::Fetch { job, proxy } => self.fetch(job, entry, proxy).await,
            BrowserStep::Close => self.close().await,
            BrowserStep::Vanish => self.vanish().await,
        }
    }

    async fn closed(&mut self) {
        Browser::closed(self).await
    }
}
