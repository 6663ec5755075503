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
        let why = skip::reason(s).or_else(|| match scale(s, options.scale, options.slack) {
            Err(why) => Some(why),
            Ok(scaled) => match options.runner {
                Runner::Running => {
                    skip::reason_attached(&scaled.scenario, default_timeout(options.scale))
                }
                _ => None,
            },
        });
        line(why.as_deref(), &s.id, &s.spec, &s.title);
    }
    let settings = endpoint::Settings {
        pings: options.pings,
        slack: options.slack,
    };
    for case in &endpoint::CASES {
        let why = case.skipped(&settings);
        line(why.as_deref(), &case.id(), &case.spec(), case.title);
    }
    out
}
