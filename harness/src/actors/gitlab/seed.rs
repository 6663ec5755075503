//! A GitLab as a scenario describes it: its users and their roles, its
//! projects, its queued jobs, and the token its runner registers with. The
//! simulation, `conform` and `serve` all start from this one.

use super::{Gitlab, JobDef};
use crate::scenario::Scenario;
use crate::trace::Recorder;

/// The runner token GitLab accepts (the runner's `[[runners]] token`).
pub const RUNNER_TOKEN: &str = "glrt-session-harness";

/// GitLab holding `scenario`'s users, projects and jobs; what it does is
/// recorded by `recorder`.
pub fn of_scenario(scenario: &Scenario, recorder: &Recorder) -> Gitlab {
    let gitlab = Gitlab::new(
        recorder.clone(),
        RUNNER_TOKEN,
        scenario.gitlab.max_session_time.map(|d| d.0),
    );
    for (name, user) in &scenario.users {
        gitlab.add_user(name, user.role);
    }
    for (name, project) in &scenario.projects {
        gitlab.set_archived(name, project.archived);
    }
    for job in &scenario.jobs {
        gitlab.add_job(JobDef {
            id: job.id,
            owner: job.owner.clone(),
            project: job.project.clone(),
            script: job.script.clone(),
            timeout: job.timeout(),
            variables: Vec::new(),
            image: None,
            webide: job.webide,
            services: job.services.clone(),
        });
    }
    gitlab
}
