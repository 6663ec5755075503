//! JOB-5 on a real machine: masked variables never reach the job log, even
//! split across two log increments; a `file: true` variable is a private file
//! that goes with the job; a terminal opened into the job has its variables,
//! in its directory.

mod support;

use std::sync::Arc;
use std::time::Duration;

use session_server::coordinator::api::Variable;
use session_server::machine::os::OsMachine;
use session_server::net::TokioNet;
use support::*;

const LIMIT: Duration = Duration::from_secs(30);
const SECRET: &str = "s3cr3t-V4lue-0f-the-job";

async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

fn variable(key: &str, value: &str, masked: bool, file: bool) -> Variable {
    Variable {
        key: key.into(),
        value: value.into(),
        masked,
        file,
        ..Variable::default()
    }
}

/// A HOME of the test's own: a real interactive shell reads its dotfiles,
/// and this machine's can stall.
fn home(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("session-server-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_masked_variable_is_masked_in_the_log_also_across_increments() {
    let world = world("shell", 60, Arc::new(OsMachine::default()), |_| {}).await;
    let mut j = job(
        1,
        &[
            "echo \"whole: $SECRET\"",
            // The first half, then a pause longer than the update interval
            // (100 ms here): the log goes to GitLab in between.
            "printf 'split: %s' \"${SECRET:0:10}\"",
            "sleep 1",
            "printf '%s :end\\n' \"${SECRET:10}\"",
        ],
        &[],
    );
    j.variables.push(variable("SECRET", SECRET, true, false));
    world.gitlab.push(j);
    within("the first half", world.gitlab.trace_contains(1, "split: ")).await;
    // Several increments go out while the script sleeps: none has the half.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = world.gitlab.trace(1);
    assert!(
        meanwhile.contains("split: ") && !meanwhile.contains(&SECRET[..10]),
        "the start of the secret was logged before its end was seen: {meanwhile}"
    );
    let end = within("the job's end", world.gitlab.finished(1)).await;
    assert_eq!(end.state, "success");
    let trace = world.gitlab.trace(1);
    assert!(trace.contains("whole: [MASKED]\n"), "{trace}");
    assert!(trace.contains("split: [MASKED] :end\n"), "{trace}");
    assert!(
        !trace.contains(&SECRET[..10]) && !trace.contains(&SECRET[10..]),
        "{trace}"
    );
}

#[tokio::test]
async fn a_file_variable_is_a_private_file_that_goes_with_the_job() {
    let world = world("shell", 60, Arc::new(OsMachine::default()), |_| {}).await;
    let mut j = job(
        2,
        &[
            "cat \"$DEPLOY_CONFIG\"",
            "echo \"mode=$(stat -c %a \"$DEPLOY_CONFIG\") path=$DEPLOY_CONFIG\"",
        ],
        &[],
    );
    j.variables.push(variable(
        "DEPLOY_CONFIG",
        "host: example.com\nport: 22\n",
        false,
        true,
    ));
    world.gitlab.push(j);
    let end = within("the job's end", world.gitlab.finished(2)).await;
    let trace = world.gitlab.trace(2);
    assert_eq!(end.state, "success", "{trace}");
    assert!(trace.contains("host: example.com\nport: 22\n"), "{trace}");
    assert!(trace.contains("mode=600 "), "{trace}");
    let path = trace
        .split("path=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the script printed the path");
    assert!(path.ends_with("/2.tmp/DEPLOY_CONFIG"), "{path}");
    assert!(
        !std::path::Path::new(path).exists(),
        "the file variable outlived its job: {path}"
    );
}

#[tokio::test]
async fn a_terminal_opened_into_the_job_has_its_variables_in_its_directory() {
    let world = world("shell", 60, Arc::new(OsMachine::default()), |_| {}).await;
    let mut j = job(3, &["sleep 30"], &[("HOME", &home("terminal-env"))]);
    j.variables
        .push(variable("JOB_GREETING", "hello-from-the-job", false, false));
    j.variables
        .push(variable("JOB_FILE", "content-of-the-file", false, true));
    world.gitlab.push(j);
    let session = world.session(3).await;
    let mut ws = within(
        "the terminal",
        connect(&TokioNet, &session, &["terminal.gitlab.com"]),
    )
    .await;
    // The typed line echoes too; only the output has `=` right after the marker.
    type_text(
        &mut ws,
        "echo \"v=$JOB_GREETING f=$(cat \"$JOB_FILE\") d=$(pwd) ci=$CI_JOB_ID\"\n",
    )
    .await;
    let seen = within("the answer", read_until(&mut ws, "ci=3\r\n")).await;
    assert!(seen.contains("v=hello-from-the-job"), "{seen}");
    assert!(seen.contains("f=content-of-the-file"), "{seen}");
    assert!(
        seen.contains("/session-server-builds/3 ci=3"),
        "not in the job's directory: {seen}"
    );
}
