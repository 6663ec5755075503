//! The job the harness's GitLab hands a runner (JOB-4): GitLab's full job
//! response for one job of a pipeline, as GitLab builds it, so that a runner is
//! held to what it would get from GitLab itself.
//!
//! Every job is the same pipeline's one job, `job-<id>` of stage `test`, on the
//! `main` branch of `session-harness/<project>`, defined as:
//!
//! ```yaml
//! variables:
//!   GIT_STRATEGY: none    # nothing to fetch; a runner that clones anyway gets `repository`'s
//! job-<id>:
//!   services: [redis:7-alpine]   # no alias: GitLab sends `"alias": null`
//!   script: [...]                # the scenario's
//! ```
//!
//! A job given an image (`JobDef::image`, conform's `--job-image`) is instead
//! `job-<id>: {image: <image>, script: [...]}`: no services.
//!
//! A Web IDE terminal (`JobDef::webide`, WI-1) is the one job `terminal`, of
//! stage `terminal`, of a pipeline whose source is `webide`, created from the
//! branch's `.gitlab/.gitlab-webide.yml`:
//!
//! ```yaml
//! terminal:
//!   services:                    # the scenario's; the documentation's file sync:
//!     - name: registry.gitlab.com/gitlab-org/webide-file-sync:latest
//!       alias: webide-file-sync
//!       ports: [{number: 3000}]  # GitLab adds protocol: http, name: default_port
//!   script: [...]                # the scenario's (GitLab's default: sleep 60)
//! ```
//!
//! The variables are GitLab's predefined set (`CI_SERVER_*`, `CI_PROJECT_*`,
//! `CI_JOB_*`, `CI_PIPELINE_*`, `CI_COMMIT_*`, `CI_RUNNER_*`, `GITLAB_USER_*`),
//! then the file's, then the scenario's. Those a runner computes itself
//! (`CI_PROJECT_DIR`, `CI_BUILDS_DIR`, `CI_RUNNER_VERSION`, ...) are the
//! runner's to add, as GitLab Runner does; GitLab does not send them.

use super::repository::{Repository, BRANCH, MESSAGE};
use super::wire::{
    Credentials, GitInfo, Image, JobFeatures, JobInfo, JobResponse, JobRunnerInfo, Port, Service,
    Step, Variable,
};
use super::JobDef;
use crate::scenario::ServiceSpec;

/// The GitLab the harness plays.
pub const SERVER_VERSION: &str = "17.6.0";
const SERVER_REVISION: &str = "3b7d7b3e9a1";
/// The project's group, and the runner's record in GitLab.
const NAMESPACE: &str = "session-harness";
const RUNNER_ID: u64 = 7;
/// Every pipeline was created at this instant (fixed: traces are deterministic).
const CREATED_AT: &str = "2026-01-05T09:00:00Z";
/// The job's definition in `.gitlab-ci.yml`: no image, one service without an alias.
pub const SERVICE: &str = "redis:7-alpine";

/// Where the runner reached GitLab: `http://host:port`, as the job request came in.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

