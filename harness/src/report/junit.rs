//! A report as JUnit XML, as GitLab CI's `artifacts:reports:junit` reads it:
//! one test case per case, named by its id and SPEC ids (a soak's by its
//! round too), a failure with the case's lines for people.

use std::fmt::Write as _;

use super::{human, Case, Command, Report, Status};

/// `id [SPEC ids]`, after `round N: ` for a soak's case.
pub fn name(case: &Case) -> String {
    let round = case.round.map_or(String::new(), |r| format!("round {r}: "));
    match case.spec.is_empty() {
        true => format!("{round}{}", case.id),
        false => format!("{round}{} [{}]", case.id, case.spec.join(" ")),
    }
}

/// The report as one test suite. A case skipped in every round of a soak
/// is reported once, in its first.
pub fn suite(report: &Report) -> String {
    let suite = match report.command {
        Command::Run => "session-harness",
        Command::Conform => "session-harness conform",
        Command::Soak => "session-harness conform soak",
        Command::Fuzz => "session-harness fuzz",
    };
    let cases: Vec<&Case> = report
        .cases
        .iter()
        .filter(|c| !(c.status == Status::Skipped && c.round.is_some_and(|r| r > 1)))
        .collect();
    let count = |status: Status| cases.iter().filter(|c| c.status == status).count();
    let skipped = match count(Status::Skipped) {
        0 => String::new(),
        n => format!(" skipped=\"{n}\""),
    };
    let time: f64 = cases.iter().map(|c| c.wall.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\"{skipped} time=\"{time:.3}\">",
        xml(suite),
        cases.len(),
        count(Status::Failed),
    );
    for case in cases {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(suite),
            xml(&name(case)),
            case.wall.as_secs_f64()
        );
        match case.status {
            Status::Passed | Status::PassedNonStrict => out.push_str("/>\n"),
            Status::Failed => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    xml(&case.title),
                    xml(&human(case, 1, 1))
                );
            }
            Status::Skipped => {
                let _ = writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    xml(case.skipped.as_deref().unwrap_or_default())
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
