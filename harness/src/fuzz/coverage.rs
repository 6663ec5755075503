//! Which SPEC rules a fuzz run reached: per rule, the cases in which at least
//! one check of it ran and the checks run in all; and the rules SPEC.md marks
//! fuzzable that no case reached (a generator that never gets there proves
//! nothing about them).

use std::collections::BTreeMap;

use crate::spec;

#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Rule id -> (cases that exercised it, checks run).
    rules: BTreeMap<&'static str, (u64, u64)>,
}

impl Coverage {
    /// Adds one case's checks (per rule, as [`super::invariants::Judge`] counts them).
    pub fn add(&mut self, checks: &BTreeMap<&'static str, u64>) {
        for (rule, n) in checks {
            let entry = self.rules.entry(rule).or_default();
            entry.0 += 1;
            entry.1 += n;
        }
    }

    /// Cases that exercised `rule`, and its checks.
    pub fn of(&self, rule: &str) -> (u64, u64) {
        self.rules.get(rule).copied().unwrap_or_default()
    }

    /// Rules SPEC.md marks fuzzable that no case reached.
    pub fn unreached(&self) -> Vec<&'static str> {
        spec::RULES
            .iter()
            .filter(|r| r.fuzzable && self.of(r.id).0 == 0)
            .map(|r| r.id)
            .collect()
    }

    /// One line per rule reached or fuzzable, in SPEC.md's order, then the
    /// fuzzable rules never reached.
    pub fn describe(&self, cases: u64) -> String {
        let mut out = format!("rule      cases of {cases}    checks\n");
        for rule in spec::RULES {
            let (exercised, checks) = self.of(rule.id);
            if exercised == 0 && !rule.fuzzable {
                continue;
            }
            let percent = exercised as f64 * 100.0 / cases.max(1) as f64;
            out.push_str(&format!(
                "{:<7} {exercised:>7} {percent:>5.1}%  {checks:>8}{}\n",
                rule.id,
                if rule.fuzzable {
                    ""
                } else {
                    "  (not marked fuzzable)"
                }
            ));
        }
        let unreached = self.unreached();
        if unreached.is_empty() {
            out.push_str("every fuzzable rule was reached\n");
        } else {
            out.push_str(&format!(
                "fuzzable rules never reached: {} (the lifecycles need ops that get there)\n",
                unreached.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fuzzable_rule_without_checks_is_unreached() {
        let mut coverage = Coverage::default();
        let every: BTreeMap<&'static str, u64> = spec::RULES
            .iter()
            .filter(|r| r.fuzzable)
            .map(|r| (r.id, 2))
            .collect();
        assert!(!every.is_empty(), "SPEC.md marks no rule fuzzable");
        let mut all_but_one = every.clone();
        let (first, _) = all_but_one.pop_first().expect("a fuzzable rule");
        coverage.add(&all_but_one);
        assert_eq!(coverage.unreached(), vec![first]);
        coverage.add(&every);
        assert!(coverage.unreached().is_empty());
        assert_eq!(coverage.of(first), (1, 2));
        assert!(coverage
            .describe(2)
            .contains("every fuzzable rule was reached"));
    }
}
