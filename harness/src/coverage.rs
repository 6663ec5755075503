//! `session-harness coverage`: for each rule of SPEC.md, what checks it:
//! - scenarios (`spec = [...]` of each file under `scenarios/`),
//! - conformance endpoint cases (`conform::endpoint::CASES`),
//! - fuzz invariants ([`crate::fuzz::invariants::INVARIANTS`]),
//! - tests: a `#[test]` (or `#[tokio::test]`, ...) whose comment lines directly
//!   above cite the rule, as a doc comment or a marker `// SPEC: EX-4, WS-6`.
//!
//! A rule with none of these is unchecked, except a `(documentation)` rule,
//! which states what no harness can observe. An id that SPEC.md does not have,
//! cited by a case or a `SPEC:` marker, is an error (scenarios are refused by
//! their loader already).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::{Rule, RULES};

/// What kind of check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Scenario,
    Case,
    Invariant,
    Test,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Scenario => "scenario",
            Kind::Case => "case",
            Kind::Invariant => "invariant",
            Kind::Test => "test",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Check {
    pub kind: Kind,
    /// Scenario id, case name, invariant name, or `path::test_name`.
    pub name: String,
}

/// Checks by rule, and the unknown ids found on the way.
#[derive(Debug, Default)]
pub struct Coverage {
    pub checks: BTreeMap<&'static str, Vec<Check>>,
    /// `(where, id)`: an id SPEC.md does not have.
    pub unknown: Vec<(String, String)>,
}

impl Coverage {
    /// The rules that need a check and have none.
    pub fn unchecked(&self) -> Vec<&'static Rule> {
        RULES
            .iter()
            .filter(|r| !r.documentation && self.of(r.id).is_empty())
            .collect()
    }

    pub fn of(&self, id: &str) -> &[Check] {
        self.checks.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    fn add(&mut self, place: &str, id: &str, kind: Kind, name: &str) {
        match crate::spec::rule(id) {
            Some(rule) => self.checks.entry(rule.id).or_default().push(Check {
                kind,
                name: name.to_string(),
            }),
            None => self.unknown.push((place.to_string(), id.to_string())),
        }
    }

    /// Human text: each rule (or those `selected`), its checks, then a summary.
    pub fn render(&self, selected: &[String]) -> String {
        let mut out = String::new();
        let chosen = |r: &Rule| {
            selected.is_empty()
                || selected.iter().any(|s| {
                    r.id == s
                        || r.id
                            .strip_prefix(s.as_str())
                            .is_some_and(|rest| rest.starts_with('-'))
                })
        };
        for rule in RULES.iter().filter(|r| chosen(r)) {
            let mark = match (rule.documentation, rule.project_defined) {
                (true, _) => " (documentation)",
                (_, true) => " (project-defined)",
                _ => "",
            };
            out.push_str(&format!("{}{mark}  {}\n", rule.id, summary(rule.text)));
            let checks = self.of(rule.id);
            if checks.is_empty() && !rule.documentation {
                out.push_str(
                    "    UNCHECKED: add a scenario, case, invariant or test that cites it\n",
                );
            } else if checks.is_empty() {
                out.push_str("    (no check: not observable)\n");
            }
            for check in checks {
                out.push_str(&format!("    {:<9} {}\n", check.kind, check.name));
            }
        }
        let unchecked = self.unchecked();
        out.push_str(&format!(
            "\n{} of {} rules checked",
            RULES.len() - unchecked.len() - RULES.iter().filter(|r| r.documentation).count(),
            RULES.iter().filter(|r| !r.documentation).count()
        ));
        if !unchecked.is_empty() {
            let ids: Vec<&str> = unchecked.iter().map(|r| r.id).collect();
            out.push_str(&format!("; unchecked: {}", ids.join(", ")));
        }
        out.push('\n');
        for (place, id) in &self.unknown {
            out.push_str(&format!(
                "error: {place} cites {id}, which is not a rule of SPEC.md\n"
            ));
        }
        out
    }
}

