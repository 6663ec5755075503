//! Why a scenario cannot run against a real runner: what only the simulation
//! can build (network faults, replicas, proxies, a firewall), times fixed by the
//! protocol that scaling cannot shorten, and what the runner under test would
//! need that the harness cannot give it.

use super::{Options, Runner};
use crate::scenario::{Action, Executor, Scenario};

/// Why `s` cannot run for real, whoever runs the runner; `None`: it can.
pub fn reason(s: &Scenario) -> Option<String> {
    if let Some(why) = &s.conformance_skip {
        return Some(why.clone());
    }
    if let Some(step) = s.steps.iter().find(|st| st.action.is_network_fault()) {
        return Some(format!(
            "needs a simulated network fault (do = \"{}\")",
            step.action.name()
        ));
    }
    let only_simulated = |what: &str| Some(format!("{what}, which only the simulation builds"));
    let n = &s.network;
    if s.runner.replicas > 1 {
        return only_simulated("DP-3: needs runner replicas behind a load balancer");
    }
    if n.front_proxy.is_some() {
        return only_simulated("WH-6: needs a reverse proxy in front of GitLab");
    }
    if n.runner_tls_proxy {
        return only_simulated("TLS-2: needs a TLS-terminating proxy in front of the runner");
    }
    if n.firewall {
        return only_simulated("DP-2: needs a firewall between the browsers and the runner");
    }
    if n.unreachable_advertise {
        return only_simulated("DP-1: needs an advertise_address that GitLab cannot reach");
    }
    if s.steps
        .iter()
        .any(|st| matches!(st.action, Action::Revoke { .. }))
    {
        return Some(
            "WH-3: ends at Workhorse's re-authorization, every 5 minutes (fixed): 5 real minutes"
                .into(),
        );
    }
    for job in &s.jobs {
        if job.prepare.is_some() {
            return Some(format!(
                "EX-3: job {} prepares for a set time, which only the simulated machine can be \
                 told (a real runner prepares as long as it takes)",
                job.id
            ));
        }
    }
    let prompt = s
        .expect
        .browser
        .values()
        .any(|b| b.sees.iter().any(|t| t.contains("$ ")));
    if prompt {
        return Some("expects the simulated shell's prompt \"$ \"; a real shell's differs".into());
    }
    None
}

/// Why a docker scenario cannot run with these options: without
/// `--job-image` the job's default definition has a service
/// (`redis:7-alpine`) and no image, which a Docker Engine without a registry
/// cannot get; a build container that starts late or never
/// (`container_start`) needs an engine that holds starts
/// (`--engine-holds-starts`; `never` is held past the job's timeout). `None`:
/// it can run.
pub fn reason_docker(s: &Scenario, options: &Options) -> Option<String> {
    if s.runner.executor == Executor::Docker && options.job_image.is_none() {
        return Some(
            "docker executor: its jobs need an image the runner's Docker Engine has; pass \
             --job-image <image> (the default job's service redis:7-alpine cannot be pulled \
             offline)"
                .into(),
        );
    }
    let late = s.jobs.iter().find(|j| j.container_start.is_some())?;
    (!options.engine_holds_starts).then(|| {
        format!(
            "DK-1: job {}'s build container starts late or never (container_start), which a \
             real engine does only through .ci/docker-delay-runtime: run the runner's \
             dockerd with it (--add-runtime, as its default runtime) and pass \
             --engine-holds-starts",
            late.id
        )
    })
}

/// Why `s` (scaled) cannot run against one runner that takes every case with
/// one config (`session_timeout` seconds, shell executor): a runner already
/// running, or a soak's; `None`: it can.
pub fn reason_attached(s: &Scenario, session_timeout: u64, runner: &Runner) -> Option<String> {
    let hint = match runner {
        Runner::Kept { .. } => "a soak keeps one runner with one config for every round",
        _ => "use --runner-cmd, and the harness configures the runner for each scenario",
    };
    let r = &s.runner;
    if s.steps
        .iter()
        .any(|st| matches!(st.action, Action::Signal { .. }))
    {
        return Some(format!("LC-4: signals the runner process: {hint}"));
    }
    if !r.session_server {
        return Some(format!(
            "CFG-1: needs a runner without a session server: {hint}"
        ));
    }
    if r.executor != Executor::Shell {
        return Some(format!(
            "needs executor = \"{}\" (the printed config has \"shell\"): {hint}",
            r.executor
        ));
    }
    match r.session_timeout {
        Some(t) if t as u64 != session_timeout => Some(format!(
            "needs session_timeout = {t} (the printed config has {session_timeout}): {hint}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    /// The catalogue's scenarios that can run for real, and a reason for each other.
    #[test]
    fn every_skip_of_the_catalogue_has_a_reason() {
        let root = catalogue::root();
        let scenarios = catalogue::discover(&root, &[]).expect("the catalogue loads");
        let runnable: Vec<&str> = scenarios
            .iter()
            .filter(|s| reason(s).is_none())
            .map(|s| s.id.as_str())
            .collect();
        for id in [
            "disconnects/browser-closes",
            "timeouts/custom-session-timeout",
            "unauthorized/no-token",
            "webide/terminal-opens-and-works",
            "webide/unauthorized-refused-before-the-runner",
            // Its service is the harness's own listener (conform::services).
            "webide/websocket-relays-both-ways",
        ] {
            assert!(runnable.contains(&id), "{id} should run: {runnable:?}");
        }
        for id in [
            "deployment/firewall-allows-only-gitlab",
            "disconnects/held-output-is-not-lost",
            "timeouts/attach-wait-503",
        ] {
            let s = scenarios.iter().find(|s| s.id == id).unwrap();
            assert!(reason(s).is_some(), "{id} cannot run for real");
        }
    }
}
