//! The docker executor on a real Docker Engine (DK-1..3, JOB-4, LC-4): the
//! script runs in a build container, the terminal is an exec into that same
//! container, and no container outlives its job or a killed runner.
//!
//! Needs an engine (`DOCKER_HOST`) with the test image (`.ci/docker-test-image`
//! builds it). Without one these tests skip with a message, unless `CI` is
//! set: then they fail, so that CI never passes them silently.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use session_server::config::{DockerConfig, PullPolicy};
use session_server::coordinator::api::{Image, JobResponse};
use session_server::net::TokioNet;
use support::*;

/// The labels README documents: `docker ps -a --filter label=...` finds them.
const MANAGED_LABEL: &str = "com.gitlab.session-server.managed";
const RUNNER_LABEL: &str = "com.gitlab.session-server.runner";

/// The image `.ci/docker-test-image` builds: busybox's sh and tools, no bash.
const DEFAULT_IMAGE: &str = "session-harness/busybox:test";

fn test_image() -> String {
    std::env::var("SESSION_SERVER_TEST_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into())
}

/// The engine and its test image, or `None` (skip) on a machine without them.
async fn engine() -> Option<Docker> {
    let why = match Docker::connect_with_defaults() {
        Err(e) => format!("no usable DOCKER_HOST: {e}"),
        Ok(docker) => match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Ok(Ok(_)) => match docker.inspect_image(&test_image()).await {
                Ok(_) => return Some(docker),
                Err(e) => format!(
                    "the engine has no image {} ({e}): run .ci/docker-test-image",
                    test_image()
                ),
            },
            Ok(Err(e)) => format!("no Docker Engine answers at DOCKER_HOST: {e}"),
            Err(_) => "the Docker Engine at DOCKER_HOST does not answer".into(),
        },
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and the docker tests cannot run: {why}");
    }
    eprintln!("SKIPPED (no Docker): {why}. Start dockerd and set DOCKER_HOST to run them.");
    None
}

/// A docker runner whose token is `token`: each test its own, as the clean-up
/// at start removes every container of the runner's token.
async fn docker_world(token: &str, docker: DockerConfig) -> World {
    let token = token.to_string();
    world("docker", 1800, Arc::new(os_machine()), move |parts| {
        let runner = &mut parts.config.runners[0];
        runner.token = token;
        runner.docker = docker;
    })
    .await
}

fn offline(image: &str) -> DockerConfig {
    DockerConfig {
        image: Some(image.into()),
        pull_policy: PullPolicy::Never,
        ..DockerConfig::default()
    }
}

fn in_image(mut job: JobResponse, image: &str) -> JobResponse {
    job.image = Image {
        name: image.into(),
        ..Image::default()
    };
    job
}

/// The containers of runner `token` still on the engine.
async fn left(docker: &Docker, token: &str) -> Vec<String> {
    let runner: String = token.chars().take(8).collect();
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{MANAGED_LABEL}=true"),
            format!("{RUNNER_LABEL}={runner}"),
        ],
    )]);
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..ListContainersOptions::default()
    };
    let containers = docker.list_containers(Some(options)).await.unwrap();
    containers.into_iter().filter_map(|c| c.id).collect()
}

#[tokio::test]
async fn the_terminal_opens_into_the_container_that_runs_the_script() {
    let Some(docker) = engine().await else { return };
    let token = "dk-same-container";
    let world = docker_world(token, offline(&test_image())).await;
    let script = [
        "echo built by the script > artifact.txt",
        "echo script ran",
        "sleep 4",
    ];
    world.gitlab.push(job(1, &script, &[("GREETING", "hi")]));
    let session = world.session(1).await;
    let mut ws = connect(&TokioNet, &session, &[]).await;
    type_text(
        &mut ws,
        "cat artifact.txt; echo \"$GREETING from $(pwd)\"\r",
    )
    .await;
    let seen = read_until(&mut ws, "hi from /builds/1").await;
    assert!(seen.contains("built by the script"), "{seen:?}");
    assert_eq!(
        read_close(&mut ws).await,
        Some((1001, "build container exited".into())),
        "DK-3: the terminal drops when the script ends"
    );
    let end = world.gitlab.finished(1).await;
    assert_eq!(end.state, "success");
    let log = world.gitlab.trace(1);
    assert!(
        log.contains("script ran"),
        "the script's output is the job log: {log}"
    );
    assert!(
        !log.contains("Terminal is connected"),
        "DK-3: not held: {log}"
    );
    assert!(
        left(&docker, token).await.is_empty(),
        "the container goes with its job"
    );
}

