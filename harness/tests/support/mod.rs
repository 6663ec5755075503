//! What more than one of the harness's test files needs.
#![allow(dead_code)] // each test binary uses a part of it

use std::process::Command;

/// The image `.ci/docker-test-image` builds on the engine at `DOCKER_HOST`.
pub const DOCKER_TEST_IMAGE: &str = "session-harness/busybox:test";

/// Whether the engine at `DOCKER_HOST` has the test image, asked with the
/// `docker` CLI; without it a docker test skips with a message, unless CI is
/// set: then it fails, so that CI never passes it silently.
pub fn docker_engine_ready() -> bool {
    let asked = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", DOCKER_TEST_IMAGE])
        .output();
    let why = match asked {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("no docker CLI: {e}"),
    };
    let why = format!(
        "no Docker Engine with {DOCKER_TEST_IMAGE} at DOCKER_HOST ({why}): start dockerd, set \
         DOCKER_HOST and run .ci/docker-test-image"
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set: {why}");
    eprintln!("SKIPPED (no Docker): {why}");
    false
}

/// Whether the engine at `DOCKER_HOST` runs containers through
/// `.ci/docker-delay-runtime` (its default runtime), so that a job can have
/// its build container held (conform's `--engine-holds-starts`). Not so with
/// CI set: a failure, as `.ci/run` starts its engine with it.
pub fn docker_engine_holds_starts() -> bool {
    let asked = Command::new("docker")
        .args([
            "info",
            "--format",
            "{{(index .Runtimes .DefaultRuntime).Path}}",
        ])
        .output();
    let path = match &asked {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => String::new(),
    };
    if path.ends_with("docker-delay-runtime") {
        return true;
    }
    let why = format!(
        "the Docker Engine at DOCKER_HOST runs containers with {path:?}, not \
         .ci/docker-delay-runtime: the scenarios whose container starts late or never are \
         skipped; start dockerd with --add-runtime harness-delay=$PWD/.ci/docker-delay-runtime \
         --default-runtime harness-delay (as .ci/run does)"
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set: {why}");
    eprintln!("NOTE: {why}");
    false
}

/// The containers a runner whose token starts with `runner` (8 characters,
/// its label) left on the engine at `DOCKER_HOST`: ids, one a line.
pub fn containers_left(runner: &str) -> String {
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.gitlab.session-server.runner={runner}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&left.stdout).trim().to_string()
}
