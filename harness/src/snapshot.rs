//! A scenario's snapshot, `snapshots/<family>/<name>.snap`, in insta's file
//! format. insta reads and compares it, for `run` as for `cargo test`
//! (`tests/scenarios.rs` asserts with insta itself), so the format has one
//! reader. Writing (`run --update`) is ours: insta's public API has no
//! writer (its `Snapshot::save` is hidden and its metadata's fields are
//! private), so [`write`] writes exactly the header insta writes for
//! `tests/scenarios.rs`, which insta then reads as its own.

use std::path::Path;

use crate::report::Snapshot;

/// The source a snapshot's header names: the test that asserts it with insta.
const SOURCE: &str = "harness/tests/scenarios.rs";

/// The snapshot of scenario `id` (`family/name`) under the project's `root`.
pub fn path(root: &Path, id: &str) -> std::path::PathBuf {
    root.join("snapshots").join(format!("{id}.snap"))
}

/// `trace` against the snapshot at `path`; with `update`, a missing or
/// different snapshot is written instead, described by the scenario's `title`.
pub fn compare(path: &Path, title: &str, trace: &str, update: bool) -> Snapshot {
    // The stored text as insta reads it (trailing whitespace trimmed): what
    // `assert_snapshot!` holds a trace to. Only insta's stable API is used
    // (`insta::internals` may change between minor versions).
    let stored = insta::Snapshot::from_file(path)
        .ok()
        .and_then(|s| s.as_text().map(ToString::to_string));
    match stored {
        Some(stored) if stored == trace.trim_end() => Snapshot::Matches,
        _ if update => match write(path, title, trace) {
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
fn write(path: &Path, title: &str, trace: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let description = serde_json::to_string(title).unwrap_or_default();
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

    #[test]
    fn a_written_snapshot_is_read_back_by_insta_as_matching_and_a_change_differs() {
        let dir = std::env::temp_dir().join(format!("snapshot-{}", std::process::id()));
        let path = path(&dir, "family/name");
        let (title, trace) = (
            "a title with \"quotes\"",
            "# header\n\n   0.000 alice: opens\n",
        );
        assert_eq!(compare(&path, title, trace, false), Snapshot::Missing);
        assert_eq!(compare(&path, title, trace, true), Snapshot::Written);
        assert_eq!(compare(&path, title, trace, false), Snapshot::Matches);
        let read = insta::Snapshot::from_file(&path).expect("insta reads what was written");
        assert_eq!(read.metadata().description(), Some(title));
        let other = compare(&path, title, "# header\n\n   0.000 alice: closes\n", false);
        let Snapshot::Differs { diff } = other else {
            panic!("{other:?}")
        };
        assert!(diff.contains("-   0.000 alice: opens"), "{diff}");
        assert!(diff.contains("+   0.000 alice: closes"), "{diff}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
