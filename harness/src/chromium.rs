//! Headless Chromium, driven through chromedriver's W3C WebDriver API.
//!
//! A small client of its own rather than a WebDriver crate: the harness needs
//! a dozen commands (open a page, find, click, type, run a script, windows,
//! screenshots), and speaks them with the hyper and serde_json it already
//! links; a crate such as fantoccini would add its own dependency tree (url,
//! cookie, webdriver) to every build of the harness.
//!
//! Debian's `chromium` and `chromium-driver` packages provide the two
//! programs. Run as root (CI, containers), Chromium needs `--no-sandbox`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to start listening.
const DRIVER_START: Duration = Duration::from_secs(10);

/// WebDriver's key for Enter.
pub const ENTER: &str = "\u{E007}";

/// The two programs, found on PATH.
#[derive(Clone, Debug)]
pub struct Programs {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Programs {
    /// `chromium` and `chromedriver` on PATH; the error says how to install them.
    pub fn find() -> Result<Programs, String> {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| on_path(name));
        match (chromium, on_path("chromedriver")) {
            (Some(chromium), Some(chromedriver)) => Ok(Programs {
                chromium,
                chromedriver,
            }),
            (chromium, driver) => Err(format!(
                "headless Chromium is not available ({} missing): install it with `apt-get install chromium chromium-driver`",
                [("chromium", chromium.is_none()), ("chromedriver", driver.is_none())]
                    .iter()
                    .filter(|(_, missing)| *missing)
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// One headless Chromium with its chromedriver; both end when it is dropped
/// (better: [`Chromium::quit`]).
pub struct Chromium {
    /// The driver's process group, Chromium's too.
    group: Option<libc::pid_t>,
    driver: Child,
    port: u16,
    session: String,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            // SAFETY: kill has no memory preconditions; the group is our child's.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Chromium {
    /// Starts chromedriver and a headless Chromium of 1280x900.
    pub async fn launch(programs: &Programs) -> anyhow::Result<Chromium> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(&programs.chromedriver)
            .arg(format!("--port={port}"))
            // Chromium joins the driver's own group: a drop (a failed test)
            // ends them all, not only the driver.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", programs.chromedriver.display()))?;
        let group = driver.id().and_then(|id| libc::pid_t::try_from(id).ok());
        let mut chromium = Chromium {
            group,
            driver,
            port,
            session: String::new(),
        };
        let give_up = tokio::time::Instant::now() + DRIVER_START;
        while chromium.raw(Method::GET, "/status", None).await.is_err() {
            if tokio::time::Instant::now() >= give_up {
                bail!("chromedriver did not listen on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            // The pages' origin may be https with the harness's self-signed certificate.
            "--ignore-certificate-errors",
        ];
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Chromium refuses to run as root with its sandbox.
            args.push("--no-sandbox");
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": programs.chromium, "args": args},
        }}});
        let created = chromium
            .raw(Method::POST, "/session", Some(capabilities))
            .await
            .context("starting Chromium through chromedriver")?;
        chromium.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver gave no session id: {created}"))?
            .to_string();
        Ok(chromium)
    }

    /// Ends the browser and its driver. (Dropped without it, only the driver
    /// is killed, and Chromium may outlive it.)
    pub async fn quit(mut self) {
        self.end().await;
    }

    pub(crate) async fn end(&mut self) {
        let _ = self.command(Method::DELETE, "", None).await;
        let _ = self.driver.kill().await;
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The element `css` selects, if there is one now.
    pub async fn find(&self, css: &str) -> anyhow::Result<Option<Element>> {
        let body = json!({"using": "css selector", "value": css});
        match self.command(Method::POST, "/element", Some(body)).await {
            Ok(found) => Ok(Some(Element(
                found[ELEMENT]
                    .as_str()
                    .ok_or_else(|| anyhow!("not an element: {found}"))?
                    .to_string(),
            ))),
            Err(e) if e.to_string().starts_with("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.command(
            Method::POST,
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Types `text` into `element` as a user would, key by key.
    pub async fn type_into(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        self.command(
            Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.command(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Polls `script` until it returns something other than null or false;
    /// the error names `what` and the last value.
    pub async fn wait_for(
        &self,
        what: &str,
        script: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.execute(script, Vec::new()).await?;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return Ok(value);
            }
            if tokio::time::Instant::now() >= give_up {
                bail!("{what}: not within {} s", timeout.as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser's windows (tabs).
    pub async fn windows(&self) -> anyhow::Result<Vec<String>> {
        let handles = self.command(Method::GET, "/window/handles", None).await?;
        Ok(serde_json::from_value(handles)?)
    }

    pub async fn window(&self) -> anyhow::Result<String> {
        let handle = self.command(Method::GET, "/window", None).await?;
        Ok(serde_json::from_value(handle)?)
    }

    /// Opens a new tab (not switched to) and names it.
    pub async fn new_tab(&self) -> anyhow::Result<String> {
        let tab = self
            .command(Method::POST, "/window/new", Some(json!({ "type": "tab" })))
            .await?;
        tab["handle"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("chromedriver gave no tab handle: {tab}"))
    }

    pub async fn switch_to(&self, handle: &str) -> anyhow::Result<()> {
        self.command(Method::POST, "/window", Some(json!({ "handle": handle })))
            .await
            .map(drop)
    }

    /// Closes the current tab, as a user closing it would.
    pub async fn close_window(&self) -> anyhow::Result<()> {
        self.command(Method::DELETE, "/window", None)
            .await
            .map(drop)
    }

    /// Writes a PNG of the current tab to `path` (its folder is created).
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let encoded = self.command(Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// A command of this session; its `value`, or the WebDriver error as
    /// `<error>: <message>`.
    async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        self.raw(method, &path, body).await
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        tokio::time::timeout(COMMAND_TIMEOUT, self.exchange(method.clone(), path, body))
            .await
            .map_err(|_| anyhow!("WebDriver {method} {path}: no answer within 30 s"))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("chromedriver's answer is not JSON ({status})"))?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        bail!(
            "{}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or_default()
        )
    }
}
