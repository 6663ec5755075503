//! A campaign as a [`Report`], the one every command writes: a case per SPEC
//! rule that the invariants checked or that SPEC.md marks fuzzable. A rule's
//! case passes when its checks ran and held, fails with the violations that
//! name it (and the shrunk lifecycle that broke it), and is skipped when no
//! lifecycle reached it. So `--junit` shows a campaign in GitLab's test
//! report rule by rule, and `report merge` adds up the shards of one.

use std::time::Duration;

use super::{Found, Options, Summary};
use crate::expect::{Failure, Verdict};
use crate::report::{json, Campaign, Case, Command, Exercised, Outcome, Report, Status};
use crate::{run, spec};

/// A campaign's end: its summary for people ([`super::describe`]), its
/// report for machines.
pub struct Ended<'a> {
    pub summary: &'a Summary,
    pub report: Report,
}

impl<'a> Ended<'a> {
    pub fn new(options: &Options, summary: &'a Summary) -> Self {
        Ended {
            summary,
            report: of(options, summary),
        }
    }
}

impl Outcome for Ended<'_> {
    fn summary(&self) -> String {
        super::describe(self.summary)
    }

    /// Nothing broke. A fuzzable rule never reached is said, and fails the
    /// CI-sized run's test, but not a campaign: a short one may miss a rule.
    fn passed(&self) -> bool {
        self.summary.found.is_none()
    }

    fn json(&self) -> String {
        json(&self.report)
    }

    fn junit(&self) -> String {
        self.report.junit()
    }
}

/// The report of a campaign run with `options`.
pub fn of(options: &Options, summary: &Summary) -> Report {
    let mut runner = run::RUNNER.to_string();
    if !options.faults.is_empty() {
        let names: Vec<&str> = options.faults.iter().map(|f| f.name()).collect();
        runner.push_str(&format!(", with the test-only faults {}", names.join(", ")));
    }
    let found = summary.found.as_ref();
    let violations = found.map_or(&[][..], |f| &f.violations[..]);
    let mut cases = Vec::new();
    for rule in spec::RULES {
        let (lifecycles, checks) = summary.coverage.of(rule.id);
        let broken: Vec<_> = violations.iter().filter(|v| v.spec == rule.id).collect();
        if lifecycles == 0 && !rule.fuzzable && broken.is_empty() {
            continue;
        }
        let exercised = Exercised { lifecycles, checks };
        let mut case = rule_case(rule.id, rule.text, exercised, summary.cases);
        if !broken.is_empty() {
            fail(&mut case, broken.iter().map(|v| v.failure()), found);
        }
        cases.push(case);
    }
    // Violations of no rule: the run itself, or its determinism.
    for v in violations.iter().filter(|v| spec::rule(v.spec).is_none()) {
        let mut case = Case::judged(
            &format!("fuzz/{}", v.invariant),
            v.invariant,
            &[],
            Verdict::default(),
            None,
            Duration::ZERO,
        );
        fail(&mut case, [v.failure()], found);
        cases.push(case);
    }
    Report {
        command: Command::Fuzz,
        runner,
        profile: None,
        scale: None,
        campaign: Some(Campaign {
            seed: options.seed,
            lifecycles: summary.cases,
            steps: summary.steps,
            faults_injected: summary.faults_injected,
            simulated: summary.simulated,
        }),
        cases,
        warnings: Vec::new(),
        wall: summary.wall,
    }
}

/// The case of `rule`, as `exercised` in a campaign of `lifecycles`: passed
/// when reached, else skipped (`report merge` rebuilds it so for the sum of
/// its shards).
pub fn rule_case(rule: &str, text: &str, exercised: Exercised, lifecycles: u64) -> Case {
    let id = format!("fuzz/{rule}");
    let spec = [rule.to_string()];
    let mut case = match exercised.lifecycles {
        0 => Case::skipped(
            &id,
            text,
            &spec,
            format!(
                "never reached in {lifecycles} lifecycles: the generator needs ops that get there"
            ),
        ),
        _ => Case::judged(&id, text, &spec, Verdict::default(), None, Duration::ZERO),
    };
    case.exercised = Some(exercised);
    case
}

/// Fails `case` with `failures`, saying which lifecycle broke them.
fn fail(case: &mut Case, failures: impl IntoIterator<Item = Failure>, found: Option<&Found>) {
    case.verdict.failures.extend(failures);
    case.status = Status::of(None, &case.verdict, None);
    case.skipped = None;
    if let Some(found) = found.map(FoundLines::of) {
        case.notes.push(found.case);
        case.notes.extend(found.ops);
        case.notes.extend(found.written);
    }
}

/// How a campaign's failure was found and where it was kept: the case, its
/// shrunk ops a line each, and the regression file.
pub struct FoundLines {
    pub case: String,
    pub ops: Vec<String>,
    pub written: Option<String>,
}

