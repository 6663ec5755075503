//! The terminal protocol over real TLS sockets (WS-1..7).

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use session_server::machine::sim::SimMachine;
use session_server::net::TokioNet;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

async fn running(
    tweak: impl FnOnce(&mut session_server::runner::RunnerParts<TokioNet>),
) -> (World, session_server::coordinator::api::SessionInfo) {
    let world = world("shell", 60, Arc::new(SimMachine), tweak).await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    let session = world.session(1).await;
    (world, session)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[tokio::test]
async fn base64_subprotocol_carries_base64_text_both_ways() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &["base64.terminal.gitlab.com"]).await;
    ws.send(Message::text(B64.encode("echo hi\r")))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("hi\r\n$ ") {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                seen.extend(B64.decode(t.as_str()).expect("server output is base64"))
            }
            Some(Ok(Message::Binary(_))) => panic!("binary frame on the base64 subprotocol"),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

// SPEC: WS-3, WS-8
#[tokio::test]
async fn invalid_base64_is_refused_with_1007() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &["base64.terminal.gitlab.com"]).await;
    ws.send(Message::text("not base64!")).await.unwrap();
    assert_eq!(
        read_close(&mut ws).await,
        Some((1007, "invalid base64".into()))
    );
}

#[tokio::test]
async fn text_frames_on_the_binary_subprotocol_are_taken_as_data() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &["terminal.gitlab.com"]).await;
    ws.send(Message::text("echo from text\r")).await.unwrap();
    read_until(&mut ws, "from text\r\n").await;
}

#[tokio::test]
async fn a_large_paste_is_delivered_whole() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    let paste = "a".repeat(100 * 1024);
    type_text(&mut ws, &format!("echo {paste}x\r")).await;
    // The shell echoes the typed line, then prints it: both whole.
    let seen = read_until(&mut ws, &format!("\r\n{paste}x\r\n")).await;
    assert_eq!(seen.matches(&format!("{paste}x")).count(), 2);
}

// SPEC: WS-5, WS-8
#[tokio::test]
async fn a_message_over_the_limit_is_refused_with_1009() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    let too_big = vec![b'a'; session_server::protocol::MAX_MESSAGE + 1];
    let _ = ws.send(Message::binary(too_big)).await;
    let (code, _) = read_close(&mut ws).await.expect("a close frame");
    assert_eq!(code, 1009);
}

#[tokio::test]
async fn output_arrives_in_order_without_loss() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    type_text(&mut ws, "seq 20000\r").await;
    let seen = read_until(&mut ws, "\r\n20000\r\n$ ").await;
    let start = seen.find("\r\n1\r\n").expect("first line") + 2;
    let lines: Vec<&str> = seen[start..]
        .trim_end_matches("$ ")
        .split_terminator("\r\n")
        .collect();
    let expected: Vec<String> = (1..=20000).map(|i| i.to_string()).collect();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn client_close_is_answered_with_1000() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    assert_eq!(read_close(&mut ws).await.map(|(code, _)| code), Some(1000));
}

#[tokio::test]
async fn shell_exit_closes_with_1000_after_all_output() {
    let (_world, session) = running(|_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    type_text(&mut ws, "echo last words\rexit\r").await;
    read_until(&mut ws, "last words\r\n").await;
    assert_eq!(
        read_close(&mut ws).await,
        Some((1000, "shell exited".into()))
    );
}

#[tokio::test]
async fn server_pings_and_a_silent_peer_is_dropped() {
    let (_world, session) = running(|p| {
        p.timing.ping_interval = Duration::from_millis(100);
        p.timing.pong_timeout = Duration::from_millis(200);
    })
    .await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    // A reading client answers pings (tungstenite replies by itself) and stays.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(650);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await {
        if let Message::Ping(payload) = message {
            assert!(payload.is_empty(), "WS-4: pings carry no payload");
            pings += 1;
        }
    }
    assert!(pings >= 3, "pings every 100 ms, saw {pings} in 650 ms");
    // Now go silent: no reads, so no pongs. The server gives up on us and frees the slot.
    let freed = async {
        loop {
            match open_terminal(&TokioNet, &session, Some(&session.authorization), &[]).await {
                Opened::Upgraded(..) => return,
                Opened::Refused(423, _) => tokio::time::sleep(Duration::from_millis(50)).await,
                Opened::Refused(s, b) => panic!("{s} {b}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), freed)
        .await
        .expect("the silent peer's slot is freed");
    drop(ws);
}
