//! A job's environment (JOB-5): what its script and its terminals see.
//!
//! - `CI`, `GITLAB_CI`, `CI_JOB_ID`, then the job's variables in GitLab's order;
//! - a `file: true` variable's value is written to `<KEY>` in a directory of
//!   the job's own (`<builds_dir>/<job id>.tmp`, mode 0700, the file 0600), and
//!   the variable holds that file's path; the directory goes with the job;
//! - masked values are the log's secrets ([`secrets`]).
//!
//! The process environment of the runner is inherited underneath, as GitLab
//! Runner's shell executor does (see README, "A terminal's environment").

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::coordinator::api::JobResponse;

/// The job's variables, ready for a script or a terminal.
#[derive(Debug, Default)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    /// Lines for the job log about variables that could not be used.
    pub warnings: Vec<String>,
    /// Where file variables were written; removed when dropped.
    pub files: Option<FileVariables>,
}

/// The values the job log must never show.
pub fn secrets(job: &JobResponse) -> Vec<String> {
    job.variables
        .iter()
        .filter(|v| v.masked)
        .map(|v| v.value.clone())
        .collect()
}

/// Builds the environment of `job`; file variables go into `temp_dir` (a
/// machine without a file system has none: a job with file variables then
/// cannot run, and the error says so).
pub fn environment(job: &JobResponse, temp_dir: Option<PathBuf>) -> Result<Environment, String> {
    let mut env = Environment {
        vars: vec![
            ("CI".into(), "true".into()),
            ("GITLAB_CI".into(), "true".into()),
            ("CI_JOB_ID".into(), job.id.to_string()),
        ],
        ..Environment::default()
    };
    for variable in &job.variables {
        if !is_name(&variable.key) {
            env.warnings.push(format!(
                "WARNING: job variable {:?} is not a valid environment variable name \
                 (letters, digits, _): it is not set",
                variable.key
            ));
            continue;
        }
        let value = if variable.file {
            let dir = match (&env.files, &temp_dir) {
                (Some(files), _) => files.dir.clone(),
                (None, Some(dir)) => {
                    let files = FileVariables::create(dir.clone()).map_err(|e| {
                        format!(
                            "creating the directory for file variables {}: {e}",
                            dir.display()
                        )
                    })?;
                    env.files.insert(files).dir.clone()
                }
                (None, None) => {
                    return Err(format!(
                        "file variable {} needs a directory to be written to, and this \
                         machine has no file system",
                        variable.key
                    ))
                }
            };
            let path = dir.join(&variable.key);
            write_private(&path, variable.value.as_bytes()).map_err(|e| {
                format!(
                    "writing file variable {} to {}: {e}",
                    variable.key,
                    path.display()
                )
            })?;
            path.to_string_lossy().into_owned()
        } else {
            variable.value.clone()
        };
        env.vars.push((variable.key.clone(), value));
    }
    Ok(env)
}

/// GitLab's variable names; anything else cannot be an environment variable
/// (`=`, NUL) or a file name (`/`).
fn is_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The directory of a job's file variables; removed with everything in it when dropped.
#[derive(Debug)]
pub struct FileVariables {
    dir: PathBuf,
}

impl FileVariables {
    fn create(dir: PathBuf) -> io::Result<Self> {
        // Left over by a runner that was killed: its content is stale.
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(FileVariables { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for FileVariables {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "removing the job's file variables: {e}");
        }
    }
}

/// Only the runner's user may read it (0600), from its creation on.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::api::Variable;
    use std::os::unix::fs::PermissionsExt;

    fn job(variables: &[(&str, &str, bool)]) -> JobResponse {
        JobResponse {
            id: 42,
            variables: variables
                .iter()
                .map(|(key, value, file)| Variable {
                    key: key.to_string(),
                    value: value.to_string(),
                    file: *file,
                    ..Variable::default()
                })
                .collect(),
            ..JobResponse::default()
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "session-server-variables-{name}-{}",
            std::process::id()
        ))
    }

    #[test]
    fn file_variables_hold_the_path_of_a_private_file_removed_with_the_job() {
        let dir = temp_dir("file");
        let env = environment(
            &job(&[("PLAIN", "v", false), ("CONFIG", "line 1\nline 2\n", true)]),
            Some(dir.clone()),
        )
        .unwrap();
        let path = &env.vars.iter().find(|(k, _)| k == "CONFIG").unwrap().1;
        assert_eq!(Path::new(path), dir.join("CONFIG"));
        assert_eq!(std::fs::read_to_string(path).unwrap(), "line 1\nline 2\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(Path::new(path)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(env.vars.contains(&("PLAIN".into(), "v".into())));
        drop(env);
        assert!(!dir.exists(), "the file variables outlived the job");
    }

    #[test]
    fn a_file_variable_without_a_file_system_is_an_error_that_names_it() {
        let error = environment(&job(&[("CONFIG", "x", true)]), None).unwrap_err();
        assert!(error.contains("CONFIG"), "{error}");
    }

    #[test]
    fn invalid_names_are_skipped_with_a_warning() {
        let env = environment(&job(&[("A=B", "x", false), ("", "y", false)]), None).unwrap();
        assert_eq!(
            env.vars.len(),
            3,
            "only the predefined ones: {:?}",
            env.vars
        );
        assert_eq!(env.warnings.len(), 2);
    }
}
