//! A scenario's browser as a page in real Chromium (`conform --browser
//! chromium`): the terminal is opened by Chromium's own WebSocket stack, as
//! GitLab's frontend opens it (`terminal.gitlab.com`, binaryType
//! `arraybuffer`), so that a runner is held against it too.
//!
//! Each scenario browser gets a tab on the harness's GitLab origin, logged in
//! with the `serve` pages' cookie (the front passes it to Workhorse as the
//! login). What the page's WebSocket reports (open, messages, close) is
//! collected in the page and recorded as the socket browsers record it.
//!
//! A page sees less than a socket client: no HTTP status of a refused
//! handshake, no Pings, no way to drop a connection without a close frame.
//! [`can_play`] says which scenarios a page can play; the others keep the
//! harness's socket browsers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::actors::workhorse::LOGIN_COOKIE;
use crate::chromium::Chromium;
use crate::scenario::{browser_names, Action, BrowserStep, Open, Scenario, Via};
use crate::timeline::Plays;
use crate::trace::{preview, Close, Endpoint, Injected, Recorder, Target, What};

/// How often a page's collected WebSocket events are fetched.
const POLL: Duration = Duration::from_millis(50);
/// How long an open may take to be answered, and a close to complete.
const SETTLE: Duration = Duration::from_secs(10);
/// The subprotocol GitLab's frontend offers.
const PROTOCOL: &str = "terminal.gitlab.com";

/// Whether a page can play every browser step and expectation of `s`: opens
/// through GitLab with the frontend's subprotocol, typing, closing; answers
/// that are all 101 (a page cannot see a refusal's status).
pub fn can_play(s: &Scenario) -> bool {
    let steps = s
        .steps
        .iter()
        .filter(|st| st.browser().is_some())
        .all(|st| match &st.action {
            // The terminal page opens a terminal, never a job's service.
            Action::Open(Open {
                via,
                protocols,
                proxy,
                request,
                ..
            }) => {
                *via == Via::Gitlab
                    && proxy.is_none()
                    && request.is_none()
                    && protocols
                        .as_ref()
                        .is_none_or(|p| p.iter().map(String::as_str).eq([PROTOCOL]))
            }
            Action::Type { .. } | Action::Close { .. } => true,
            _ => false,
        });
    let answers = s.expect.browser.values().all(|b| {
        b.answers
            .as_ref()
            .is_none_or(|answers| answers.iter().all(|a| *a == 101))
    });
    steps && answers && s.steps.iter().any(|st| st.browser().is_some())
}

/// The one Chromium of a conformance run, with a tab per browser name (kept
/// from scenario to scenario); a browser's command switches to its own tab
/// first, so commands of two browsers never interleave.
pub struct Pages {
    chromium: Mutex<Chromium>,
    tabs: Mutex<BTreeMap<String, String>>,
}

impl Pages {
    pub fn new(chromium: Chromium) -> Arc<Pages> {
        Arc::new(Pages {
            chromium: Mutex::new(chromium),
            tabs: Mutex::default(),
        })
    }

    /// Readies a tab for each of `scenario`'s browsers on GitLab's origin
    /// (`entry`), logged in as its user, before the runner starts: opening a
    /// tab takes longer than a scaled scenario's first step.
    pub async fn prepare(&self, scenario: &Scenario, entry: &str) -> anyhow::Result<()> {
        for name in browser_names(scenario) {
            let user = match scenario.browsers.get(&name) {
                Some(b) => b.user.clone(),
                None => Some(name.clone()),
            };
            self.tab(&name, user.as_deref(), entry).await?;
        }
        Ok(())
    }

    /// `name`'s tab, on `entry`'s origin, logged in as `user`, without a terminal.
    async fn tab(&self, name: &str, user: Option<&str>, entry: &str) -> anyhow::Result<String> {
        let mut tabs = self.tabs.lock().await;
        let chromium = self.chromium.lock().await;
        let tab = match tabs.get(name) {
            Some(tab) => tab.clone(),
            None => {
                let tab = chromium.new_tab().await?;
                chromium.switch_to(&tab).await?;
                // Any page of the origin will do: the cookie and the WebSocket are the origin's.
                chromium.goto(&format!("http://{entry}/-/conform")).await?;
                tabs.insert(name.to_string(), tab.clone());
                tab
            }
        };
        chromium.switch_to(&tab).await?;
        let cookie = match user {
            Some(user) => format!("{LOGIN_COOKIE}={user}; path=/"),
            None => format!("{LOGIN_COOKIE}=; path=/; max-age=0"),
        };
        chromium
            .execute(
                "if (window.harnessSocket) window.harnessSocket.close(); window.harnessSocket = null; document.cookie = arguments[0];",
                vec![json!(cookie)],
            )
            .await?;
        Ok(tab)
    }

