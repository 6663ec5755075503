//! The rules of the repository's `SPEC.md`, read when the harness is built
//! (`build.rs`): the one source of rule ids. A scenario, case or invariant
//! citing an id not in this list is an error.

/// One rule of SPEC.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    /// The rule's text, on one line.
    pub text: &'static str,
    /// The project decided it (or part of it) where the reference is silent.
    pub project_defined: bool,
    /// A deployment fact no harness can observe: needs no check.
    pub documentation: bool,
    /// Listed on SPEC.md's `Fuzzable:` line: the fuzzer's lifecycles must reach it.
    pub fuzzable: bool,
}

include!(concat!(env!("OUT_DIR"), "/spec_rules.rs"));

/// A rule's id, known to be one of SPEC.md's: what a trace event bears on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RuleId(&'static Rule);

impl RuleId {
    /// The rule `id`. An id that SPEC.md lacks is a bug in the harness (a
    /// typo, or a rule renamed in SPEC.md), so it panics with both names.
    pub fn of(id: &str) -> RuleId {
        match rule(id) {
            Some(rule) => RuleId(rule),
            None => panic!("the harness cites {id}, which SPEC.md does not define"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.0.id
    }
}

impl std::fmt::Debug for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.id)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.id)
    }
}

impl serde::Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.id)
    }
}

impl PartialEq<&str> for RuleId {
    fn eq(&self, other: &&str) -> bool {
        self.0.id == *other
    }
}

/// The rule with id `id` (`EX-4`).
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Every rule id cited in `text`, in order (`... EX-4, WS-6 ...`).
pub fn cited(text: &str) -> Vec<&'static str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|word| rule(word).map(|r| r.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_of_the_contract_is_read_from_spec_md() {
        for family in [
            "CFG", "TLS", "JOB", "RT", "EX", "WS", "LC", "DK", "WH", "AU", "DP",
        ] {
            assert!(
                RULES
                    .iter()
                    .any(|r| r.id.starts_with(&format!("{family}-"))),
                "no {family} rule"
            );
        }
        assert!(rule("WS-8").is_some_and(|r| r.project_defined));
        assert!(rule("DP-4").is_some_and(|r| r.documentation));
        assert!(rule("LC-1").is_some_and(|r| !r.project_defined && !r.documentation));
        assert_eq!(rule("LC-9"), None);
        assert!(rule("EX-4").is_some_and(|r| r.fuzzable));
        assert!(rule("DP-4").is_some_and(|r| !r.fuzzable));
    }

    #[test]
    fn citations_are_found_in_prose() {
        assert_eq!(
            cited("EX-4 (and WS-6), not EX-99 or XEX-4"),
            ["EX-4", "WS-6"]
        );
    }
}
