//! Every rule of SPEC.md is checked by something, and nothing cites a rule
//! SPEC.md does not have (`session-harness coverage` shows the details).

use session_harness::catalogue;
use session_harness::coverage;

#[test]
fn every_rule_of_the_spec_has_a_check() {
    let coverage = coverage::collect(&catalogue::root()).expect("the repository's checks");
    let unchecked: Vec<&str> = coverage.unchecked().iter().map(|r| r.id).collect();
    assert!(
        unchecked.is_empty(),
        "rules without a scenario, endpoint case, invariant or test: {unchecked:?}; \
         `session-harness coverage` lists what checks each rule"
    );
}

#[test]
fn nothing_cites_a_rule_the_spec_does_not_have() {
    let coverage = coverage::collect(&catalogue::root()).expect("the repository's checks");
    assert!(
        coverage.unknown.is_empty(),
        "unknown SPEC ids: {:?}",
        coverage.unknown
    );
}
