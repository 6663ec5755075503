//! Bad input gets a defined answer, and other sessions keep working.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use session_server::machine::sim::SimMachine;
use session_server::machine::Machine;
use session_server::net::TokioNet;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn two_sessions(
    machine: Arc<dyn Machine>,
) -> (
    World,
    session_server::coordinator::api::SessionInfo,
    session_server::coordinator::api::SessionInfo,
) {
    let world = world("shell", 60, machine, |p| {
        p.limits.header_timeout = Duration::from_millis(300)
    })
    .await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    world.gitlab.push(job(2, &["sleep 600"], &[]));
    let (one, two) = (world.session(1).await, world.session(2).await);
    (world, one, two)
}

/// The other session still answers `echo`.
async fn still_works(session: &session_server::coordinator::api::SessionInfo) {
    let mut ws = connect(&TokioNet, session, &[]).await;
    type_text(&mut ws, "echo alive\r").await;
    read_until(&mut ws, "alive\r\n").await;
}

#[tokio::test]
async fn malformed_http_is_400() {
    let (_world, one, two) = two_sessions(Arc::new(SimMachine)).await;
    let (status, _) = raw_exchange(&TokioNet, &one, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert_eq!(status, 400);
    still_works(&two).await;
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let (_world, one, two) = two_sessions(Arc::new(SimMachine)).await;
    let big = "x".repeat(64 * 1024);
    let (status, _) = raw_exchange(
        &TokioNet,
        &one,
        request_head(&one, "/exec", &[("X-Big", &big)]).as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    still_works(&two).await;
}

#[tokio::test]
async fn a_client_sending_headers_too_slowly_is_cut_off() {
    let (_world, one, two) = two_sessions(Arc::new(SimMachine)).await;
    let mut slow = dial_tls(&TokioNet, &one).await.unwrap();
    slow.write_all(b"GET /session/").await.unwrap();
    // Meanwhile others are served.
    still_works(&two).await;
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the slow client's connection was not closed");
}

#[tokio::test]
async fn upgrade_without_a_key_is_400_and_spawns_no_shell() {
    let machine = Arc::new(Counting::default());
    let (_world, one, two) = two_sessions(machine.clone()).await;
    let auth = ("Authorization", one.authorization.as_str());
    let headers = [
        auth,
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
    ];
    assert_eq!(status(&TokioNet, &one, "/exec", &headers).await, 400);
    assert_eq!(
        machine.terminals.load(Ordering::SeqCst),
        0,
        "a shell was spawned for a bad upgrade"
    );
    still_works(&two).await;
    assert_eq!(machine.terminals.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unauthorized_request_spawns_no_shell() {
    let machine = Arc::new(Counting::default());
    let (_world, one, _two) = two_sessions(machine.clone()).await;
    assert!(matches!(
        open_terminal(&TokioNet, &one, Some("wrong"), &[]).await,
        Opened::Refused(401, _)
    ));
    assert_eq!(machine.terminals.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_does_not_block_others() {
    let (world, _one, two) = two_sessions(Arc::new(SimMachine)).await;
    let addr = world.runner.session_address().unwrap();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(&[0x16, 0x03]).await.unwrap(); // a TLS record that never completes
    still_works(&two).await;
}
