//! Interop with a client not written in Rust: Python's `websockets` package
//! (install it with `pip install websockets`; .ci/run does).

mod support;

use std::process::Command;
use std::sync::Arc;

use session_server::machine::sim::SimMachine;
use support::*;

async fn python_client(subprotocol: &str) {
    let world = world("shell", 60, Arc::new(SimMachine), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    let session = world.session(1).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/terminal_client.py"
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("SESSION_URL", &session.url)
        .env("SESSION_TOKEN", &session.authorization)
        .env("SESSION_CERT", &session.certificate)
        .env("SUBPROTOCOL", subprotocol)
        .output()
        .await
        .expect("python3 runs (install Python 3)");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && out.contains("OK"),
        "python websockets client failed ({}); if the module is missing: pip install websockets\nstdout: {out}\nstderr: {err}",
        output.status
    );
}

#[test]
fn python_websockets_is_installed() {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these interop tests need Python 3 with `websockets`: pip install websockets"
    );
}

#[tokio::test]
async fn python_websockets_client_on_the_binary_subprotocol() {
    python_client("terminal.gitlab.com").await;
}

#[tokio::test]
async fn python_websockets_client_on_the_base64_subprotocol() {
    python_client("base64.terminal.gitlab.com").await;
}
