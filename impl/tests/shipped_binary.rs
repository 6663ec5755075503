//! The shipped binary contains no test-only code: neither the fault switch
//! (`SESSION_SERVER_FAULTS`, compiled only into `session-server-faulty`) nor
//! the executor model's job variables (`RUNNER_MODEL_*`, gone: the harness
//! tells its simulated machine the timings instead).
//!
//! Proven on the real build command, at the workspace root, where Cargo unifies
//! features across every member: the harness's requests included. `--bin`
//! selects what is compiled, not which packages' features count: the binary is
//! the one `cargo build --release` makes. It is built in a target directory of
//! its own (a nested cargo on the test's own would wait for the lock the outer
//! one holds), kept between runs: the first run builds the binary's
//! dependencies in release (minutes), later runs only check they are fresh.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What must never be in the shipped binary.
const FORBIDDEN: [&str; 2] = ["SESSION_SERVER_FAULTS", "RUNNER_MODEL_"];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("impl/ is in the workspace")
}

/// `cargo build --release --bin session-server` at the root; the binary's path.
fn build_shipped_binary() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shipped-build");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--bin",
            "session-server",
            "--target-dir",
        ])
        .arg(&target)
        .output()
        .expect("running cargo");
    assert!(
        output.status.success(),
        "cargo build --release --bin session-server failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("release").join("session-server")
}

/// Like `strings | grep -c`, counting occurrences. The needles are ASCII: the
/// lossy text keeps them intact, and std's searcher is fast in a debug test.
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn a_root_release_build_of_session_server_has_no_faults_and_no_model() {
    let started = std::time::Instant::now();
    let binary = build_shipped_binary();
    eprintln!("built {} in {:.1?}", binary.display(), started.elapsed());
    let bytes =
        std::fs::read(&binary).unwrap_or_else(|e| panic!("reading {}: {e}", binary.display()));
    let text = String::from_utf8_lossy(&bytes);
    let found: Vec<(&str, usize)> = FORBIDDEN
        .iter()
        .map(|name| (*name, occurrences(&text, name)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(
        found.is_empty(),
        "the shipped binary {} contains test-only code: {found:?}",
        binary.display()
    );
    // The scan itself works: the binary's own strings are there.
    assert!(occurrences(&text, "session_server.listen_address") > 0);
}
