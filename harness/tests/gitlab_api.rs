//! The harness's GitLab speaks the runner API as GitLab does: one fixture per
//! message (job request in, job response out, job update, trace chunk).

use std::time::Duration;

use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use session_harness::actors::gitlab::payload::job_token;
use session_harness::actors::gitlab::{Gitlab, JobDef, JobStatus};
use session_harness::trace::Recorder;

const RUNNER_TOKEN: &str = "glrt-fixture";

fn gitlab_with_one_job() -> Gitlab {
    let gitlab = Gitlab::new(Recorder::default(), RUNNER_TOKEN, None);
    gitlab.add_job(JobDef {
        id: 7,
        owner: "alice".into(),
        project: "demo".into(),
        script: vec!["echo hello".into()],
        timeout: Duration::from_secs(3600),
        variables: vec![("EXTRA".into(), "1".into())],
        image: None,
        webide: false,
        services: None,
    });
    gitlab
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
        .collect()
}

fn body(response: Response<Full<bytes::Bytes>>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let (parts, body) = response.into_parts();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime.block_on(body.collect()).unwrap().to_bytes();
    (parts.status, parts.headers, bytes.to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A job request as GitLab Runner sends it, with `null`s and fields GitLab
/// does not know; the session is optional.
fn job_request(session: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "token": RUNNER_TOKEN,
        "info": {
            "name": "gitlab-runner", "version": "17.6.0", "revision": "abc",
            "platform": "linux", "architecture": "amd64", "executor": "shell",
            "shell": null,
            "features": {"variables": true, "session": true, "terminal": true, "vault_secrets": null},
            "config": {"gpus": ""}
        },
        "session": session,
        "last_update": null,
        "system_id": "s_0123456789ab"
    }))
    .unwrap()
}

fn take_job(gitlab: &Gitlab, session: Value) -> Value {
    let (status, headers, bytes) = body(gitlab.answer(
        &Method::POST,
        "/api/v4/jobs/request",
        &headers(&[("host", "gitlab.example:8080")]),
        &job_request(session),
        "runner",
    ));
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    serde_json::from_slice(&bytes).unwrap()
}

fn session() -> Value {
    json!({"url": "https://runner:8093/session/abc", "certificate": "PEM", "authorization": "tok"})
}

fn variable<'a>(job: &'a Value, key: &str) -> &'a Value {
    job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no variable {key}"))
}

// SPEC: JOB-1, JOB-4
#[test]
fn a_job_request_with_nulls_and_unknown_fields_is_accepted() {
    let gitlab = gitlab_with_one_job();
    take_job(&gitlab, session());
    assert_eq!(gitlab.status(7), Some(JobStatus::Running));
    assert_eq!(
        gitlab.session(7).unwrap().url,
        "https://runner:8093/session/abc"
    );

    // No job left: 204; a wrong runner token: 403; no JSON: 400 that says why.
    let answer = |token: &str| {
        let request = job_request(Value::Null);
        let request = String::from_utf8(request)
            .unwrap()
            .replace(RUNNER_TOKEN, token);
        body(gitlab.answer(
            &Method::POST,
            "/api/v4/jobs/request",
            &HeaderMap::new(),
            request.as_bytes(),
            "runner",
        ))
        .0
    };
    assert_eq!(answer(RUNNER_TOKEN), StatusCode::NO_CONTENT);
    assert_eq!(answer("glrt-other"), StatusCode::FORBIDDEN);
    let (status, _, text) = body(gitlab.answer(
        &Method::POST,
        "/api/v4/jobs/request",
        &HeaderMap::new(),
        b"{",
        "runner",
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&text).contains("invalid job request"));
}

