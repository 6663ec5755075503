//! The project's git repository, as GitLab serves it over HTTP to a job.
//!
//! The harness's jobs say `GIT_STRATEGY=none`, and a runner that honours it
//! never fetches. Some runners clone anyway (gitlab-python-runner does): to them
//! the harness's GitLab looks like a real one, serving a tiny real repository
//! whose head is the job's `git_info.sha`, so the job goes on to its script.
//!
//! Each job's repository has two commits on `main`: the project's first
//! (`before_sha`: the branch's head before the push) and the pipeline's commit
//! (`sha`), whose README names the pipeline, so that each job has its own sha.
//! Authors and dates are fixed: the same job always has the same commit ids.
//! There is no `.gitlab-ci.yml` in it: the job's definition is GitLab's (the
//! job response's `steps`), and a runner that read one from the checkout would
//! run something other than the job it was given.
//!
//! Served with git's "dumb" HTTP protocol ([`Repository::serve`]): `info/refs`,
//! `HEAD` and loose objects, all that `git clone` needs. Only with the job's
//! token (`gitlab-ci-token:<token>`, as in `git_info.repo_url`) and while the
//! job runs, as GitLab allows a job token.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use sha1::{Digest, Sha1};

/// `CREATED_AT` of the pipeline (2026-01-05T09:00:00Z) as git writes a date.
const COMMITTED: &str = "1767603600 +0000";
/// The project's first commit, a day earlier.
const FIRST_COMMITTED: &str = "1767517200 +0000";
/// The pipeline's commit message (`CI_COMMIT_MESSAGE`).
pub const MESSAGE: &str = "Debug the build\n";
/// The branch the job builds (`git_info.ref`).
pub const BRANCH: &str = "main";

/// One job's repository: its objects by id, and its two commits.
pub struct Repository {
    objects: BTreeMap<String, Vec<u8>>,
    /// The pipeline's commit: `git_info.sha`, `CI_COMMIT_SHA`.
    pub sha: String,
    /// The branch's head before it: `git_info.before_sha`.
    pub before_sha: String,
    pipeline: u64,
}

/// What a request for a path of the repository gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with this content type and body.
    Found(&'static str, Vec<u8>),
    /// 404 with a reason.
    NotFound(String),
}

impl Repository {
    /// The repository job `pipeline` of `project` builds, by `owner`.
    pub fn new(project_path: &str, pipeline: u64, owner: &str) -> Repository {
        let mut objects = BTreeMap::new();
        let author = format!("{owner} <{owner}@example.com>");
        let first_readme = format!("# {project_path}\n");
        let first = commit(
            &mut objects,
            &first_readme,
            None,
            &author,
            FIRST_COMMITTED,
            "Initial commit\n",
        );
        let readme = format!("{first_readme}\nBuilt by pipeline {pipeline}.\n");
        let sha = commit(
            &mut objects,
            &readme,
            Some(&first),
            &author,
            COMMITTED,
            MESSAGE,
        );
        Repository {
            objects,
            sha,
            before_sha: first,
            pipeline,
        }
    }

    /// The refs a clone and the job's refspecs ask for, all at the pipeline's commit.
    pub fn refs(&self) -> Vec<(String, String)> {
        vec![
            (format!("refs/heads/{BRANCH}"), self.sha.clone()),
            (
                format!("refs/pipelines/{}", self.pipeline),
                self.sha.clone(),
            ),
        ]
    }

    /// Answers `rest`, the path after `<project>.git/` (query string removed).
    pub fn serve(&self, rest: &str) -> Answer {
        match rest {
            // Without the smart protocol's content type, git takes this as the
            // dumb protocol's ref list and fetches objects one by one.
            "info/refs" => Answer::Found(
                "text/plain",
                self.refs()
                    .iter()
                    .map(|(name, id)| format!("{id}\t{name}\n"))
                    .collect::<String>()
                    .into_bytes(),
            ),
            "HEAD" => Answer::Found(
                "text/plain",
                format!("ref: refs/heads/{BRANCH}\n").into_bytes(),
            ),
            _ => match loose_object_id(rest)
                .and_then(|id| Some((id.clone(), self.objects.get(&id)?)))
            {
                Some((_, raw)) => Answer::Found("application/x-git-loose-object", deflate(raw)),
                None => Answer::NotFound(format!(
                    "{rest}: not in this repository (it has {} loose objects and no packs)",
                    self.objects.len()
                )),
            },
        }
    }
}

/// `objects/ab/cdef...` -> `abcdef...`.
fn loose_object_id(rest: &str) -> Option<String> {
    let (dir, file) = rest.strip_prefix("objects/")?.split_once('/')?;
    let id = format!("{dir}{file}");
    (dir.len() == 2 && id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Stores an object (`<kind> <size>\0<content>`) and returns its id.
fn store(objects: &mut BTreeMap<String, Vec<u8>>, kind: &str, content: &[u8]) -> String {
    let mut raw = format!("{kind} {}\0", content.len()).into_bytes();
    raw.extend_from_slice(content);
    let id = hex(&Sha1::digest(&raw));
    objects.insert(id.clone(), raw);
    id
}

/// A commit of a tree holding one `README.md`.
fn commit(
    objects: &mut BTreeMap<String, Vec<u8>>,
    readme: &str,
    parent: Option<&str>,
    author: &str,
    date: &str,
    message: &str,
) -> String {
    let blob = store(objects, "blob", readme.as_bytes());
    let mut tree = b"100644 README.md\0".to_vec();
    tree.extend(unhex(&blob));
    let tree = store(objects, "tree", &tree);
    let parent = parent.map(|p| format!("parent {p}\n")).unwrap_or_default();
    let content = format!(
        "tree {tree}\n{parent}author {author} {date}\ncommitter {author} {date}\n\n{message}"
    );
    store(objects, "commit", content.as_bytes())
}

fn deflate(raw: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(raw).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(id: &str) -> Vec<u8> {
    (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).expect("an id this module wrote"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_job_has_the_same_commits_and_another_job_others() {
        let a = Repository::new("session-harness/demo", 7, "alice");
        let again = Repository::new("session-harness/demo", 7, "alice");
        let other = Repository::new("session-harness/demo", 8, "alice");
        assert_eq!((&a.sha, &a.before_sha), (&again.sha, &again.before_sha));
        assert_ne!(a.sha, other.sha);
        assert_eq!(
            a.before_sha, other.before_sha,
            "the same project's first commit"
        );
        assert_ne!(a.sha, a.before_sha);
    }

    #[test]
    fn an_empty_blob_has_gits_well_known_id() {
        let mut objects = BTreeMap::new();
        assert_eq!(
            store(&mut objects, "blob", b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn refs_head_and_objects_are_served_and_others_are_not_found() {
        let repo = Repository::new("session-harness/demo", 7, "alice");
        let Answer::Found(_, refs) = repo.serve("info/refs") else {
            panic!("info/refs")
        };
        let refs = String::from_utf8(refs).unwrap();
        assert!(
            refs.contains(&format!("{}\trefs/heads/main\n", repo.sha)),
            "{refs}"
        );
        assert!(
            refs.contains(&format!("{}\trefs/pipelines/7\n", repo.sha)),
            "{refs}"
        );
        let path = format!("objects/{}/{}", &repo.sha[..2], &repo.sha[2..]);
        assert!(matches!(
            repo.serve(&path),
            Answer::Found("application/x-git-loose-object", _)
        ));
        assert!(matches!(
            repo.serve("objects/info/packs"),
            Answer::NotFound(_)
        ));
    }
}
