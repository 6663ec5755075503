//! Reading and checking scenario files. Every error names the file, the line
//! and the field, and says what is expected.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Action, Open, Scenario, Step};

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
        let (line, field) = refused_key(text, line, e.message());
        err(line, &field, e.message().trim().to_string())
    })?;
    scenario.path = path.to_path_buf();
    scenario.id = id.to_string();
    check(&scenario, text).map_err(|(line, field, message)| err(line, &field, message))?;
    scenario.steps.sort_by_key(|s| s.at);
    Ok(scenario)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Where the key serde refused is, and its name: serde reports a refusal
/// inside a step (a tagged enum, read whole first) at the step's `[[step]]`
/// header, so the key is looked up in that table. Its words name the key
/// (`unknown field `mode``, `missing field `job``) or the value
/// (`unknown variant `opne``); the field is then `step N (do = "..."): key`.
fn refused_key(text: &str, line: Option<usize>, message: &str) -> (Option<usize>, String) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(header) = line.filter(|n| {
        lines
            .get(n.wrapping_sub(1))
            .is_some_and(|l| l.trim_start().starts_with('['))
    }) else {
        return (line, String::new());
    };
    let quoted = message.split('`').nth(1).unwrap_or_default();
    let table: Vec<(usize, &str, &str)> = lines
        .iter()
        .enumerate()
        .skip(header)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .filter_map(|(i, l)| {
            let (key, value) = l.split_once('=')?;
            Some((i + 1, key.trim(), value.trim().trim_matches('"')))
        })
        .collect();
    let found = if message.starts_with("unknown variant") {
        table.iter().find(|(_, _, value)| *value == quoted)
    } else {
        table.iter().find(|(_, key, _)| *key == quoted)
    };
    let key = found.map_or(quoted, |(_, key, _)| key);
    let field = match lines[header - 1].trim() {
        "[[step]]" => {
            let n = lines[..header]
                .iter()
                .filter(|l| l.trim() == "[[step]]")
                .count();
            let action = table
                .iter()
                .find(|(_, key, _)| *key == "do")
                .map_or("", |(_, _, value)| value);
            format!("step {n} (do = {action:?}): {key}")
        }
        _ => key.to_string(),
    };
    (found.map_or(line, |(n, _, _)| Some(*n)), field)
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
    if s.runner.replicas == 0 {
        return Err(top("replicas", "at least 1".into()));
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
        let field = format!("step {} (do = {:?})", i + 1, step.action.name());
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
    hosts.extend(s.runner.hosts());
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
    let mut names: Vec<String> = s
        .steps
        .iter()
        .filter_map(|st| st.browser().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What one browser of a scenario does: who it is signed in as (a declared
/// browser's user, else the user it is named after) and its steps, in order.
pub struct BrowserPlan {
    pub name: String,
    pub user: Option<String>,
    pub steps: Vec<Step>,
}

/// Every browser's plan, in name order.
pub fn browser_plans(s: &Scenario) -> Vec<BrowserPlan> {
    browser_names(s)
        .into_iter()
        .map(|name| BrowserPlan {
            user: match s.browsers.get(&name) {
                Some(b) => b.user.clone(),
                None => Some(name.clone()),
            },
            steps: s
                .steps
                .iter()
                .filter(|st| st.browser() == Some(name.as_str()))
                .cloned()
                .collect(),
            name,
        })
        .collect()
}

fn check_step(s: &Scenario, step: &Step, hosts: &[String]) -> Result<(), String> {
    let browser = |name: &str| {
        if is_browser(s, name) {
            Ok(())
        } else {
            Err(format!(
                "browser {name:?} is not a user or a declared browser"
            ))
        }
    };
    let job = |id: u64| {
        if s.jobs.iter().any(|j| j.id == id) {
            Ok(())
        } else {
            Err(format!("job {id} is not defined by a [[job]]"))
        }
    };
    let host = |key: &str, name: &str| {
        if hosts.iter().any(|h| h == name) {
            Ok(())
        } else {
            Err(format!(
                "{key} = {name:?} is not a host of this world ({})",
                hosts.join(", ")
            ))
        }
    };
    match &step.action {
        Action::Open(Open {
            browser: name,
            job: id,
            ..
        }) => {
            browser(name)?;
            job(*id)
        }
        Action::Fetch {
            browser: name,
            job: id,
            ..
        } => {
            browser(name)?;
            job(*id)
        }
        Action::Type {
            browser: name,
            repeat,
            ..
        } => {
            if *repeat == 0 {
                return Err("repeat = 0 types nothing: use 1 or more".into());
            }
            browser(name)
        }
        Action::Close { browser: name } | Action::Vanish { browser: name } => browser(name),
        Action::Cancel { job: id } => job(*id),
        Action::Signal { .. } => Ok(()),
        Action::Revoke { user, .. } => {
            if s.users.contains_key(user) {
                Ok(())
            } else {
                Err(format!("user = {user:?} is not a user: add [users.{user}]"))
            }
        }
        Action::Archive { .. } => Ok(()),
        Action::Partition(link)
        | Action::Repair(link)
        | Action::Hold(link)
        | Action::Release(link) => {
            host("a", &link.a)?;
            host("b", &link.b)
        }
        Action::Crash { host: name } | Action::Bounce { host: name } => host("host", name),
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
    fn bad_steps_name_their_line_and_field() {
        // (change, line, field, words that say what to write instead)
        for (from, to, line, field, words) in [
            (
                "do = \"open\"",
                "do = \"opne\"",
                13,
                "step 1 (do = \"opne\"): do",
                "`open`, `fetch`, `type`",
            ),
            (
                "job = 1\n",
                "job = 1\nmode = \"abort\"\n",
                16,
                "step 1 (do = \"open\"): mode",
                "`browser`, `job`, `via`",
            ),
            (
                "job = 1\n",
                "job = 1\nvia = \"dirct\"\n",
                16,
                "step 1 (do = \"open\"): via",
                "`gitlab` or `direct`",
            ),
            (
                "job = 1\n",
                "",
                11,
                "step 1 (do = \"open\"): job",
                "missing field `job`",
            ),
        ] {
            let err = load(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (Some(line), field), "{err}");
            assert!(err.message.contains(words), "{err}");
        }
        let err = load(&GOOD.replace("job = 1\n", "job = 1\ntoken = \"wrong\"\n")).unwrap_err();
        assert_eq!(err.line, Some(11), "{err}");
        assert!(err.message.contains("add via = \"direct\""), "{err}");
        let err = load(&GOOD.replace("job = 1\n", "job = 1\nvia = \"direct\"\ntoken = \"mine\"\n"))
            .unwrap_err();
        assert!(err.message.contains("own, none, empty"), "{err}");
    }

    #[test]
    fn bad_choices_outside_steps_name_their_line() {
        for (to, line, words) in [
            (
                "[runner]\nexecutor = \"k8s\"\n",
                6,
                "`shell`, `docker`, `custom`",
            ),
            (
                "[network]\nfront_proxy = \"strip\"\n",
                6,
                "`pass` or `strip-upgrade`",
            ),
        ] {
            let err = load(&GOOD.replace("[users.alice]\n", &format!("{to}[users.alice]\n")))
                .unwrap_err();
            assert_eq!(err.line, Some(line), "{err}");
            assert!(err.message.contains(words), "{err}");
        }
        let err = load(&GOOD.replace(
            "script = [\"sleep 1\"]",
            "script = [\"sleep 1\"]\ncontainer_start = \"soon\"",
        ))
        .unwrap_err();
        assert!(err.message.contains("\"never\""), "{err}");
    }

    #[test]
    fn a_fetch_needs_a_service_target_and_says_how_to_write_one() {
        let fetch = GOOD.replace("do = \"open\"", "do = \"fetch\"");
        let err = load(&fetch).unwrap_err();
        assert!(err.message.contains("missing field `proxy`"), "{err}");
        let err = load(&fetch.replace("job = 1\n", "job = 1\nproxy = \"svc\"\n"));
        let err = err.unwrap_err();
        assert!(err.message.contains("<service>/<port>/<path>"), "{err}");
        let ok = fetch.replace("job = 1\n", "job = 1\nproxy = \"svc/3000/x\"\n");
        let Action::Fetch { proxy, .. } = &load(&ok).unwrap().steps[0].action else {
            panic!("a fetch step loads as a fetch")
        };
        assert_eq!(proxy.to_string(), "svc/3000/x");
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
        assert!(unknown.message.contains("`get`, `post`"), "{unknown}");
        let good = load(&GOOD.replace("job = 1", "job = 1\nvia = \"direct\"\nrequest = \"post\""));
        let Action::Open(open) = &good.unwrap().steps[0].action else {
            panic!("an open step loads as an open")
        };
        assert_eq!(open.request, Some(crate::scenario::Shape::Post));
    }
}
