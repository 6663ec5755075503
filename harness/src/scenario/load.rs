//! Reading and checking scenario files. Every error names the file, the line
//! and the field, and says what is expected.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Dur, Scenario, Step};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// Loads `path`; its id is its path relative to `root` without `.toml`.
pub fn load(path: &Path, root: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        line: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let id = path
        .strip_prefix(root)
        .unwrap_or(path)
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    load_str(&text, path, &id)
}

pub fn load_str(text: &str, path: &Path, id: &str) -> Result<Scenario, LoadError> {
    let err = |line: Option<usize>, field: &str, message: String| LoadError {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
        message,
    };
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        err(line, "", e.message().trim().to_string())
    })?;
    scenario.path = path.to_path_buf();
    scenario.id = id.to_string();
    check(&scenario, text).map_err(|(line, field, message)| err(line, &field, message))?;
    scenario.steps.sort_by_key(|s| s.at);
    Ok(scenario)
}

/// The token shapes of a direct `open` (EX-1, EX-7), besides `job:N`.
/// The request shapes of an `open`: a WebSocket upgrade, or one that is not.
const REQUESTS: [&str; 4] = ["upgrade", "get", "post", "http10-upgrade"];

const TOKENS: [&str; 8] = [
    "own",
    "none",
    "empty",
    "wrong",
    "bearer",
    "prefix",
    "appended",
    "other-case",
];

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of the `n`-th (0-based) line that starts with `header`.
fn nth_header(text: &str, header: &str, n: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(header))
        .nth(n)
        .map(|(i, _)| i + 1)
}