    /// Runs `script` in `tab`.
    async fn execute(&self, tab: &str, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let chromium = self.chromium.lock().await;
        chromium.switch_to(tab).await?;
        chromium.execute(script, args).await
    }

    /// Ends Chromium, even while an aborted browser task still holds these pages.
    pub async fn quit(&self) {
        self.chromium.lock().await.end().await;
    }
}

/// One scenario browser, as a tab.
pub struct PageBrowser {
    pub name: String,
    user: Option<String>,
    pages: Arc<Pages>,
    recorder: Recorder,
    tab: Option<String>,
    /// The open connection's event reader; its watch says when it ended.
    open: Option<(JoinHandle<()>, watch::Receiver<bool>)>,
}

/// The page's side: a WebSocket whose events wait in `window.harnessEvents`.
const OPEN: &str = "
    const [url] = arguments;
    window.harnessEvents = [];
    const socket = new WebSocket(url, ['terminal.gitlab.com']);
    socket.binaryType = 'arraybuffer';
    window.harnessSocket = socket;
    socket.onopen = () => window.harnessEvents.push({ kind: 'open', protocol: socket.protocol });
    socket.onmessage = (e) => {
      const bytes = typeof e.data === 'string' ? new TextEncoder().encode(e.data) : new Uint8Array(e.data);
      let binary = '';
      for (const b of bytes) binary += String.fromCharCode(b);
      window.harnessEvents.push({ kind: 'data', base64: btoa(binary) });
    };
    socket.onclose = (e) => window.harnessEvents.push({ kind: 'close', code: e.code, reason: e.reason, clean: e.wasClean });";
const TAKE: &str =
    "const taken = window.harnessEvents || []; window.harnessEvents = []; return taken;";

impl PageBrowser {
    pub fn new(name: &str, user: Option<String>, pages: Arc<Pages>, recorder: Recorder) -> Self {
        PageBrowser {
            name: name.to_string(),
            user,
            pages,
            recorder,
            tab: None,
            open: None,
        }
    }

    fn record(&self, spec: Option<&str>, what: What) {
        self.recorder.record(&self.name, spec, what);
    }

    fn injected(&self, description: Injected) {
        self.record(None, What::Injected { description });
    }

    /// The browser's tab ([`Pages::prepare`] readied it before the runner started).
    async fn tab(&mut self, entry: &str) -> anyhow::Result<String> {
        if let Some(tab) = &self.tab {
            return Ok(tab.clone());
        }
        let tab = self
            .pages
            .tab(&self.name, self.user.as_deref(), entry)
            .await?;
        self.tab = Some(tab.clone());
        Ok(tab)
    }

    /// Opens job `job`'s terminal through GitLab at `entry`, as GitLab's frontend does.
    pub async fn open(&mut self, job: u64, entry: &str) {
        self.close().await;
        self.record(
            Some("WH-1"),
            What::Open {
                browser: self.name.clone(),
                target: Target::new(job, Endpoint::Terminal).noting("Chromium"),
                protocols: vec![PROTOCOL.to_string()],
            },
        );
        let tab = match self.tab(entry).await {
            Ok(tab) => tab,
            Err(e) => {
                return self.injected(Injected::Chromium {
                    problem: format!("open a page: {e:#}"),
                })
            }
        };
        let url = format!("ws://{entry}/-/jobs/{job}/terminal.ws");
        if let Err(e) = self.pages.execute(&tab, OPEN, vec![json!(url)]).await {
            return self.injected(Injected::Chromium {
                problem: format!("open a WebSocket: {e:#}"),
            });
        }
        let (ended_tx, ended) = watch::channel(false);
        let (answered_tx, mut answered) = watch::channel(false);
        let reader = tokio::spawn(read(
            self.pages.clone(),
            tab,
            self.name.clone(),
            self.recorder.clone(),
            answered_tx,
            ended_tx,
        ));
        let _ = tokio::time::timeout(SETTLE, answered.wait_for(|a| *a)).await;
        self.open = Some((reader, ended));
    }