/// The start of a rule's text, at most 90 characters, without the mark
/// shown beside its id already.
fn summary(text: &str) -> String {
    let text = text
        .trim_start_matches("(project-defined) ")
        .trim_start_matches("(documentation) ");
    if text.chars().count() > 90 {
        format!("{}...", text.chars().take(87).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Collects every check of the repository at `root`.
pub fn collect(root: &Path) -> Result<Coverage, String> {
    let mut coverage = Coverage::default();
    let scenarios = crate::catalogue::discover(root, &[]).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    for scenario in &scenarios {
        for id in &scenario.spec {
            coverage.add(&scenario.id, id, Kind::Scenario, &scenario.id);
        }
    }
    for case in &crate::conform::endpoint::CASES {
        for id in case.spec {
            let name = case.name;
            coverage.add(&format!("endpoint case {name}"), id, Kind::Case, name);
        }
    }
    for (name, id, _) in crate::fuzz::invariants::INVARIANTS {
        coverage.add(&format!("invariant {name}"), id, Kind::Invariant, name);
    }
    for dir in ["impl/tests", "impl/src", "harness/tests", "harness/src"] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for (test, ids) in cited_by_tests(&text) {
                let name = format!("{shown}::{test}");
                for id in ids {
                    coverage.add(&name, &id, Kind::Test, &name);
                }
            }
        }
    }
    for checks in coverage.checks.values_mut() {
        checks.sort();
        checks.dedup();
    }
    Ok(coverage)
}

/// `(test name, ids)` of each test function whose comment lines directly above
/// (doc comments, or a `// SPEC: ...` marker) cite rule ids. Every word of a
/// `SPEC:` marker that looks like an id is returned, known or not, so that a
/// mistyped one is reported; other comments yield known ids only.
fn cited_by_tests(text: &str) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        // Walk up over attributes to the test attribute, then over comments.
        let mut j = i;
        let mut is_test = false;
        while j > 0 && lines[j - 1].starts_with("#[") {
            j -= 1;
            is_test |= lines[j].starts_with("#[test]") || lines[j].contains("::test");
        }
        if !is_test {
            continue;
        }
        let mut ids = Vec::new();
        while j > 0 && lines[j - 1].starts_with("//") {
            j -= 1;
            let comment = lines[j].trim_start_matches('/').trim();
            match comment.strip_prefix("SPEC:") {
                Some(marker) => ids.extend(
                    marker
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|w| looks_like_id(w))
                        .map(str::to_string),
                ),
                None => ids.extend(crate::spec::cited(comment).into_iter().map(str::to_string)),
            }
        }
        if !ids.is_empty() {
            found.push((name.to_string(), ids));
        }
    }
    found
}

fn fn_name(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("async fn ")
        .or_else(|| line.strip_prefix("fn "))?;
    rest.split(['(', '<']).next()
}

fn looks_like_id(word: &str) -> bool {
    word.split_once('-').is_some_and(|(family, n)| {
        !family.is_empty()
            && family.bytes().all(|b| b.is_ascii_uppercase())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_is_attributed_by_its_marker_and_doc_comment() {
        // `\x23` is `#`: this file is scanned too, and must not cite EX-99.
        let text = "
/// Checks the lock (EX-4).
// SPEC: WS-7, EX-99
\x23[tokio::test]
async fn second_client_is_423() {}

// EX-1 here is not above a test.
fn helper() {}

\x23[test]
fn uncited() {}
";
        let found = cited_by_tests(text);
        assert_eq!(
            found,
            vec![(
                "second_client_is_423".to_string(),
                vec!["WS-7".to_string(), "EX-99".to_string(), "EX-4".to_string()]
            )]
        );
    }

    #[test]
    fn an_unknown_id_is_an_error_and_a_rule_without_checks_is_unchecked() {
        let mut coverage = Coverage::default();
        coverage.add("test x", "EX-99", Kind::Test, "x");
        assert_eq!(
            coverage.unknown,
            vec![("test x".to_string(), "EX-99".to_string())]
        );
        assert!(coverage.unchecked().iter().any(|r| r.id == "EX-4"));
        assert!(coverage.render(&["EX-4".into()]).contains("UNCHECKED"));
        // A documentation rule needs no check.
        assert!(coverage.unchecked().iter().all(|r| r.id != "DP-4"));
    }
}