impl Server {
    /// From the `Host` header of the runner's request (`gitlab`, `127.0.0.1:8080`).
    pub fn from_host_header(host: &str) -> Server {
        match host.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => Server {
                host: h.to_string(),
                port: p.parse().expect("checked"),
            },
            _ => Server {
                host: host.to_string(),
                port: 80,
            },
        }
    }

    pub fn url(&self) -> String {
        if self.port == 80 {
            format!("http://{}", self.host)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// The job's token: the runner sends it back on every update (JOB-3).
pub fn job_token(id: u64) -> String {
    format!("glcbt-64_harness{id:016x}")
}

/// The full job response for `def`, handed to the runner that reached GitLab at
/// `server` and offered `session_url` (JOB-1).
pub fn job_response(def: &JobDef, server: &Server, session_url: Option<&str>) -> JobResponse {
    let project = Project::of(def);
    let repository = project.repository(def);
    let token = job_token(def.id);
    let timeout = def.timeout.as_secs();
    JobResponse {
        id: def.id,
        token: token.clone(),
        allow_git_fetch: true,
        job_info: JobInfo {
            id: def.id,
            name: job_name(def),
            stage: stage(def).into(),
            project_id: project.id,
            project_name: def.project.clone(),
            time_in_queue_seconds: 0.42,
            project_jobs_running_on_instance_runners_count: "+Inf".into(),
        },
        git_info: GitInfo {
            repo_url: project.repository_url(server, &token),
            ref_name: BRANCH.into(),
            sha: repository.sha.clone(),
            before_sha: repository.before_sha.clone(),
            ref_type: "branch".into(),
            // Every ref the repository has (`Repository::refs`), fetched as GitLab asks.
            refspecs: repository
                .refs()
                .into_iter()
                .rev()
                .map(|(name, _)| match name.strip_prefix("refs/heads/") {
                    Some(branch) => format!("+{name}:refs/remotes/origin/{branch}"),
                    None => format!("+{name}:{name}"),
                })
                .collect(),
            depth: 20,
            protected: true,
            repo_object_format: "sha1".into(),
        },
        runner_info: JobRunnerInfo {
            timeout,
            runner_session_url: session_url.map(str::to_string),
        },
        variables: variables(def, server, &project, &repository, &token),
        steps: vec![Step {
            name: "script".into(),
            script: def.script.clone(),
            timeout,
            when: "on_success".into(),
            allow_failure: false,
        }],
        image: def.image.as_ref().map(|name| Image {
            name: name.clone(),
            entrypoint: None,
            ports: Vec::new(),
            pull_policy: None,
            executor_opts: serde_json::json!({}),
        }),
        services: match (&def.image, &def.services) {
            (Some(_), _) => Vec::new(),
            (None, Some(services)) => services.iter().map(service).collect(),
            (None, None) => vec![Service {
                name: SERVICE.into(),
                alias: None,
                entrypoint: None,
                command: None,
                ports: Vec::new(),
                variables: Vec::new(),
                pull_policy: None,
            }],
        },
        artifacts: None,
        cache: Vec::new(),
        credentials: vec![Credentials {
            kind: "registry".into(),
            url: format!("{}:5050", server.host),
            username: "gitlab-ci-token".into(),
            password: token,
        }],
        dependencies: Vec::new(),
        features: JobFeatures {
            trace_sections: true,
            failure_reasons: [
                "unknown_failure",
                "script_failure",
                "api_failure",
                "stuck_or_timeout_failure",
                "runner_system_failure",
                "job_execution_timeout",
            ]
            .map(str::to_string)
            .to_vec(),
        },
        hooks: Vec::new(),
    }
}

/// `<namespace>/<project>`: the path of job `def`'s project, and of its repository.
pub fn project_path(def: &JobDef) -> String {
    Project::of(def).path
}

/// The repository job `def` builds, as GitLab serves it to the job.
pub fn repository(def: &JobDef) -> Repository {
    Project::of(def).repository(def)
}

fn job_name(def: &JobDef) -> String {
    if def.webide {
        "terminal".into()
    } else {
        format!("job-{}", def.id)
    }
}

/// A Web IDE terminal's stage is `terminal` (WI-1).
fn stage(def: &JobDef) -> &'static str {
    if def.webide {
        "terminal"
    } else {
        "test"
    }
}

/// A declared service as GitLab sends it: the port's protocol and name filled
/// in with `http` and `default_port` (`Gitlab::Ci::Build::Port`, WI-1).
fn service(spec: &ServiceSpec) -> Service {
    Service {
        name: spec.name.clone(),
        alias: spec.alias.clone(),
        entrypoint: None,
        command: None,
        ports: spec
            .ports
            .iter()
            .map(|number| Port {
                number: *number,
                protocol: Some("http".into()),
                name: Some("default_port".into()),
            })
            .collect(),
        variables: Vec::new(),
        pull_policy: None,
    }
}

struct Project {
    id: u64,
    path: String,
}

impl Project {
    fn of(def: &JobDef) -> Project {
        Project {
            // Stable per name, and not a HashMap's: traces stay deterministic.
            id: 1000 + def.project.bytes().map(u64::from).sum::<u64>(),
            path: format!("{NAMESPACE}/{}", def.project),
        }
    }

    /// The repository job `def` builds ([`Repository`]).
    fn repository(&self, def: &JobDef) -> Repository {
        Repository::new(&self.path, def.id, &def.owner)
    }

    fn url(&self, server: &Server) -> String {
        format!("{}/{}", server.url(), self.path)
    }

    fn repository_url(&self, server: &Server, token: &str) -> String {
        let authority = server.url().replacen("http://", "", 1);
        format!(
            "http://gitlab-ci-token:{token}@{authority}/{}.git",
            self.path
        )
    }
}

fn variables(
    def: &JobDef,
    server: &Server,
    project: &Project,
    repository: &Repository,
    token: &str,
) -> Vec<Variable> {
    let predefined = |key: &str, value: String| Variable {
        key: key.into(),
        value,
        public: true,
        masked: false,
        file: false,
        raw: false,
    };
    let secret = |key: &str, value: String| Variable {
        public: false,
        masked: true,
        ..predefined(key, value)
    };
    let url = server.url();
    let project_url = project.url(server);
    let (major, minor, patch) = {
        let mut parts = SERVER_VERSION.split('.');
        let mut next = || parts.next().unwrap_or("0").to_string();
        (next(), next(), next())
    };
    let commit = repository.sha.clone();
    let mut variables = vec![
        predefined("CI_PIPELINE_ID", def.id.to_string()),
        predefined(
            "CI_PIPELINE_URL",
            format!("{project_url}/-/pipelines/{}", def.id),
        ),
        predefined("CI_JOB_ID", def.id.to_string()),
        predefined("CI_JOB_URL", format!("{project_url}/-/jobs/{}", def.id)),
        secret("CI_JOB_TOKEN", token.to_string()),
        predefined("CI_JOB_STARTED_AT", CREATED_AT.into()),
        predefined("CI_REGISTRY_USER", "gitlab-ci-token".into()),
        secret("CI_REGISTRY_PASSWORD", token.to_string()),
        Variable {
            public: false,
            ..predefined("CI_REPOSITORY_URL", project.repository_url(server, token))
        },
        predefined("CI_JOB_NAME", job_name(def)),
        predefined("CI_JOB_NAME_SLUG", job_name(def)),
        predefined("CI_JOB_STAGE", stage(def).into()),
        predefined("CI_NODE_TOTAL", "1".into()),
        predefined("GITLAB_USER_ID", (100 + def.id).to_string()),
        predefined("GITLAB_USER_EMAIL", format!("{}@example.com", def.owner)),
        predefined("GITLAB_USER_LOGIN", def.owner.clone()),
        predefined("GITLAB_USER_NAME", def.owner.clone()),
        predefined("CI", "true".into()),
        predefined("GITLAB_CI", "true".into()),
        predefined("CI_SERVER_URL", url.clone()),
        predefined("CI_SERVER_HOST", server.host.clone()),
        predefined("CI_SERVER_PORT", server.port.to_string()),
        predefined("CI_SERVER_PROTOCOL", "http".into()),
        predefined("CI_SERVER_NAME", "GitLab".into()),
        predefined("CI_SERVER_VERSION", SERVER_VERSION.into()),
        predefined("CI_SERVER_VERSION_MAJOR", major),
        predefined("CI_SERVER_VERSION_MINOR", minor),
        predefined("CI_SERVER_VERSION_PATCH", patch),
        predefined("CI_SERVER_REVISION", SERVER_REVISION.into()),
        predefined("GITLAB_FEATURES", String::new()),
        predefined("CI_PROJECT_ID", project.id.to_string()),
        predefined("CI_PROJECT_NAME", def.project.clone()),
        predefined("CI_PROJECT_TITLE", def.project.clone()),
        predefined("CI_PROJECT_PATH", project.path.clone()),
        predefined("CI_PROJECT_PATH_SLUG", project.path.replace('/', "-")),
        predefined("CI_PROJECT_NAMESPACE", NAMESPACE.into()),
        predefined("CI_PROJECT_ROOT_NAMESPACE", NAMESPACE.into()),
        predefined("CI_PROJECT_URL", project_url.clone()),
        predefined("CI_PROJECT_VISIBILITY", "private".into()),
        predefined("CI_DEFAULT_BRANCH", "main".into()),
        predefined("CI_CONFIG_PATH", ".gitlab-ci.yml".into()),
        predefined("CI_API_V4_URL", format!("{url}/api/v4")),
        predefined("CI_PIPELINE_IID", def.id.to_string()),
        predefined(
            "CI_PIPELINE_SOURCE",
            if def.webide { "webide" } else { "push" }.into(),
        ),
        predefined("CI_PIPELINE_CREATED_AT", CREATED_AT.into()),
        predefined("CI_COMMIT_SHA", commit.clone()),
        predefined("CI_COMMIT_SHORT_SHA", commit[..8].to_string()),
        predefined("CI_COMMIT_BEFORE_SHA", repository.before_sha.clone()),
        predefined("CI_COMMIT_REF_NAME", "main".into()),
        predefined("CI_COMMIT_REF_SLUG", "main".into()),
        predefined("CI_COMMIT_BRANCH", "main".into()),
        predefined("CI_COMMIT_REF_PROTECTED", "true".into()),
        predefined("CI_COMMIT_MESSAGE", MESSAGE.into()),
        predefined("CI_COMMIT_TITLE", MESSAGE.trim_end().into()),
        predefined("CI_COMMIT_DESCRIPTION", String::new()),
        predefined("CI_COMMIT_TIMESTAMP", CREATED_AT.into()),
        predefined(
            "CI_COMMIT_AUTHOR",
            format!("{0} <{0}@example.com>", def.owner),
        ),
        predefined("CI_RUNNER_ID", RUNNER_ID.to_string()),
        predefined("CI_RUNNER_DESCRIPTION", "session-harness runner".into()),
        predefined("CI_RUNNER_TAGS", "[]".into()),
        // `.gitlab-ci.yml`'s own variables are not public.
        Variable {
            public: false,
            ..predefined("GIT_STRATEGY", "none".into())
        },
    ];
    variables.extend(def.variables.iter().map(|(k, v)| Variable {
        public: false,
        ..predefined(k, v.clone())
    }));
    variables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webide_job() -> JobDef {
        JobDef {
            id: 4,
            owner: "alice".into(),
            project: "demo".into(),
            script: vec!["sleep 60".into()],
            timeout: std::time::Duration::from_secs(3600),
            variables: Vec::new(),
            image: None,
            webide: true,
            services: Some(vec![ServiceSpec {
                name: "registry.gitlab.com/gitlab-org/webide-file-sync:latest".into(),
                alias: Some("webide-file-sync".into()),
                ports: vec![3000],
                closed_ports: Vec::new(),
            }]),
        }
    }

    /// WI-1: the `terminal` job of a `webide` pipeline, its service's ports
    /// with GitLab's defaults filled in.
    #[test]
    fn a_web_ide_terminal_is_gitlabs_terminal_job_of_a_webide_pipeline() {
        let server = Server::from_host_header("gitlab");
        let job = serde_json::to_value(job_response(&webide_job(), &server, None)).unwrap();
        assert_eq!(job["job_info"]["name"], "terminal");
        assert_eq!(job["job_info"]["stage"], "terminal");
        let variable = |key: &str| {
            job["variables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["key"] == key)
                .map(|v| v["value"].clone())
        };
        assert_eq!(variable("CI_PIPELINE_SOURCE"), Some("webide".into()));
        assert_eq!(variable("CI_JOB_NAME"), Some("terminal".into()));
        let service = &job["services"][0];
        assert_eq!(service["alias"], "webide-file-sync");
        assert_eq!(
            service["ports"],
            serde_json::json!([{"number": 3000, "protocol": "http", "name": "default_port"}])
        );
        assert!(
            service["command"].is_null(),
            "GitLab writes null: {service}"
        );
    }

    #[test]
    fn an_ordinary_job_keeps_the_pipelines_default_service() {
        let def = JobDef {
            webide: false,
            services: None,
            ..webide_job()
        };
        let job = serde_json::to_value(job_response(
            &def,
            &Server::from_host_header("gitlab"),
            None,
        ))
        .unwrap();
        assert_eq!(job["job_info"]["name"], "job-4");
        assert_eq!(job["services"][0]["name"], SERVICE);
        assert!(job["services"][0]["alias"].is_null());
    }
}