    /// Types `text` into the open terminal: one binary message of its UTF-8.
    pub async fn type_text(&mut self, text: &str) {
        let (Some(tab), true) = (self.tab.clone(), self.connected()) else {
            return self.injected(Injected::NothingToTypeInto {
                browser: self.name.clone(),
            });
        };
        let sent = self
            .pages
            .execute(
                &tab,
                "const s = window.harnessSocket; if (!s || s.readyState !== 1) return false;
                 s.send(new TextEncoder().encode(arguments[0])); return true;",
                vec![json!(text)],
            )
            .await;
        if matches!(sent, Ok(Value::Bool(true))) {
            self.record(
                None,
                What::Typed {
                    browser: self.name.clone(),
                    bytes: text.len(),
                    preview: preview(text.as_bytes()),
                    text: text.to_string(),
                },
            );
        }
    }

    /// Closes the terminal (close 1000, as `WebSocket.close()`) and waits for its end.
    pub async fn close(&mut self) {
        let (Some(tab), Some((reader, mut ended))) = (self.tab.clone(), self.open.take()) else {
            return;
        };
        let _ = self
            .pages
            .execute(
                &tab,
                "if (window.harnessSocket) window.harnessSocket.close(1000);",
                Vec::new(),
            )
            .await;
        let _ = tokio::time::timeout(SETTLE, ended.wait_for(|e| *e)).await;
        reader.abort();
    }

    pub fn connected(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|(_, ended)| !*ended.borrow())
    }

    /// Waits until the open connection ends by itself.
    pub async fn closed(&mut self) {
        if let Some((_, ended)) = self.open.as_mut() {
            let _ = ended.wait_for(|e| *e).await;
        }
    }
}

impl Plays for PageBrowser {
    fn name(&self) -> &str {
        &self.name
    }

    async fn take(&mut self, step: BrowserStep<'_>, entry: &str) {
        match step {
            BrowserStep::Open(Open { job, .. }) => self.open(*job, entry).await,
            BrowserStep::Type { text, repeat } => self.type_text(&text.repeat(repeat)).await,
            BrowserStep::Close => self.close().await,
            // `can_play` lets no other step through.
            BrowserStep::Fetch { .. } | BrowserStep::Vanish => {}
        }
    }

    async fn closed(&mut self) {
        PageBrowser::closed(self).await
    }
}

/// Fetches the page's WebSocket events and records them, until the close.
async fn read(
    pages: Arc<Pages>,
    tab: String,
    name: String,
    recorder: Recorder,
    answered: watch::Sender<bool>,
    ended: watch::Sender<bool>,
) {
    let record = |spec: Option<&str>, what: What| recorder.record(&name, spec, what);
    loop {
        let events = match pages.execute(&tab, TAKE, Vec::new()).await {
            Ok(Value::Array(events)) => events,
            Ok(_) | Err(_) => {
                record(
                    Some("WS-6"),
                    What::Closed {
                        browser: name.clone(),
                        close: Close::Abnormal,
                        pings: "(Chromium's page is gone)".into(),
                    },
                );
                break;
            }
        };
        for event in events {
            match event["kind"].as_str() {
                Some("open") => {
                    let protocol = event["protocol"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .map(str::to_string);
                    record(
                        Some("WH-2"),
                        What::Answer {
                            browser: name.clone(),
                            status: 101,
                            protocol,
                            body: String::new(),
                        },
                    );
                    answered.send_replace(true);
                }
                Some("data") => {
                    let bytes = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        event["base64"].as_str().unwrap_or_default(),
                    )
                    .unwrap_or_default();
                    record(None, What::output(&name, &bytes));
                }
                _ => {
                    if !*answered.borrow() {
                        // A page learns no status of a refused handshake: only 1006.
                        record(
                            None,
                            What::Answer {
                                browser: name.clone(),
                                status: 0,
                                protocol: None,
                                body:
                                    "Chromium's WebSocket did not open (a page sees no HTTP status)"
                                        .into(),
                            },
                        );
                        answered.send_replace(true);
                    }
                    let code = event["code"].as_u64().unwrap_or(1006) as u16;
                    let close = if code == 1006 {
                        Close::Abnormal
                    } else {
                        Close::Frame {
                            code,
                            reason: event["reason"].as_str().unwrap_or_default().to_string(),
                        }
                    };
                    let spec = if code == 1000 { "WS-7" } else { "WS-6" };
                    record(
                        Some(spec),
                        What::Closed {
                            browser: name.clone(),
                            close,
                            pings: String::new(),
                        },
                    );
                    ended.send_replace(true);
                    return;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    answered.send_replace(true);
    ended.send_replace(true);
}