#[tokio::test]
async fn the_scripts_exit_code_is_the_jobs_result() {
    let Some(docker) = engine().await else { return };
    let token = "dk-exit-code";
    let world = docker_world(token, offline("no-default-image")).await;
    world.gitlab.push(in_image(
        job(2, &["echo before the failure", "exit 3"], &[]),
        &test_image(),
    ));
    let end = world.gitlab.finished(2).await;
    assert_eq!(
        (
            end.state.as_str(),
            end.failure_reason.as_deref(),
            end.exit_code
        ),
        ("failed", Some("script_failure"), Some(3)),
        "the job's image overrides the runner's default"
    );
    assert!(world.gitlab.trace(2).contains("before the failure"));
    assert!(left(&docker, token).await.is_empty());
}

#[tokio::test]
async fn a_missing_image_is_a_system_failure_that_says_what_to_do() {
    let Some(docker) = engine().await else { return };
    let token = "dk-missing-image";
    let world = docker_world(token, offline("session-harness/not-there:1")).await;
    world.gitlab.push(job(3, &["true"], &[]));
    let end = world.gitlab.finished(3).await;
    assert_eq!(end.failure_reason.as_deref(), Some("runner_system_failure"));
    let log = world.gitlab.trace(3);
    assert!(
        log.contains("\"session-harness/not-there:1\" is not on the Docker Engine")
            && log.contains("docker load"),
        "{log}"
    );
    assert!(left(&docker, token).await.is_empty());
}

#[tokio::test]
async fn a_service_the_runner_cannot_get_fails_the_job() {
    let Some(_docker) = engine().await else {
        return;
    };
    let world = docker_world("dk-service", offline(&test_image())).await;
    let mut j = job(4, &["true"], &[]);
    j.services = vec![Image {
        name: "redis:7-alpine".into(),
        ..Image::default()
    }];
    world.gitlab.push(j);
    let end = world.gitlab.finished(4).await;
    assert_eq!(end.failure_reason.as_deref(), Some("runner_system_failure"));
    assert!(
        world
            .gitlab
            .trace(4)
            .contains("service image \"redis:7-alpine\" is not on the Docker Engine"),
        "{}",
        world.gitlab.trace(4)
    );
}

#[tokio::test]
async fn cancel_kills_and_removes_the_build_container() {
    let Some(docker) = engine().await else { return };
    let token = "dk-cancel";
    let world = docker_world(token, offline(&test_image())).await;
    world
        .gitlab
        .push(job(5, &["echo started", "sleep 60"], &[]));
    world.gitlab.trace_contains(5, "started").await;
    assert_eq!(left(&docker, token).await.len(), 1);
    world.gitlab.cancel(5);
    let end = world.gitlab.finished(5).await;
    assert_eq!(end.failure_reason.as_deref(), Some("job_canceled"));
    assert!(left(&docker, token).await.is_empty());
}

#[tokio::test]
async fn containers_a_killed_runner_left_are_removed_at_start() {
    let Some(docker) = engine().await else { return };
    let token = "dk-restart";
    // What a runner killed mid-job leaves: a labelled container, still running.
    let labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (RUNNER_LABEL.to_string(), "dk-resta".to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(test_image()),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        labels: Some(labels),
        ..ContainerCreateBody::default()
    };
    let orphan = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&orphan, None).await.unwrap();
    assert_eq!(left(&docker, token).await, vec![orphan]);
    let world = docker_world(token, offline(&test_image())).await;
    // The clean-up runs before the runner's first job request.
    world.gitlab.push(job(6, &["true"], &[]));
    world.gitlab.finished(6).await;
    assert!(left(&docker, token).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_engine_is_a_system_failure_that_says_what_to_do() {
    // No engine needed: the runner must say that there is none.
    let world = docker_world(
        "dk-no-engine",
        DockerConfig {
            host: Some("unix:///nonexistent/docker.sock".into()),
            ..offline(DEFAULT_IMAGE)
        },
    )
    .await;
    world.gitlab.push(job(7, &["true"], &[]));
    let end = world.gitlab.finished(7).await;
    assert_eq!(end.failure_reason.as_deref(), Some("runner_system_failure"));
    let log = world.gitlab.trace(7);
    assert!(
        log.contains("cannot reach the Docker Engine at unix:///nonexistent/docker.sock"),
        "{log}"
    );
}
