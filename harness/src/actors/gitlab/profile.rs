//! The runner as it describes itself in its job requests (JOB-1), as GitLab
//! reads them: the profile a conformance report starts with, and the cause
//! it establishes for the cases that need a terminal when it offers no
//! session.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one job request said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// `info.name` and `info.version` (the runner's version string).
    pub name: String,
    pub version: String,
    pub executor: String,
    pub shell: String,
    /// `info.features.session` and `.terminal`; `None`: not sent.
    pub feature_session: Option<bool>,
    pub feature_terminal: Option<bool>,
    /// The request carried a `session` object with a URL.
    pub session: bool,
}

impl Profile {
    /// The profile in a job request's JSON; whatever is missing stays empty.
    pub fn from_request(body: &Value) -> Profile {
        let info = &body["info"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        Profile {
            name: text(&info["name"]),
            version: text(&info["version"]),
            executor: text(&info["executor"]),
            shell: text(&info["shell"]),
            feature_session: info["features"]["session"].as_bool(),
            feature_terminal: info["features"]["terminal"].as_bool(),
            session: body["session"]["url"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
        }
    }

    /// `gitlab-python-runner 14.3.20, executor shell (bash); features: session true,
    /// terminal true; no session offered`
    pub fn line(&self) -> String {
        let or = |s: &str, none: &str| {
            if s.is_empty() {
                none.to_string()
            } else {
                s.to_string()
            }
        };
        let feature = |f: Option<bool>| f.map_or("not sent".to_string(), |b| b.to_string());
        let shell = if self.shell.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.shell)
        };
        format!(
            "{} {}, executor {}{shell}; features: session {}, terminal {}; {}",
            or(&self.name, "(no name)"),
            or(&self.version, "(no version)"),
            or(&self.executor, "(none said)"),
            feature(self.feature_session),
            feature(self.feature_terminal),
            if self.session {
                "session offered"
            } else {
                "no session offered"
            },
        )
    }

    /// JOB-1 with a `[session_server]` in the config: why the job request is
    /// wrong, if it is.
    pub fn finding(&self) -> Option<String> {
        let claims = self.feature_terminal == Some(true) || self.feature_session == Some(true);
        if !self.session {
            let claim = if claims {
                format!(
                    " although it advertises features.session = {}, features.terminal = {}",
                    self.feature_session.unwrap_or(false),
                    self.feature_terminal.unwrap_or(false)
                )
            } else {
                String::new()
            };
            return Some(format!(
                "no session offered: its job request has no `session` object{claim}, \
                 and its config sets [session_server] listen_address: it has no working session server"
            ));
        }
        (self.feature_session != Some(true)).then(|| {
            "it offers a session but does not advertise features.session = true".to_string()
        })
    }

    /// The cause of every case that needs a terminal, when there can be none.
    pub fn no_terminal(&self) -> Option<String> {
        (!self.session).then(|| {
            "no session offered (JOB-1): the runner took the job without a `session` object, \
             so GitLab cannot open a terminal"
                .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_claiming_a_terminal_without_a_session_is_a_finding() {
        let python = serde_json::json!({
            "token": "t",
            "info": {"name": "gitlab-python-runner", "version": "14.3.20", "executor": "shell",
                     "shell": "bash", "features": {"session": true, "terminal": true}},
        });
        let profile = Profile::from_request(&python);
        assert_eq!(
            profile.line(),
            "gitlab-python-runner 14.3.20, executor shell (bash); features: session true, terminal true; no session offered"
        );
        let finding = profile.finding().unwrap();
        assert!(finding.contains("features.terminal = true"), "{finding}");
        assert!(profile.no_terminal().is_some());

        let with_session = serde_json::json!({
            "info": {"name": "session-server", "version": "0.1.0", "executor": "shell",
                     "features": {"session": true, "terminal": true}},
            "session": {"url": "https://127.0.0.1:1/session/ab", "certificate": "c", "authorization": "t"},
        });
        let profile = Profile::from_request(&with_session);
        assert_eq!(profile.finding(), None);
        assert_eq!(profile.no_terminal(), None);
        assert!(profile.line().ends_with("; session offered"));
    }
}