// SPEC: JOB-4
#[test]
fn the_job_response_is_gitlabs_full_shape_with_nulls() {
    let gitlab = gitlab_with_one_job();
    let job = take_job(&gitlab, session());

    assert_eq!(job["id"], 7);
    assert_eq!(job["token"], job_token(7));
    assert_eq!(job["allow_git_fetch"], true);
    let info = &job["job_info"];
    assert_eq!(
        (
            info["id"].as_u64(),
            info["name"].as_str(),
            info["stage"].as_str()
        ),
        (Some(7), Some("job-7"), Some("test"))
    );
    assert_eq!(info["project_name"], "demo");
    assert!(
        info["time_in_queue_seconds"].is_number(),
        "a field a runner may not know"
    );
    let git = &job["git_info"];
    assert_eq!(
        git["repo_url"],
        format!(
            "http://gitlab-ci-token:{}@gitlab.example:8080/session-harness/demo.git",
            job_token(7)
        )
    );
    assert_eq!(
        (git["ref"].as_str(), git["ref_type"].as_str()),
        (Some("main"), Some("branch"))
    );
    assert_eq!(git["sha"].as_str().unwrap().len(), 40);
    assert_eq!(git["before_sha"].as_str().unwrap().len(), 40);
    assert!(!git["refspecs"].as_array().unwrap().is_empty());
    assert_eq!(job["runner_info"]["timeout"], 3600);
    assert_eq!(
        job["runner_info"]["runner_session_url"],
        "https://runner:8093/session/abc"
    );
    assert_eq!(
        job["steps"],
        json!([{"name": "script", "script": ["echo hello"], "timeout": 3600, "when": "on_success", "allow_failure": false}])
    );

    // `null` where GitLab sends null.
    assert_eq!(job["image"], Value::Null);
    assert_eq!(job["artifacts"], Value::Null);
    let service = &job["services"][0];
    assert_eq!(service["name"], "redis:7-alpine");
    for absent in ["alias", "entrypoint", "command", "pull_policy"] {
        assert_eq!(service[absent], Value::Null, "services[0].{absent}");
    }
    assert_eq!(job["cache"], json!([]));
    assert_eq!(job["dependencies"], json!([]));
    assert_eq!(job["credentials"][0]["type"], "registry");
    assert_eq!(job["features"]["trace_sections"], true);
    assert_eq!(job["hooks"], json!([]));

    // Every variable has GitLab's six fields.
    for v in job["variables"].as_array().unwrap() {
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{v}");
        for k in ["key", "value", "public", "masked", "file", "raw"] {
            assert!(v.get(k).is_some(), "{v} lacks {k}");
        }
    }
    // The predefined set, with the job token masked, then the file's and the scenario's.
    for (key, value) in [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "http://gitlab.example:8080"),
        ("CI_SERVER_HOST", "gitlab.example"),
        ("CI_SERVER_PORT", "8080"),
        ("CI_SERVER_PROTOCOL", "http"),
        ("CI_SERVER_NAME", "GitLab"),
        ("CI_PROJECT_PATH", "session-harness/demo"),
        ("CI_PROJECT_NAMESPACE", "session-harness"),
        (
            "CI_PROJECT_URL",
            "http://gitlab.example:8080/session-harness/demo",
        ),
        ("CI_JOB_ID", "7"),
        ("CI_JOB_NAME", "job-7"),
        ("CI_JOB_STAGE", "test"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_REF_NAME", "main"),
        ("GITLAB_USER_LOGIN", "alice"),
        ("GIT_STRATEGY", "none"),
        ("EXTRA", "1"),
    ] {
        assert_eq!(variable(&job, key)["value"], value, "{key}");
    }
    let token = variable(&job, "CI_JOB_TOKEN");
    assert_eq!(
        (token["masked"].as_bool(), token["public"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(variable(&job, "CI_COMMIT_SHA")["value"], git["sha"]);
    for runner_own in ["CI_PROJECT_DIR", "CI_BUILDS_DIR", "CI_RUNNER_VERSION"] {
        assert!(
            job["variables"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["key"] != runner_own),
            "{runner_own} is the runner's to set"
        );
    }
}

// SPEC: JOB-1, JOB-4
#[test]
fn without_a_session_the_job_says_null_for_the_session_url() {
    let gitlab = gitlab_with_one_job();
    let job = take_job(&gitlab, Value::Null);
    assert_eq!(job["runner_info"]["runner_session_url"], Value::Null);
    assert_eq!(gitlab.session(7), None);
}

fn trace(gitlab: &Gitlab, range: &str, chunk: &[u8]) -> (StatusCode, HeaderMap) {
    let token = job_token(7);
    let (status, headers, _) = body(gitlab.answer(
        &Method::PATCH,
        "/api/v4/jobs/7/trace",
        &headers(&[("job-token", &token), ("content-range", range)]),
        chunk,
        "runner",
    ));
    (status, headers)
}

fn update(gitlab: &Gitlab, state: &str) -> (StatusCode, HeaderMap) {
    let request = json!({"token": job_token(7), "state": state, "failure_reason": null, "exit_code": null, "checksum": "crc32:0", "output": {"bytesize": 6}});
    let (status, headers, _) = body(gitlab.answer(
        &Method::PUT,
        "/api/v4/jobs/7",
        &HeaderMap::new(),
        &serde_json::to_vec(&request).unwrap(),
        "runner",
    ));
    (status, headers)
}

// SPEC: JOB-3
#[test]
fn a_trace_chunk_gets_202_with_range_status_and_interval_or_416() {
    let gitlab = gitlab_with_one_job();
    take_job(&gitlab, session());

    let (status, h) = trace(&gitlab, "0-5", b"hello\n");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(header(&h, "range"), Some("0-6"));
    assert_eq!(header(&h, "job-status"), Some("running"));
    assert_eq!(header(&h, "x-gitlab-trace-update-interval"), Some("3"));

    // A chunk that does not continue the trace: 416 and where it ends.
    let (status, h) = trace(&gitlab, "0-5", b"hello\n");
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&h, "range"), Some("0-6"));
    let (status, _) = trace(&gitlab, "9-10", b"xx");
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // No Content-Range: 400; a wrong job token: 403.
    let (status, _, _) = body(gitlab.answer(
        &Method::PATCH,
        "/api/v4/jobs/7/trace",
        &headers(&[("job-token", &job_token(7))]),
        b"x",
        "runner",
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = body(gitlab.answer(
        &Method::PATCH,
        "/api/v4/jobs/7/trace",
        &headers(&[("job-token", "nope"), ("content-range", "6-6")]),
        b"x",
        "runner",
    ));
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Cancelled in GitLab: the next chunk's answer says so.
    gitlab.cancel(7);
    let (status, h) = trace(&gitlab, "6-8", b"bye");
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(header(&h, "job-status"), Some("canceled"));
    assert_eq!(header(&h, "range"), Some("0-9"));
}

// SPEC: JOB-3
#[test]
fn a_job_update_is_answered_with_the_jobs_real_status() {
    let gitlab = gitlab_with_one_job();
    take_job(&gitlab, session());

    let (status, h) = update(&gitlab, "running");
    assert_eq!(
        (status, header(&h, "job-status")),
        (StatusCode::OK, Some("running"))
    );
    let (status, h) = update(&gitlab, "failed");
    assert_eq!(
        (status, header(&h, "job-status")),
        (StatusCode::OK, Some("failed"))
    );
    assert_eq!(gitlab.status(7), Some(JobStatus::Done("failed".into())));

    // The job is over: further updates and chunks are 403, with its status.
    let (status, h) = update(&gitlab, "success");
    assert_eq!(
        (status, header(&h, "job-status")),
        (StatusCode::FORBIDDEN, Some("failed"))
    );
    let (status, h) = trace(&gitlab, "0-1", b"xx");
    assert_eq!(
        (status, header(&h, "job-status")),
        (StatusCode::FORBIDDEN, Some("failed"))
    );
}

/// Serves `gitlab` as the `gitlab` host does, on a real port.
async fn serve(gitlab: Gitlab) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use session_server::net::{Net, TokioNet};
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(session_harness::actors::workhorse::serve(
        listener,
        TokioNet,
        gitlab,
        Recorder::default(),
    ));
    (address, server)
}

/// `git` with this machine's configuration and credential helpers kept out.
fn git(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", dir)
        .output()
        .expect("git is installed")
}

// SPEC: JOB-4
/// A runner that clones although the job says GIT_STRATEGY=none (as
/// gitlab-python-runner does) gets a real repository whose head is the job's
/// `git_info.sha`, with the job's token, over git's dumb HTTP protocol.
#[tokio::test(flavor = "multi_thread")]
async fn a_runner_that_clones_anyway_gets_the_jobs_commit() {
    let gitlab = gitlab_with_one_job();
    let (address, server) = serve(gitlab.clone()).await;
    let (status, _, bytes) = tokio::task::spawn_blocking({
        let gitlab = gitlab.clone();
        let host = address.to_string();
        move || {
            body(
                gitlab.answer(
                    &Method::POST,
                    "/api/v4/jobs/request",
                    &[(http::header::HOST, host.parse().unwrap())]
                        .into_iter()
                        .collect(),
                    &job_request(session()),
                    "runner",
                ),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let job: Value = serde_json::from_slice(&bytes).unwrap();
    let git_info = &job["git_info"];
    let url = git_info["repo_url"].as_str().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("gitlab-api-clone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let clone = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || git(&["clone", &url, "repo"], &dir)
        }),
    )
    .await
    .expect("the clone ends, no hang")
    .unwrap();
    assert!(
        clone.status.success(),
        "{}",
        String::from_utf8_lossy(&clone.stderr)
    );
    let repo = dir.join("repo");
    let head = git(&["rev-parse", "HEAD", "HEAD~1"], &repo);
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        head.lines().collect::<Vec<_>>(),
        [
            git_info["sha"].as_str().unwrap(),
            git_info["before_sha"].as_str().unwrap()
        ]
    );
    assert_eq!(variable(&job, "CI_COMMIT_SHA")["value"], git_info["sha"]);
    let message = git(&["log", "-1", "--format=%B"], &repo);
    assert_eq!(
        String::from_utf8(message.stdout).unwrap().trim_end(),
        variable(&job, "CI_COMMIT_MESSAGE")["value"]
            .as_str()
            .unwrap()
            .trim_end()
    );
    let fsck = git(&["fsck", "--strict"], &repo);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    // The refspecs GitLab sends fetch refs that exist, at the same commit.
    for refspec in git_info["refspecs"].as_array().unwrap() {
        let source = refspec.as_str().unwrap().trim_start_matches('+');
        let source = source.split(':').next().unwrap();
        let listed = git(&["ls-remote", "origin", source], &repo);
        let listed = String::from_utf8(listed.stdout).unwrap();
        assert!(
            listed.starts_with(git_info["sha"].as_str().unwrap()),
            "{source}: {listed}"
        );
    }

    // Once the job is over, its token clones nothing.
    let gitlab_ = gitlab.clone();
    tokio::task::spawn_blocking(move || update(&gitlab_, "success"))
        .await
        .unwrap();
    let again = git(&["fetch", "origin"], &repo);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
