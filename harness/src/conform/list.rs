//! `conform --list`: every case, and whether it would run against the runner
//! the options describe, or be skipped and why, without a runner.

use std::fmt::Write as _;

use super::scale::scale;
use super::suite::default_timeout;
use super::{endpoint, skip, Options, Runner};

/// One line per case: `RUN ` or `SKIP`, id, SPEC ids, and the title or the reason.
pub fn catalogue(options: &Options) -> String {
    let mut out = String::new();
    let mut line = |run: Option<&str>, id: &str, spec: &[String], title: &str| {
        let (status, text) = match run {
            None => ("RUN ", title),
            Some(why) => ("SKIP", why),
        };
        let _ = writeln!(out, "{status} {id:<44} {:<22} {text}", spec.join(" "));
    };
    if !matches!(options.runner, Runner::Session(_)) {
        line(
            None,
            "runner/job-request",
            &["JOB-1".into(), "CFG-1".into()],
            "The job request describes the runner and offers a session",
        );
    }
    for s in &options.scenarios {
        let why = skip::reason(s)
            .or_else(|| skip::reason_docker(s, options))
            .or_else(|| match scale(s, options.scale, options.slack) {
                Err(why) => Some(why),
                Ok(scaled) => match options.runner {
                    Runner::Running | Runner::Kept { .. } => skip::reason_attached(
                        &scaled.scenario,
                        default_timeout(options.scale),
                        &options.runner,
                    ),
                    _ => None,
                },
            });
        line(why.as_deref(), &s.id, &s.spec, &s.title);
    }
    let settings = endpoint::Settings {
        pings: options.pings,
        slack: options.slack,
    };
    for case in endpoint::CASES.iter().filter(|_| options.endpoint) {
        let why = case.skipped(&settings);
        line(why.as_deref(), &case.id(), &case.spec(), case.title);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::catalogue;

    fn options(runner: Runner, pings: bool) -> Options {
        Options {
            runner,
            scenarios: catalogue::discover(&catalogue::root(), &[]).expect("the catalogue loads"),
            listen: "127.0.0.1:0".into(),
            session_listen: None,
            session_advertise: None,
            config_path: None,
            scale: 0.01,
            slack: Duration::from_millis(500),
            wait_runner: Duration::from_secs(60),
            pings,
            endpoint: true,
            job_image: None,
            engine_holds_starts: false,
            browser: None,
        }
    }

    #[test]
    fn every_case_is_listed_with_what_would_happen_to_it() {
        let command = Runner::Command {
            command: "runner {config}".into(),
            env: Vec::new(),
        };
        let all = options(command, true);
        let listed = catalogue(&all);
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 1 + all.scenarios.len() + endpoint::COUNT);
        assert!(
            lines[0].starts_with("RUN  runner/job-request"),
            "{}",
            lines[0]
        );
        let line = |id: &str| {
            *lines
                .iter()
                .find(|l| l[5..].starts_with(&format!("{id} ")))
                .unwrap_or_else(|| panic!("{id} is listed"))
        };
        assert!(line("endpoint/pings").starts_with("RUN "));
        assert!(
            line("disconnects/held-output-is-not-lost").contains("needs a simulated network fault")
        );
        assert!(line("disconnects/runner-stop-kills-the-terminal").starts_with("RUN "));

        // A runner already running cannot be signalled; --no-pings skips the pings.
        let quick = catalogue(&options(Runner::Running, false));
        let stop = quick
            .lines()
            .find(|l| l.contains("disconnects/runner-stop-kills-the-terminal"))
            .unwrap();
        assert!(
            stop.starts_with("SKIP") && stop.contains("use --runner-cmd"),
            "{stop}"
        );
        let pings = quick
            .lines()
            .find(|l| l.contains("endpoint/pings"))
            .unwrap();
        assert!(
            pings.starts_with("SKIP") && pings.contains("--no-pings"),
            "{pings}"
        );
    }
}
