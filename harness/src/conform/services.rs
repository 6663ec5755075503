//! A job's services for real (WI-5): in the simulation each is a host of its
//! own (its alias), which a runner on this machine has no way to reach. Here
//! the harness serves each of its open ports itself, on 127.0.0.1 and a free
//! port, with the simulation's own service (`actors::service`: HTTP says what
//! it received, a WebSocket greets and echoes), and GitLab's job names the
//! service so that the runner reaches that listener: `127.0.0.1` first among
//! its aliases (GitLab Runner's `alias` takes several, separated by spaces),
//! then its own alias, by which the proxy's URL names it; its ports are the
//! real ones, and so are the ports in the steps' proxy targets. The service
//! still calls itself by its declared alias and port in what it answers, so
//! a scenario's expectations hold as written.
//!
//! A runner that dials a service at its first alias (this project's, for the
//! shell executor) reaches the listener. One that runs no services for its
//! executor has nothing to proxy to, and fails these scenarios with its
//! proxy's answer.

use std::collections::BTreeMap;

use session_server::net::{Net, TokioNet};
use tokio::task::JoinHandle;

use crate::actors::service;
use crate::scenario::{Action, Scenario};

/// The listeners of one scenario's services; they stop when it is dropped.
pub struct Services(Vec<JoinHandle<()>>);

impl Drop for Services {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Serves `scenario`'s job services and says how the runner must see them.
pub async fn serve(scenario: &Scenario) -> anyhow::Result<(Scenario, Services)> {
    let mut out = scenario.clone();
    let mut tasks = Vec::new();
    // (job, name or alias, declared port) → the real port.
    let mut real: BTreeMap<(u64, String, u16), u16> = BTreeMap::new();
    for job in &mut out.jobs {
        for spec in job.services.iter_mut().flatten() {
            let label = spec.host().to_string();
            let names: Vec<String> = std::iter::once(spec.name.clone())
                .chain(spec.alias.iter().flat_map(|a| aliases(a)))
                .collect();
            let mut ports = Vec::new();
            for &declared in &spec.ports {
                let port = if spec.closed_ports.contains(&declared) {
                    unused_port().await?
                } else {
                    let listener = TokioNet.bind("127.0.0.1:0").await?;
                    let port = listener.local_addr()?.port();
                    tasks.push(tokio::spawn(service::serve::<TokioNet>(
                        listener,
                        label.clone(),
                        declared,
                    )));
                    port
                };
                for name in &names {
                    real.insert((job.id, name.clone(), declared), port);
                }
                ports.push((declared, port));
            }
            let port_of = |p: &u16| ports.iter().find(|(d, _)| d == p).map_or(*p, |(_, r)| *r);
            spec.closed_ports = spec.closed_ports.iter().map(port_of).collect();
            spec.ports = spec.ports.iter().map(port_of).collect();
            spec.alias = Some(match &spec.alias {
                Some(alias) => format!("127.0.0.1 {alias}"),
                None => "127.0.0.1".to_string(),
            });
        }
    }
    for step in &mut out.steps {
        let (job, target) = match &mut step.action {
            Action::Fetch { job, proxy, .. } => (*job, proxy),
            Action::Open(open) => match &mut open.proxy {
                Some(proxy) => (open.job, proxy),
                None => continue,
            },
            _ => continue,
        };
        let declared = target.port.parse::<u16>().ok();
        let found = declared.and_then(|p| real.get(&(job, target.service.clone(), p)));
        if let Some(port) = found {
            target.port = port.to_string();
        }
    }
    Ok((out, Services(tasks)))
}

/// Whether `scenario`'s jobs have services to serve.
pub fn any(scenario: &Scenario) -> bool {
    scenario
        .jobs
        .iter()
        .any(|j| j.services.iter().flatten().next().is_some())
}

/// GitLab Runner's `alias`: one or more, separated by commas or spaces.
fn aliases(alias: &str) -> impl Iterator<Item = String> + '_ {
    alias
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// A port on 127.0.0.1 that nothing listens on, for a declared port the
/// scenario keeps closed: one the system just gave out and took back.
async fn unused_port() -> std::io::Result<u16> {
    let listener = TokioNet.bind("127.0.0.1:0").await?;
    listener.local_addr().map(|a| a.port())
}