fn first_line_with(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

type Problem = (Option<usize>, String, String);

fn check(s: &Scenario, text: &str) -> Result<(), Problem> {
    let top = |field: &str, message: String| -> Problem {
        (first_line_with(text, field), field.to_string(), message)
    };
    if s.spec.is_empty() {
        return Err(top(
            "spec",
            "name at least one SPEC id, e.g. spec = [\"LC-1\"]".into(),
        ));
    }
    for id in &s.spec {
        if crate::spec::rule(id).is_none() {
            return Err(top(
                "spec",
                format!("{id:?} is not a rule of SPEC.md (e.g. LC-1, EX-4, WS-6): see SPEC.md at the repository's root"),
            ));
        }
    }
    if !["shell", "docker", "custom"].contains(&s.runner.executor.as_str()) {
        return Err(top(
            "executor",
            format!("{:?}: use shell, docker or custom", s.runner.executor),
        ));
    }
    if s.runner.replicas == 0 {
        return Err(top("replicas", "at least 1".into()));
    }
    if let Some(mode) = &s.network.front_proxy {
        if mode != "pass" && mode != "strip-upgrade" {
            return Err(top(
                "front_proxy",
                format!("{mode:?}: use \"pass\" or \"strip-upgrade\""),
            ));
        }
    }
    for (i, job) in s.jobs.iter().enumerate() {
        let at = nth_header(text, "[[job]]", i);
        if s.jobs[..i].iter().any(|j| j.id == job.id) {
            return Err((
                at,
                format!("job {}", job.id),
                "job ids must be unique".into(),
            ));
        }
        if !s.users.contains_key(&job.owner) {
            return Err((
                at,
                format!("job {}: owner", job.id),
                format!("{:?} is not a user: add [users.{}]", job.owner, job.owner),
            ));
        }
        if let Some(start) = &job.container_start {
            if start != "never" && Dur::parse(start).is_err() {
                return Err((
                    at,
                    format!("job {}: container_start", job.id),
                    format!("{start:?}: a duration or \"never\""),
                ));
            }
        }
    }
    for (name, browser) in &s.browsers {
        if let Some(user) = browser.user.as_ref().filter(|u| !s.users.contains_key(*u)) {
            return Err(top(
                &format!("[browsers.{name}]"),
                format!("user {user:?} is not a user"),
            ));
        }
    }
    let hosts = hosts(s);
    for (i, step) in s.steps.iter().enumerate() {
        let at = nth_header(text, "[[step]]", i);
        let field = format!("step {} (do = {:?})", i + 1, step.action);
        check_step(s, step, &hosts).map_err(|message| (at, field, message))?;
    }
    for name in s.expect.browser.keys() {
        if !is_browser(s, name) {
            return Err(top(
                &format!("[expect.browser.{name}]"),
                "no such browser".into(),
            ));
        }
    }
    for id in s.expect.job.keys() {
        if !id
            .parse::<u64>()
            .is_ok_and(|id| s.jobs.iter().any(|j| j.id == id))
        {
            return Err(top(&format!("[expect.job.{id}]"), "no such job".into()));
        }
    }
    Ok(())
}

fn is_browser(s: &Scenario, name: &str) -> bool {
    s.browsers.contains_key(name) || s.users.contains_key(name)
}

/// The hosts of the world a scenario builds (for faults).
pub fn hosts(s: &Scenario) -> Vec<String> {
    let mut hosts = vec!["gitlab".to_string()];
    hosts.extend(crate::world::runner_hosts(s.runner.replicas));
    if s.runner.replicas > 1 {
        hosts.push("lb".into());
    }
    for service in s.jobs.iter().flat_map(|j| j.services.iter().flatten()) {
        if !hosts.iter().any(|h| h == service.host()) {
            hosts.push(service.host().to_string());
        }
    }
    if s.network.front_proxy.is_some() {
        hosts.push("proxy".into());
    }
    if s.network.runner_tls_proxy {
        hosts.push("runner-proxy".into());
    }
    hosts.extend(browser_names(s));
    hosts
}

/// Every browser a scenario uses, in name order.
pub fn browser_names(s: &Scenario) -> Vec<String> {
    let mut names: Vec<String> = s.steps.iter().filter_map(|st| st.browser.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// `proxy = "<service>/<port>/<path>"` of a step that reaches a job's service.
fn need_proxy(step: &Step) -> Result<(), String> {
    match step.proxy.as_deref() {
        Some(p) if crate::world::gitlab::ProxyTarget::parse(p).is_some() => Ok(()),
        Some(p) => Err(format!(
            "proxy = {p:?}: use \"<service>/<port>/<path>\", e.g. \"webide-file-sync/3000/\""
        )),
        None => Err("needs proxy = \"<service>/<port>/<path>\"".into()),
    }
}

fn check_step(s: &Scenario, step: &Step, hosts: &[String]) -> Result<(), String> {
    let need_browser = || match &step.browser {
        Some(b) if is_browser(s, b) => Ok(()),
        Some(b) => Err(format!("browser {b:?} is not a user or a declared browser")),
        None => Err("needs browser = \"...\"".into()),
    };
    let need_job = || match step.job {
        Some(id) if s.jobs.iter().any(|j| j.id == id) => Ok(()),
        Some(id) => Err(format!("job {id} is not defined by a [[job]]")),
        None => Err("needs job = N".into()),
    };
    let need_host = |key: &str, value: &Option<String>| match value {
        Some(h) if hosts.contains(h) => Ok(()),
        Some(h) => Err(format!(
            "{key} = {h:?} is not a host of this world ({})",
            hosts.join(", ")
        )),
        None => Err(format!("needs {key} = \"host\"")),
    };
    match step.action.as_str() {
        "open" => {
            need_browser()?;
            need_job()?;
            match step.via.as_deref().unwrap_or("gitlab") {
                "gitlab" | "direct" => {}
                other => return Err(format!("via = {other:?}: use \"gitlab\" or \"direct\"")),
            }
            if let Some(token) = &step.token {
                let ok = TOKENS.contains(&token.as_str())
                    || token.strip_prefix("job:").is_some_and(|n| n.parse::<u64>().is_ok());
                if !ok {
                    return Err(format!("token = {token:?}: use one of {} or job:N", TOKENS.join(", ")));
                }
            }
            match step.request.as_deref() {
                None | Some("upgrade") => {}
                Some(shape) if !REQUESTS.contains(&shape) => {
                    return Err(format!("request = {shape:?}: use one of {}", REQUESTS.join(", ")))
                }
                Some(shape) if step.via.as_deref() != Some("direct") => {
                    return Err(format!(
                        "request = {shape:?} is sent straight to the runner: add via = \"direct\""
                    ))
                }
                Some(_) => {}
            }
            if step.proxy.is_some() {
                if step.via.as_deref() == Some("direct") {
                    return Err("proxy = \"...\" opens a service through GitLab: drop via = \"direct\"".into());
                }
                need_proxy(step)?;
            }
            Ok(())
        }
        "fetch" => {
            need_browser()?;
            need_job()?;
            need_proxy(step)
        }
        "type" => {
            need_browser()?;
            if step.repeat == Some(0) {
                return Err("repeat = 0 types nothing: use 1 or more".into());
            }
            step.text.as_ref().map(|_| ()).ok_or_else(|| "needs text = \"...\"".to_string())
        }
        "close" | "vanish" => need_browser(),
        "cancel" => need_job(),
        "signal" => match step.mode.as_deref() {
            Some("abort" | "graceful") => Ok(()),
            _ => Err("needs mode = \"abort\" (SIGTERM) or \"graceful\" (SIGQUIT)".into()),
        },
        "revoke" => match (&step.user, step.role) {
            (Some(u), Some(_)) if s.users.contains_key(u) => Ok(()),
            _ => Err("needs user = \"<a user>\" and role = \"reporter\" (the new role)".into()),
        },
        "archive" => step.project.as_ref().map(|_| ()).ok_or_else(|| "needs project = \"...\"".to_string()),
        "partition" | "repair" | "hold" | "release" => {
            need_host("a", &step.a)?;
            need_host("b", &step.b)
        }
        "crash" | "bounce" => need_host("host", &step.host),
        other => Err(format!(
            "unknown action {other:?}: use open, fetch, type, close, vanish, cancel, signal, revoke, archive, partition, repair, hold, release, crash or bounce"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "t"
user_sees = "u"
spec = ["LC-1"]
[users.alice]
role = "developer"
[[job]]
id = 1
owner = "alice"
script = ["sleep 1"]
[[step]]
at = "1s"
do = "open"
browser = "alice"
job = 1
"#;

    fn load(text: &str) -> Result<Scenario, LoadError> {
        load_str(text, Path::new("scenarios/x/y.toml"), "x/y")
    }

    #[test]
    fn a_good_scenario_loads() {
        let s = load(GOOD).unwrap();
        assert_eq!(s.steps.len(), 1);
        assert_eq!(s.id, "x/y");
    }

    #[test]
    fn a_syntax_error_names_file_and_line() {
        let err = load("title = \n").unwrap_err().to_string();
        assert!(err.starts_with("scenarios/x/y.toml:1:"), "{err}");
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let err = load(&GOOD.replace("job = 1", "job = 1\ncolour = \"red\"")).unwrap_err();
        assert_eq!(err.line, Some(16));
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn a_step_with_an_unknown_browser_names_the_step() {
        let err = load(&GOOD.replace("browser = \"alice\"", "browser = \"bob\"")).unwrap_err();
        assert_eq!(err.line, Some(11));
        assert!(
            err.to_string().contains("step 1 (do = \"open\")") && err.message.contains("bob"),
            "{err}"
        );
    }

    #[test]
    fn a_fetch_needs_a_service_target_and_says_how_to_write_one() {
        let fetch = GOOD.replace("do = \"open\"", "do = \"fetch\"");
        let err = load(&fetch).unwrap_err();
        assert!(err.message.contains("needs proxy"), "{err}");
        let err = load(&fetch.replace("job = 1\n", "job = 1\nproxy = \"svc\"\n"));
        let err = err.unwrap_err();
        assert!(err.message.contains("<service>/<port>/<path>"), "{err}");
        let ok = fetch.replace("job = 1\n", "job = 1\nproxy = \"svc/3000/x\"\n");
        assert_eq!(
            load(&ok).unwrap().steps[0].proxy.as_deref(),
            Some("svc/3000/x")
        );
    }

    #[test]
    fn a_service_is_opened_through_gitlab_only() {
        let direct = GOOD.replace("job = 1\n", "job = 1\nvia = \"direct\"\nproxy = \"s/1/\"\n");
        let err = load(&direct).unwrap_err();
        assert!(err.message.contains("through GitLab"), "{err}");
    }

    #[test]
    fn a_jobs_services_are_hosts_of_the_world() {
        let webide = GOOD.replace(
            "script = [\"sleep 1\"]",
            "script = [\"sleep 1\"]\nwebide = true\n[[job.service]]\nname = \"img\"\nalias = \"sync\"\nports = [3000]",
        );
        let s = load(&webide).unwrap();
        assert!(s.jobs[0].webide);
        assert!(hosts(&s).contains(&"sync".to_string()), "{:?}", hosts(&s));
    }

    #[test]
    fn an_unknown_spec_id_is_refused() {
        let err = load(&GOOD.replace("LC-1", "LC-9")).unwrap_err();
        assert_eq!(err.field, "spec");
    }

    #[test]
    fn a_request_that_is_not_an_upgrade_must_go_direct_and_have_a_known_shape() {
        let through_gitlab =
            load(&GOOD.replace("job = 1", "job = 1\nrequest = \"get\"")).unwrap_err();
        assert!(
            through_gitlab.message.contains("via = \"direct\""),
            "{through_gitlab}"
        );
        let unknown =
            load(&GOOD.replace("job = 1", "job = 1\nvia = \"direct\"\nrequest = \"put\""))
                .unwrap_err();
        assert!(
            unknown.message.contains("get, post, http10-upgrade"),
            "{unknown}"
        );
        let good = load(&GOOD.replace("job = 1", "job = 1\nvia = \"direct\"\nrequest = \"post\""));
        assert_eq!(good.unwrap().steps[0].request.as_deref(), Some("post"));
    }
}
