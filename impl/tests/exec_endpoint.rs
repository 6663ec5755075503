//! The terminal endpoint over real TLS sockets: every status of EX-1..7, RT-1/2.

mod support;

use std::sync::Arc;
use std::time::Duration;

use session_server::machine::sim::SimMachine;
use session_server::net::TokioNet;
use support::*;

async fn running_shell_job(
    session_timeout: i64,
) -> (World, session_server::coordinator::api::SessionInfo) {
    let world = world("shell", session_timeout, Arc::new(SimMachine), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    let session = world.session(1).await;
    (world, session)
}

const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[tokio::test]
async fn exec_without_token_is_401() {
    let (_world, session) = running_shell_job(60).await;
    assert!(matches!(
        open_terminal(&TokioNet, &session, None, &[]).await,
        Opened::Refused(401, _)
    ));
}

#[tokio::test]
async fn exec_with_bearer_prefix_or_wrong_token_is_401() {
    let (_world, session) = running_shell_job(60).await;
    let bearer = format!("Bearer {}", session.authorization);
    for token in [bearer.as_str(), "wrong", &session.authorization[..63]] {
        let refused = open_terminal(&TokioNet, &session, Some(token), &[]).await;
        assert!(
            matches!(refused, Opened::Refused(401, _)),
            "token {token:?}"
        );
    }
}

#[tokio::test]
async fn another_jobs_token_is_401() {
    let world = world("shell", 60, Arc::new(SimMachine), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 600"], &[]));
    world.gitlab.push(job(2, &["sleep 600"], &[]));
    let (one, two) = (world.session(1).await, world.session(2).await);
    assert_ne!(one.authorization, two.authorization);
    assert!(matches!(
        open_terminal(&TokioNet, &one, Some(&two.authorization), &[]).await,
        Opened::Refused(401, _)
    ));
}

#[tokio::test]
async fn plain_get_is_405_and_missing_key_is_400() {
    let (_world, session) = running_shell_job(60).await;
    let auth = ("Authorization", session.authorization.as_str());
    assert_eq!(status(&TokioNet, &session, "/exec", &[auth]).await, 405);
    assert_eq!(
        status(
            &TokioNet,
            &session,
            "/exec",
            &[auth, UPGRADE[0], UPGRADE[1], UPGRADE[2]]
        )
        .await,
        400
    );
}

#[tokio::test]
async fn unauthorized_checks_come_before_the_upgrade_checks() {
    let (_world, session) = running_shell_job(60).await;
    assert_eq!(status(&TokioNet, &session, "/exec", &[]).await, 401);
}

#[tokio::test]
async fn cross_site_origin_is_403() {
    let (_world, session) = running_shell_job(60).await;
    let mut headers = UPGRADE.to_vec();
    headers.push(("Authorization", &session.authorization));
    headers.push(("Origin", "https://evil.example"));
    assert_eq!(status(&TokioNet, &session, "/exec", &headers).await, 403);
}

#[tokio::test]
async fn unknown_session_and_unknown_endpoint_are_404() {
    let (_world, session) = running_shell_job(60).await;
    let auth = ("Authorization", session.authorization.as_str());
    assert_eq!(status(&TokioNet, &session, "/nope", &[auth]).await, 404);
    assert_eq!(status(&TokioNet, &session, "", &[auth]).await, 404);
    let mut other = session.clone();
    other.url = other
        .url
        .replace(&session.url[session.url.len() - 8..], "00000000");
    assert_eq!(status(&TokioNet, &other, "/exec", &[auth]).await, 404);
}

#[tokio::test]
async fn exec_answers_101_with_the_binary_subprotocol_first() {
    let (_world, session) = running_shell_job(60).await;
    let offered = ["base64.terminal.gitlab.com", "terminal.gitlab.com"];
    let Opened::Upgraded(mut ws, protocol) =
        open_terminal(&TokioNet, &session, Some(&session.authorization), &offered).await
    else {
        panic!("refused")
    };
    assert_eq!(protocol.as_deref(), Some("terminal.gitlab.com"));
    type_text(&mut ws, "echo hello\r").await;
    read_until(&mut ws, "hello\r\n$ ").await;
}

#[tokio::test]
async fn a_client_offering_neither_subprotocol_gets_101_without_one() {
    let (_world, session) = running_shell_job(60).await;
    let mut headers = UPGRADE.to_vec();
    headers.push(("Authorization", &session.authorization));
    headers.push(("Sec-WebSocket-Protocol", "chat"));
    let (status, answer) = raw_exchange(
        &TokioNet,
        &session,
        request_head(&session, "/exec", &headers).as_bytes(),
    )
    .await;
    assert_eq!(status, 101);
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_client_offering_no_subprotocol_gets_raw_bytes() {
    let (_world, session) = running_shell_job(60).await;
    let Opened::Upgraded(mut ws, protocol) =
        open_terminal(&TokioNet, &session, Some(&session.authorization), &[]).await
    else {
        panic!("refused")
    };
    assert_eq!(protocol, None);
    type_text(&mut ws, "echo raw\r").await;
    read_until(&mut ws, "raw\r\n").await;
}

#[tokio::test]
async fn a_query_string_on_exec_is_accepted() {
    let (_world, session) = running_shell_job(60).await;
    let auth = ("Authorization", session.authorization.as_str());
    // Routed to exec (not 404): it then answers 405 to a plain GET.
    assert_eq!(
        status(&TokioNet, &session, "/exec?cols=80", &[auth]).await,
        405
    );
}

#[tokio::test]
async fn second_terminal_is_423_and_the_first_keeps_working() {
    let (_world, session) = running_shell_job(60).await;
    let mut first = connect(&TokioNet, &session, &["terminal.gitlab.com"]).await;
    for offered in [
        &["terminal.gitlab.com"][..],
        &["base64.terminal.gitlab.com"],
        &[],
    ] {
        let second =
            open_terminal(&TokioNet, &session, Some(&session.authorization), offered).await;
        assert!(
            matches!(second, Opened::Refused(423, _)),
            "offering {offered:?}"
        );
    }
    type_text(&mut first, "echo still here\r").await;
    read_until(&mut first, "still here\r\n").await;
}

#[tokio::test]
async fn after_the_first_leaves_a_new_terminal_gets_a_new_shell() {
    let (_world, session) = running_shell_job(60).await;
    let mut first = connect(&TokioNet, &session, &[]).await;
    type_text(&mut first, "exit\r").await;
    assert_eq!(
        read_close(&mut first).await,
        Some((1000, "shell exited".into()))
    );
    let mut again = loop {
        match open_terminal(&TokioNet, &session, Some(&session.authorization), &[]).await {
            Opened::Upgraded(ws, _) => break ws,
            Opened::Refused(423, _) => tokio::time::sleep(Duration::from_millis(20)).await,
            Opened::Refused(s, b) => panic!("{s} {b}"),
        }
    };
    read_until(&mut again, "$ ").await;
}

/// A simulated machine whose executor prepares job 1 for `prepare`.
fn preparing(prepare: Duration) -> Arc<dyn session_server::machine::Machine> {
    let timings = session_server::machine::JobTimings {
        prepare,
        ..Default::default()
    };
    Arc::new(session_server::machine::timed::Timed::new(SimMachine).with_job(1, timings))
}

#[tokio::test]
async fn terminal_requested_while_the_job_prepares_is_503_after_the_wait() {
    let world = world("shell", 60, preparing(Duration::from_secs(30)), |p| {
        p.limits.attach_wait = Duration::from_millis(300)
    })
    .await;
    world.gitlab.push(job(1, &["true"], &[]));
    let session = world.session(1).await;
    let started = std::time::Instant::now();
    assert!(matches!(connect_status(&session).await, 503));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn terminal_requested_while_the_job_prepares_is_attached_once_it_runs() {
    let world = world("shell", 60, preparing(Duration::from_millis(500)), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 60"], &[]));
    let session = world.session(1).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    read_until(&mut ws, "$ ").await;
}

#[tokio::test]
async fn custom_executor_gives_500() {
    let world = world("custom", 60, Arc::new(SimMachine), |_| {}).await;
    world.gitlab.push(job(1, &["sleep 60"], &[]));
    let session = world.session(1).await;
    assert!(
        !world.gitlab.taken(1).await.info.features.terminal,
        "JOB-1: custom announces no terminal"
    );
    match open_terminal(&TokioNet, &session, Some(&session.authorization), &[]).await {
        Opened::Refused(500, body) => assert!(body.contains("not yet supported"), "{body}"),
        _ => panic!("expected 500"),
    }
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_400() {
    let (world, _session) = running_shell_job(60).await;
    let addr = world.runner.session_address().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400 Bad Request"), "{answer}");
}

#[tokio::test]
async fn job_request_carries_the_session_and_features() {
    let (world, session) = running_shell_job(60).await;
    let request = world.gitlab.taken(1).await;
    assert!(request.info.features.session && request.info.features.terminal);
    let id = session.url.rsplit('/').next().unwrap();
    assert!(session.url.starts_with("https://127.0.0.1:") && session.url.contains("/session/"));
    for hex in [id, session.authorization.as_str()] {
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }
    assert!(session
        .certificate
        .starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn without_listen_address_no_session_is_offered() {
    let gitlab = Gitlab::default();
    use session_server::net::Net as _;
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let addr = local(listener.local_addr().unwrap());
    gitlab.serve(listener);
    let toml = config_toml(&addr, "shell", "", 60);
    let config = session_server::config::Config::parse(&toml).unwrap();
    let parts = session_server::runner::RunnerParts::new(
        config,
        TokioNet,
        Arc::new(SimMachine),
        session_server::rng::Rng::from_os(),
    );
    let runner = session_server::runner::Runner::start(parts).await.unwrap();
    gitlab.push(job(1, &["true"], &[]));
    let request = gitlab.taken(1).await;
    assert!(request.session.is_none() && !request.info.features.session);
    assert!(runner.session_address().is_none());
}

async fn connect_status(session: &session_server::coordinator::api::SessionInfo) -> u16 {
    match open_terminal(&TokioNet, session, Some(&session.authorization), &[]).await {
        Opened::Upgraded(..) => 101,
        Opened::Refused(status, _) => status,
    }
}
