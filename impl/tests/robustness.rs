//! The server under a hostile or sloppy world (WS-7, WS-8, EX-4, EX-7), over
//! real TLS sockets on 127.0.0.1: pastes into a busy terminal, shells that
//! leave background jobs, Ping floods that read nothing, reconnects at once,
//! protocol violations.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use session_server::coordinator::api::SessionInfo;
use session_server::machine::sim::SimMachine;
use session_server::machine::Machine;
use session_server::net::TokioNet;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Bound of every wait below.
const LIMIT: Duration = Duration::from_secs(10);

async fn running(
    machine: Arc<dyn Machine>,
    tweak: impl FnOnce(&mut session_server::runner::RunnerParts<TokioNet>),
) -> (World, SessionInfo) {
    let world = world("shell", 60, machine, tweak).await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    let session = world.session(1).await;
    (world, session)
}

/// Reads until a frame that `wanted` picks; panics on the end or after LIMIT.
async fn next_such<S, T>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    what: &str,
    wanted: impl Fn(&Message) -> Option<T>,
) -> T
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let found = timeout(LIMIT, async {
        loop {
            match ws.next().await {
                Some(Ok(m)) => {
                    if let Some(t) = wanted(&m) {
                        return t;
                    }
                }
                other => panic!("connection ended before {what}: {other:?}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {LIMIT:?}"))
}

#[tokio::test]
async fn a_paste_into_a_busy_terminal_leaves_pings_and_close_answered() {
    let (_world, session) = running(Arc::new(SimMachine), |_| {}).await;
    let mut ws = connect(&TokioNet, &session, &["terminal.gitlab.com"]).await;
    type_text(&mut ws, "sleep 100\r").await;
    read_until(&mut ws, "sleep 100\r\n").await;
    // More than the terminal's buffer takes while its foreground command
    // reads nothing: the rest waits in the server.
    ws.send(Message::binary(vec![b'x'; 256 * 1024]))
        .await
        .unwrap();
    for round in 0..3u8 {
        ws.send(Message::Ping(vec![round].into())).await.unwrap();
        let pong = next_such(&mut ws, "a Pong", |m| match m {
            Message::Pong(p) => Some(p.clone()),
            _ => None,
        })
        .await;
        assert_eq!(pong.as_ref(), &[round]);
    }
    ws.send(Message::Close(None)).await.unwrap();
    let closed = timeout(LIMIT, read_close(&mut ws)).await;
    assert!(
        closed.is_ok(),
        "the close frame was not answered while the paste waits"
    );
    // The slot is free again at once (EX-4).
    drop(connect(&TokioNet, &session, &[]).await);
}

#[tokio::test]
async fn a_shell_that_exits_leaving_a_background_job_closes_the_terminal() {
    let (world, session) = running(Arc::new(os_machine()), |_| {}).await;
    let mut ws = connect(&TokioNet, &session, &["terminal.gitlab.com"]).await;
    // The typed line echoes as `...:end"`; only the output has `:end` + CRLF.
    type_text(&mut ws, "sleep 300 & echo \"bg=$!:end\"\n").await;
    let seen = read_until(&mut ws, ":end\r\n").await;
    let (_, rest) = seen.rsplit_once("bg=").unwrap();
    let background: i32 = rest.split(':').next().unwrap().parse().unwrap();
    type_text(&mut ws, "exit\n").await;
    let closed = timeout(LIMIT, read_close(&mut ws)).await;
    assert_eq!(
        closed.expect("no close frame while the background job holds the terminal"),
        Some((1000, "shell exited".into()))
    );
    // The rest of the terminal's session is hung up, as closing a window does.
    let gone = timeout(LIMIT, async {
        while alive(background) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the background job outlived its terminal");
    // A new connection gets a new shell.
    let mut again = connect(&TokioNet, &session, &[]).await;
    type_text(&mut again, "echo ag''ain\n").await;
    read_until(&mut again, "again\r\n").await;
    drop(world);
}

/// Whether `pid` runs (a zombie, waiting for a parent that may never reap it, does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test]
async fn a_ping_flood_that_reads_nothing_is_cut_off_with_bounded_memory() {
    let (_world, session) = running(Arc::new(SimMachine), |_| {}).await;
    let mut tls = raw_upgrade(&session).await;
    let before = resident_bytes();
    let ping = masked_frame(0x89, &[b'p'; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 256)
        .collect();
    // Never reads: every Pong owed stays with the server.
    let flood = timeout(LIMIT, async {
        loop {
            if tls.write_all(&burst).await.is_err() {
                return Ok(()); // the server cut it off
            }
            let grown = resident_bytes().saturating_sub(before);
            if grown > 64 << 20 {
                return Err(grown);
            }
        }
    })
    .await;
    match flood {
        Ok(Ok(())) => {}
        Ok(Err(grown)) => panic!("memory grew by {} MiB under a Ping flood", grown >> 20),
        Err(_) => panic!("the server kept taking Pings for {LIMIT:?} from a peer that reads none"),
    }
}

/// This process's resident memory, from /proc.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_reconnect_right_after_a_close_reply_gets_101_every_time() {
    let (_world, session) = running(Arc::new(os_machine()), |_| {}).await;
    for round in 0..200 {
        let mut ws = match open_terminal(&TokioNet, &session, Some(&session.authorization), &[])
            .await
        {
            Opened::Upgraded(ws, _) => ws,
            Opened::Refused(status, body) => {
                panic!("round {round}: a reconnect right after the close reply got {status} {body}")
            }
        };
        ws.send(Message::Close(None)).await.unwrap();
        let reply = timeout(LIMIT, read_close(&mut ws)).await;
        assert!(reply.is_ok(), "round {round}: no close reply");
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let (_world, session) = running(Arc::new(SimMachine), |_| {}).await;
    let violations: [(&str, Vec<u8>); 5] = [
        ("an unmasked frame", vec![0x82, 0x01, b'x']),
        ("reserved bits", masked_frame(0xC2, b"x")),
        ("an unknown opcode", masked_frame(0x83, b"x")),
        ("a fragmented control frame", masked_frame(0x09, b"x")),
        (
            "an oversized control frame",
            masked_frame(0x89, &[b'x'; 126]),
        ),
    ];
    for (what, frame) in violations {
        let mut tls = raw_upgrade(&session).await;
        tls.write_all(&frame).await.unwrap();
        let code = timeout(LIMIT, server_close_code(&mut tls)).await;
        assert_eq!(code.ok().flatten(), Some(1002), "{what}");
    }
}

#[tokio::test]
async fn an_http_1_0_upgrade_is_400_before_any_shell_starts() {
    let machine = Arc::new(Counting::default());
    let (_world, session) = running(machine.clone(), |_| {}).await;
    let head = upgrade_head(&session).replacen("HTTP/1.1", "HTTP/1.0", 1);
    let (status, _) = raw_exchange(&TokioNet, &session, head.as_bytes()).await;
    assert_eq!(status, 400);
    assert_eq!(
        machine.terminals.load(Ordering::SeqCst),
        0,
        "a shell was spawned for an HTTP/1.0 upgrade"
    );
}

#[tokio::test]
async fn a_real_terminal_gets_the_machines_home_not_the_hosts() {
    let (_world, session) = running(Arc::new(os_machine()), |_| {}).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    type_text(&mut ws, "echo \"home=$HOME:end\"\n").await;
    let seen = read_until(&mut ws, ":end\r\n").await;
    let expected = format!("home={}:end\r\n", private_home().display());
    assert!(seen.contains(&expected), "{seen:?}");
}

/// A valid upgrade request for the session's terminal.
fn upgrade_head(session: &SessionInfo) -> String {
    request_head(
        session,
        "/exec",
        &[
            ("Authorization", &session.authorization),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
}

/// A WebSocket connection spoken byte by byte: after the 101, the caller
/// writes frames as it likes.
async fn raw_upgrade(
    session: &SessionInfo,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = dial_tls(&TokioNet, session).await.expect("TLS");
    tls.write_all(upgrade_head(session).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let read = timeout(LIMIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tls.read_u8().await.expect("the upgrade's answer"));
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to the upgrade");
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tls
}

/// A client frame: first byte as given (FIN, RSV, opcode), masked payload.
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![first];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames (unmasked, small) until a close frame; its code.
async fn server_close_code<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<u16> {
    loop {
        let first = stream.read_u8().await.ok()?;
        let len = match stream.read_u8().await.ok()? & 0x7f {
            126 => usize::from(stream.read_u16().await.ok()?),
            127 => usize::try_from(stream.read_u64().await.ok()?).ok()?,
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.ok()?;
        if first & 0x0f == 0x8 {
            return payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]]));
        }
    }
}