impl FoundLines {
    pub fn of(found: &Found) -> Self {
        FoundLines {
            case: format!(
                "case {} (seed {}), shrunk in {} steps to {} ops:",
                found.case,
                found.case_seed,
                found.shrink_steps,
                found.minimal.ops.len()
            ),
            ops: (found.minimal.ops.iter().enumerate())
                .map(|(i, timed)| format!("op {}: after {}s {:?}", i + 1, timed.after, timed.op))
                .collect(),
            written: (found.written.as_ref()).map(|path| format!("written to {}", path.display())),
        }
    }
}

/// A campaign of 10 lifecycles that reached EX-1 and EX-4 (and no other
/// rule); with `broken`, its 10th broke EX-4.
#[cfg(test)]
pub(crate) fn sample(seed: u64, broken: bool) -> (Options, Summary) {
    use super::invariants::Violation;
    use super::{case_seed, lifecycle_of};
    use std::collections::BTreeMap;
    let options = Options::new(10, seed);
    let mut summary = Summary {
        cases: 10,
        steps: 40,
        faults_injected: 3,
        wall: Duration::from_secs(1),
        ..Summary::default()
    };
    summary
        .coverage
        .add(&BTreeMap::from([("EX-1", 2), ("EX-4", 5)]));
    summary.found = broken.then(|| Found {
        case: 10,
        case_seed: case_seed(seed, 9),
        violations: vec![Violation {
            invariant: "single-terminal",
            spec: "EX-4",
            detail: "two terminals at once".into(),
        }],
        minimal: lifecycle_of(case_seed(seed, 9), 12),
        shrink_steps: 7,
        written: None,
    });
    (options, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::invariants::Violation;

    fn case<'r>(report: &'r Report, id: &str) -> &'r Case {
        let found = report.cases.iter().find(|c| c.id == id);
        found.unwrap_or_else(|| panic!("no case {id}: {:#?}", report.cases))
    }

    #[test]
    fn a_campaign_is_a_case_per_rule_reached_or_fuzzable() {
        let (options, summary) = sample(3, true);
        let report = of(&options, &summary);
        let reached = case(&report, "fuzz/EX-1");
        assert_eq!(reached.status, Status::Passed);
        let exercised = Exercised {
            lifecycles: 1,
            checks: 2,
        };
        assert_eq!(reached.exercised, Some(exercised));
        let broken = case(&report, "fuzz/EX-4");
        assert_eq!(broken.status, Status::Failed);
        assert_eq!(
            broken.verdict.failures[0].check,
            "invariant single-terminal [EX-4]"
        );
        assert!(
            broken.notes[0].starts_with("case 10 (seed "),
            "{:?}",
            broken.notes
        );
        let unreached = case(&report, "fuzz/WS-5");
        assert_eq!(unreached.status, Status::Skipped);
        assert!(unreached
            .skipped
            .as_ref()
            .unwrap()
            .contains("never reached in 10 lifecycles"));
        let fuzzable = spec::RULES.iter().filter(|r| r.fuzzable).count();
        assert_eq!(report.cases.len(), fuzzable, "EX-1 and EX-4 are fuzzable");
        let campaign = report.campaign.as_ref().unwrap();
        assert_eq!((campaign.seed, campaign.lifecycles), (3, 10));
    }

    #[test]
    fn a_campaign_reads_back_from_its_json_and_fails_its_junit() {
        let (options, summary) = sample(3, true);
        let ended = Ended::new(&options, &summary);
        assert!(!ended.passed());
        let read: Report = serde_json::from_str(&ended.json()).expect("reads back");
        assert_eq!(read.campaign, ended.report.campaign);
        assert_eq!(
            case(&read, "fuzz/EX-1").exercised,
            case(&ended.report, "fuzz/EX-1").exercised
        );
        assert_eq!(
            case(&read, "fuzz/WS-5").exercised,
            Some(Exercised::default())
        );
        let junit = ended.junit();
        assert!(junit.contains("name=\"session-harness fuzz\""), "{junit}");
        assert!(junit.contains("failures=\"1\""), "{junit}");
        assert!(junit.contains("name=\"fuzz/EX-4 [EX-4]\""), "{junit}");
        let (options, summary) = sample(3, false);
        assert!(Ended::new(&options, &summary).passed());
    }

    #[test]
    fn a_violation_of_no_rule_is_a_case_of_its_own() {
        let (options, mut summary) = sample(3, true);
        let found = summary.found.as_mut().unwrap();
        found.violations[0] = Violation {
            invariant: "deterministic",
            spec: "-",
            detail: "the same seed gave another trace".into(),
        };
        let report = of(&options, &summary);
        assert_eq!(case(&report, "fuzz/EX-4").status, Status::Passed);
        let own = case(&report, "fuzz/deterministic");
        assert_eq!(own.status, Status::Failed);
        assert_eq!(
            report.cases.last().map(|c| c.id.as_str()),
            Some("fuzz/deterministic")
        );
    }
}
