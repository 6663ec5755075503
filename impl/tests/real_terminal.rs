//! A real PTY behind the session server: the shell executor on the operating system.

mod support;

use std::sync::Arc;
use std::time::Duration;

use session_server::net::TokioNet;
use support::*;

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): read its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Reads the first number printed after `marker`.
fn number_after(text: &str, marker: &str) -> i32 {
    let rest = &text[text.rfind(marker).expect("marker") + marker.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .expect("a pid")
}

#[tokio::test]
async fn a_real_pty_answers_echo_hello_and_leaves_no_process() {
    let world = world("shell", 60, Arc::new(os_machine()), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 30"], &[]));
    let session = world.session(1).await;
    let mut ws = connect(&TokioNet, &session, &["terminal.gitlab.com"]).await;
    type_text(&mut ws, "echo hello\n").await;
    read_until(&mut ws, "hello\r\n").await;
    // A background process in the terminal, and the shell itself.
    // The typed line echoes as `...:end"`; only the output has `:end` + CRLF.
    type_text(&mut ws, "sleep 1000 & echo \"bg=$! sh=$$:end\"\n").await;
    let seen = read_until(&mut ws, ":end\r\n").await;
    let (background, shell) = (number_after(&seen, "bg="), number_after(&seen, "sh="));
    assert!(alive(background) && alive(shell));
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await
        .unwrap();
    read_close(&mut ws).await;
    let gone = async {
        while alive(background) || alive(shell) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the terminal's processes are gone after close");
}

#[tokio::test]
async fn a_real_job_script_runs_and_its_log_reaches_gitlab() {
    let world = world("shell", 60, Arc::new(os_machine()), |_| {}).await;
    world.gitlab.push(job(
        1,
        &["echo from-the-script", "echo to-stderr >&2", "exit 4"],
        &[],
    ));
    let end = world.gitlab.finished(1).await;
    assert_eq!((end.state.as_str(), end.exit_code), ("failed", Some(4)));
    let trace = world.gitlab.trace(1);
    assert!(
        trace.contains("from-the-script") && trace.contains("to-stderr"),
        "{trace}"
    );
}
