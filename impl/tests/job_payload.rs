//! JOB-4: the runner API's messages as GitLab sends and reads them, checked
//! against fixture files (`tests/fixtures/coordinator/`): a full realistic job
//! payload with GitLab's `null`s and fields this runner does not know, the job
//! request, the job updates and the trace patches; and a job that cannot be
//! read is failed with a reason, never dropped.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use session_server::coordinator::api::JobResponse;
use session_server::coordinator::{read_job, Handout};
use session_server::machine::os::OsMachine;
use session_server::machine::sim::SimMachine;
use support::*;

/// Nothing here takes more than a few seconds; a hang fails the test.
const LIMIT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/coordinator")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

fn job_of(body: &[u8]) -> JobResponse {
    match read_job(body) {
        Handout::Job(job) => *job,
        other => panic!("not read as a job: {other:?}"),
    }
}

#[test]
fn a_full_realistic_job_payload_is_read() {
    let job = job_of(fixture("job_response.json").as_bytes());
    assert_eq!(
        (job.id, job.token.as_str()),
        (4711, "glcbt-64_s3cr3tJobT0ken")
    );
    assert_eq!(job.runner_info.timeout, 3600);
    assert_eq!(job.job_info.project_name, "web-app");
    assert_eq!(job.git_info.reference, "main");
    let token = job
        .variables
        .iter()
        .find(|v| v.key == "CI_JOB_TOKEN")
        .unwrap();
    assert!(token.masked && !token.public);
    let key = job
        .variables
        .iter()
        .find(|v| v.key == "DEPLOY_KEY")
        .unwrap();
    assert!(key.file);
    // `null`s are Go's zero values.
    let optional = job
        .variables
        .iter()
        .find(|v| v.key == "OPTIONAL_SETTING")
        .unwrap();
    assert_eq!((optional.value.as_str(), optional.masked), ("", false));
    assert_eq!(job.steps.len(), 3);
    assert_eq!(job.steps[2].script, Vec::<String>::new());
    assert_eq!(job.image.name, "ruby:3.3");
    assert_eq!(job.services[0].alias, "", "a service without an alias");
    let aliases: Vec<&str> = job.services[1].aliases().collect();
    assert_eq!(aliases, ["web", "frontend"]);
    assert_eq!(job.services[1].ports[1].number, 8443);
    assert_eq!(job.artifacts[1].expire_in, "1 week");
    assert_eq!(job.cache[0].fallback_keys, Vec::<String>::new());
    assert_eq!(job.dependencies[1].artifacts_file.filename, "");
    assert_eq!(job.features.token_mask_prefixes, ["glpat-", "glcbt-"]);
}

/// Every value of `value` (by JSON pointer), except the root.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (format!("{at}/{k}"), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{at}/{i}"), v))
            .collect(),
        _ => Vec::new(),
    };
    for (pointer, child) in children {
        out.push(pointer.clone());
        pointers(child, pointer, out);
    }
}

