//! A scenario's snapshot, `snapshots/<family>/<name>.snap`, in insta's file
//! format. insta reads and compares it, for `run` as for `cargo test`
//! (`tests/scenarios.rs` asserts with insta itself), so the format has one
//! reader. Writing (`run --update`) is ours: insta's public API has no
//! writer (its `Snapshot::save` is hidden and its metadata's fields are
//! private), so [`write`] writes exactly the header insta writes for
//! `tests/scenarios.rs`, which insta then reads as its own.

use std::path::Path;

use crate::report::Snapshot;
use crate::scenario::Scenario;

/// The source a snapshot's header names: the test that asserts it with insta.
const SOURCE: &str = "harness/tests/scenarios.rs";

pub fn path(root: &Path, scenario: &Scenario) -> std::path::PathBuf {
    root.join("snapshots").join(format!("{}.snap", scenario.id))
}

/// `trace` against the snapshot of `scenario` under `root`; with `update`,
/// a missing or different snapshot is written instead.
pub fn compare(root: &Path, scenario: &Scenario, trace: &str, update: bool) -> Snapshot {
    let path = path(root, scenario);
    // The stored text as insta reads it (trailing whitespace trimmed): what
    // `assert_snapshot!` holds a trace to. Only insta's stable API is used
    // (`insta::internals` may change between minor versions).
    let stored = insta::Snapshot::from_file(&path)
        .ok()
        .and_then(|s| s.as_text().map(ToString::to_string));
    match stored {
        Some(stored) if stored == trace.trim_end() => Snapshot::Matches,
        _ if update => match write(&path, scenario, trace) {
            Ok(()) => Snapshot::Written,
            Err(e) => Snapshot::Differs {
                diff: format!("cannot write {}: {e}", path.display()),
            },
        },
        None => Snapshot::Missing,
        Some(stored) => Snapshot::Differs {
            diff: diff(&stored, trace),
        },
    }
}

/// Writes `trace` as the snapshot file insta writes for `tests/scenarios.rs`.
fn write(path: &Path, scenario: &Scenario, trace: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let description = serde_json::to_string(&scenario.title).unwrap_or_default();
    let text = format!(
        "---\nsource: {SOURCE}\ndescription: {description}\n---\n{}\n",
        trace.trim_end()
    );
    std::fs::write(path, text)
}

/// A unified diff, stored snapshot (-) against this run (+).
pub fn diff(expected: &str, observed: &str) -> String {
    similar::TextDiff::from_lines(expected.trim_end(), observed.trim_end())
        .unified_diff()
        .context_radius(2)
        .header("snapshot", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_str;

    const SCENARIO: &str = r#"
title = "a title with \"quotes\""
user_sees = "nothing"
spec = ["LC-1"]
[users.alice]
role = "developer"
[[job]]
id = 1
owner = "alice"
script = ["true"]
"#;

    #[test]
    fn a_written_snapshot_is_read_back_by_insta_as_matching_and_a_change_differs() {
        let root = std::env::temp_dir().join(format!("snapshot-{}", std::process::id()));
        let scenario = load_str(SCENARIO, Path::new("f/s.toml"), "f/s").unwrap();
        let trace = "# header\n\n   0.000 alice: opens\n";
        assert_eq!(compare(&root, &scenario, trace, false), Snapshot::Missing);
        assert_eq!(compare(&root, &scenario, trace, true), Snapshot::Written);
        assert_eq!(compare(&root, &scenario, trace, false), Snapshot::Matches);
        let other = compare(&root, &scenario, "# header\n\n   0.000 alice: closes\n", false);
        let Snapshot::Differs { diff } = other else {
            panic!("{other:?}")
        };
        assert!(diff.contains("-   0.000 alice: opens"), "{diff}");
        assert!(diff.contains("+   0.000 alice: closes"), "{diff}");
        let _ = std::fs::remove_dir_all(root);
    }
}
