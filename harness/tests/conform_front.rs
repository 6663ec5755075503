//! The harness's GitLab front door under `conform --listen`: a runner that keeps
//! its HTTP connections alive across scenarios (as Python's `requests` does)
//! never makes the harness panic, never talks to a finished scenario, and a job
//! request that arrives while nothing is queued is held (long polling) and
//! answered with the next scenario's job at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use session_harness::actors::gitlab::RUNNER_TOKEN;
use session_harness::actors::gitlab::{Gitlab, JobDef};
use session_harness::conform::front::{Front, Holding};
use session_harness::trace::Recorder;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics in any thread (the front's tasks included), then reports them as usual.
fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn gitlab_with_job(id: u64) -> Gitlab {
    let gitlab = Gitlab::new(Recorder::default(), RUNNER_TOKEN, None);
    gitlab.add_job(JobDef {
        id,
        owner: "alice".into(),
        project: "p".into(),
        script: vec!["sleep 1".into()],
        timeout: Duration::from_secs(60),
        variables: Vec::new(),
        image: None,
        webide: false,
        services: None,
    });
    gitlab
}

/// A keep-alive HTTP/1.1 connection to the front, like a runner's.
async fn keep_alive(front: &Front) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(front.entry()).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// A job request as the Python runner sends it: features, no `session` object.
fn job_request(front: &Front) -> http::Request<Full<Bytes>> {
    let body = serde_json::json!({
        "token": RUNNER_TOKEN,
        "info": {
            "name": "gitlab-python-runner", "version": "14.3.20", "executor": "shell",
            "shell": "bash", "features": {"session": true, "terminal": true},
        },
    });
    http::Request::post("/api/v4/jobs/request")
        .header(http::header::HOST, front.entry())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Status and body of a job request on `sender`; `None` if the connection failed.
async fn ask(sender: &mut SendRequest<Full<Bytes>>, front: &Front) -> Option<(u16, String)> {
    sender.ready().await.ok()?;
    let response = sender.send_request(job_request(front)).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_across_scenarios_never_panic_nor_reach_an_old_scenario() {
    count_panics();
    let front = Front::bind("127.0.0.1:0", Holding::UntilQueued)
        .await
        .unwrap();
    for scenario in 1..=5u64 {
        front.serve(
            gitlab_with_job(scenario),
            vec![scenario],
            Recorder::default(),
        );
        let mut runner = keep_alive(&front).await;
        let (status, body) = ask(&mut runner, &front).await.expect("an answer");
        assert_eq!(status, 201, "scenario {scenario}: {body}");
        assert!(body.contains(&format!("\"id\":{scenario}")), "{body}");
        front.idle();
        // The same connection, after its scenario: it is closed, or answered
        // by the GitLab of now, never by the finished scenario.
        let again = tokio::time::timeout(Duration::from_secs(2), ask(&mut runner, &front)).await;
        if let Ok(Some((status, body))) = again {
            assert_ne!(status, 201, "a finished scenario answered: {body}");
        }
        // Stale connections are many in a long run: let them all meet a switch.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(front);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the front panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_request_while_nothing_is_queued_is_held_and_gets_the_next_job_at_once() {
    let front = Front::bind("127.0.0.1:0", Holding::UntilQueued)
        .await
        .unwrap();
    let mut runner = keep_alive(&front).await;
    let asked = Instant::now();
    let held = ask(&mut runner, &front);
    let queue_later = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        front.serve(gitlab_with_job(7), vec![7], Recorder::default());
    };
    let (answer, ()) = tokio::join!(held, queue_later);
    let (status, body) = answer.expect("an answer");
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"id\":7"), "{body}");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "answered after {waited:?}: held until the job was queued, then at once"
    );
}