/// Go's decoder leaves a zero value for `null` and for a missing field, and
/// ignores fields it does not know: each optional value of the realistic
/// payload, in turn, is `null`, then missing, then gets an unknown sibling.
#[test]
fn every_optional_value_may_be_null_missing_or_among_unknown_fields() {
    let full = fixture_json("job_response.json");
    let mut all = Vec::new();
    pointers(&full, String::new(), &mut all);
    let required = ["/id", "/token"];
    // Array items are values, not fields: a `null` item is not GitLab's.
    let fields: Vec<&String> = all
        .iter()
        .filter(|p| !required.contains(&p.as_str()))
        .filter(|p| p.rsplit('/').next().unwrap().parse::<usize>().is_err())
        .collect();
    assert!(
        fields.len() > 150,
        "the fixture is not full: {}",
        fields.len()
    );
    for pointer in fields {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut nulled = full.clone();
        *nulled.pointer_mut(pointer).unwrap() = Value::Null;
        let mut missing = full.clone();
        let mut unknown = full.clone();
        for (copy, missing_it) in [(&mut missing, true), (&mut unknown, false)] {
            let object = copy.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            if missing_it {
                object.remove(key);
            } else {
                object.insert(
                    "field_of_a_newer_gitlab".into(),
                    serde_json::json!([null, {}]),
                );
            }
        }
        for (how, payload) in [("null", nulled), ("missing", missing), ("unknown", unknown)] {
            let body = serde_json::to_vec(&payload).unwrap();
            match read_job(&body) {
                Handout::Job(job) => assert_eq!(job.id, 4711),
                other => panic!("{pointer} {how}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_full_realistic_job_runs_masked_and_is_reported() {
    let world = world("shell", 60, Arc::new(OsMachine::default()), |_| {}).await;
    world
        .gitlab
        .push_raw(4711, fixture("job_response.json").into_bytes());
    let end = within("the job's end", world.gitlab.finished(4711)).await;
    let trace = world.gitlab.trace(4711);
    assert_eq!(
        (end.state.as_str(), end.failure_reason.as_deref()),
        ("success", None),
        "{trace}"
    );
    assert!(trace.contains("building 4711"), "{trace}");
    assert!(trace.contains("token=[MASKED]"), "{trace}");
    assert!(!trace.contains("s3cr3tJobT0ken"), "{trace}");
}

/// The request as the runner sends it, with what changes per run replaced by
/// the fixture's placeholders.
fn normalized_request(mut request: Value) -> Value {
    let version = request["info"]["version"].take();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    request["info"]["version"] = "<version>".into();
    let session = &mut request["session"];
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let url = session["url"].as_str().unwrap().to_string();
    let (base, id) = url.rsplit_once("/session/").unwrap();
    assert!(hex64(id), "{url}");
    let port = base.strip_prefix("https://127.0.0.1:").unwrap();
    assert!(port.parse::<u16>().is_ok(), "{url}");
    session["url"] = "https://127.0.0.1:<port>/session/<64 hex>".into();
    assert!(session["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    session["certificate"] = "<PEM>".into();
    assert!(hex64(session["authorization"].as_str().unwrap()));
    session["authorization"] = "<64 hex>".into();
    request
}

#[tokio::test]
async fn the_job_request_updates_and_trace_patches_are_gitlab_runners() {
    let world = world("shell", 60, Arc::new(SimMachine), |_| {}).await;
    world
        .gitlab
        .push(job(1, &["echo one", "sleep 1", "echo two", "exit 4"], &[]));
    within("the job's end", world.gitlab.finished(1)).await;
    let exchanges = world.gitlab.exchanges();

    let request = exchanges
        .iter()
        .find(|e| e.path == "/api/v4/jobs/request")
        .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        normalized_request(request.json()),
        fixture_json("job_request.json")
    );

    // JOB-3: the log in contiguous increments, each with its range and the job's token.
    let patches: Vec<_> = exchanges
        .iter()
        .filter(|e| e.path == "/api/v4/jobs/1/trace")
        .collect();
    assert!(patches.len() >= 2, "the log came in one piece");
    let mut offset = 0;
    for patch in &patches {
        assert_eq!(patch.method, "PATCH");
        assert_eq!(patch.job_token.as_deref(), Some("job-token-1"));
        let end = offset + patch.body.len() - 1;
        assert_eq!(patch.content_range, Some(format!("{offset}-{end}")));
        offset = end + 1;
    }
    let trace = world.gitlab.trace(1);
    assert_eq!(offset, trace.len());

    let updates: Vec<Value> = exchanges
        .iter()
        .filter(|e| e.path == "/api/v4/jobs/1")
        .map(|e| {
            assert_eq!(e.method, "PUT");
            e.json()
        })
        .collect();
    assert_eq!(
        updates.last(),
        Some(&fixture_json("update_job_failed.json"))
    );
    // Keep-alives, while the log did not grow, are `running` updates.
    for update in &updates[..updates.len() - 1] {
        assert_eq!(update, &fixture_json("update_job_running.json"));
    }
}

#[tokio::test]
async fn a_job_that_cannot_be_read_is_failed_with_a_reason_not_dropped() {
    let world = world("shell", 60, Arc::new(SimMachine), |_| {}).await;
    // Its id and token can be read; its steps cannot.
    let body = r#"{"id": 9, "token": "job-token-9", "steps": "echo not a list", "image": null}"#;
    world.gitlab.push_raw(9, body);
    let end = within("the job's end", world.gitlab.finished(9)).await;
    let put = world
        .gitlab
        .exchanges()
        .into_iter()
        .rfind(|e| e.path == "/api/v4/jobs/9")
        .unwrap();
    assert_eq!(put.json(), fixture_json("update_job_unreadable.json"));
    assert_eq!(end.state, "failed");
    let trace = world.gitlab.trace(9);
    assert!(
        trace.contains("ERROR: Job failed (system failure): the runner cannot read the job")
            && trace.contains("field `steps`: invalid type: string"),
        "the log says why: {trace}"
    );
    // The runner goes on taking jobs.
    world.gitlab.push(job(10, &["echo fine"], &[]));
    let end = within("the next job's end", world.gitlab.finished(10)).await;
    assert_eq!(end.state, "success");
}

#[tokio::test]
async fn a_handout_without_id_and_token_is_logged_and_the_runner_goes_on() {
    let world = world("shell", 60, Arc::new(SimMachine), |_| {}).await;
    world.gitlab.push_raw(0, "<html>502 Bad Gateway</html>");
    world.gitlab.push(job(2, &["echo fine"], &[]));
    let end = within("the next job's end", world.gitlab.finished(2)).await;
    assert_eq!(end.state, "success");
    let updated: Vec<String> = world
        .gitlab
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "PUT")
        .map(|e| e.path)
        .collect();
    assert!(
        updated.iter().all(|p| p == "/api/v4/jobs/2"),
        "nothing to update but job 2: {updated:?}"
    );
}
