//! The scenario catalogue on disk: `scenarios/<family>/<name>.toml`, and each
//! one's snapshot `snapshots/<family>/<name>.snap` (read and written by
//! [`crate::snapshot`]).

use std::path::{Path, PathBuf};

use crate::scenario::{self, LoadError, Scenario};

/// The project root: the nearest ancestor of the current directory holding
/// `scenarios/`, else the one this binary was built from.
pub fn root() -> PathBuf {
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("scenarios").is_dir() && dir.join("snapshots").is_dir() {
                return dir;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// Loads every scenario under `paths` (files or folders; default: all of
/// `scenarios/`), sorted by id. All load errors are returned together.
pub fn discover(root: &Path, paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<LoadError>> {
    let scenarios_dir = root.join("scenarios");
    let roots = if paths.is_empty() {
        vec![scenarios_dir.clone()]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in roots {
        if path.is_dir() {
            collect(&path, &mut files);
        } else if path.is_file() {
            files.push(path);
        } else {
            errors.push(LoadError {
                path,
                line: None,
                field: String::new(),
                message: "no such scenario file or folder".into(),
            });
        }
    }
    files.sort();
    files.dedup();
    let mut scenarios = Vec::new();
    for file in files {
        let absolute = std::fs::canonicalize(&file).unwrap_or(file.clone());
        let base = std::fs::canonicalize(&scenarios_dir).unwrap_or(scenarios_dir.clone());
        match scenario::load(&absolute, &base) {
            Ok(mut s) => {
                s.in_catalogue = absolute.starts_with(&base);
                if !s.in_catalogue {
                    // A file from elsewhere (a fresh regression, say): no snapshot.
                    s.id = file
                        .file_stem()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
                s.path = file;
                scenarios.push(s);
            }
            Err(mut e) => {
                e.path = file;
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        scenarios.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
}

/// The rendered trace of a run: a header naming the scenario, then the events.
pub fn trace_text(scenario: &Scenario, events: &[crate::trace::Event]) -> String {
    format!(
        "# {}\n# user sees: {}\n# checks: {}\n# seed: {}\n\n{}",
        scenario.title,
        scenario.user_sees,
        scenario.spec.join(", "),
        scenario.seed,
        crate::trace::render(events)
    )
}
