//! The statuses of EX's order on direct requests: a token of any wrong shape is
//! 401 whatever else holds (EX-1, EX-7), the right one never is; a 423 needs
//! another terminal that may be open (EX-4), so a reconnect after a close or a
//! drop gets 101 (WS-7).
//! Trace facts: direct Open/Answer with their steps' tokens, Closed, drops,
//! RunnerLink connected and ends, Authorize allowed, JobState.

use super::facts::{Facts, Request};
use super::{at, violation, Judge, SAME_MOMENT};
use crate::scenario::Shape;
use crate::trace::{Link, What};

pub fn check(facts: &Facts, found: &mut Judge) {
    for request in &facts.requests {
        let Some((answered, status)) = request.answer else {
            continue;
        };
        if status == 0 {
            continue; // no HTTP answer: the network, not the runner
        }
        token_decides(facts, request, answered, status, found);
        if status == 423 && request.own_token() {
            locked_only_while_open(facts, request, answered, found);
        }
    }
}

/// EX-1 comes first (after RT-1): a wrong token is 401 while the session
/// exists, 404 once it may be gone; the right token is never 401. Then, for
/// the right token, EX-2: a request that is not an upgrade gets 405; WS-8: an
/// upgrade sent as HTTP/1.0 is refused with a client error, before any shell
/// (the shell count is `no_shell_for_refused_requests`'s).
fn token_decides(facts: &Facts, request: &Request, answered: u64, status: u16, found: &mut Judge) {
    found.ran("EX-1");
    let after_the_token = match request.shape {
        None => "EX-4..6",
        Some(Shape::Http10Upgrade) => "WS-8",
        Some(Shape::Get | Shape::Post) => "EX-2",
    };
    if request.own_token() && after_the_token != "EX-4..6" {
        found.ran(after_the_token);
    }
    let may_be_gone = facts.runner_obscured
        || facts
            .job(request.job)
            .is_none_or(|job| answered >= job.earliest_script_end() || facts.stopped_by(answered));
    let expected = match (request.own_token(), after_the_token, status) {
        (false, _, 401)
        | (true, "EX-4..6", 101 | 423 | 500 | 503)
        | (true, "EX-2", 405)
        | (true, "WS-8", 400 | 405 | 426 | 505) => true,
        (_, _, 404) => may_be_gone,
        _ => false,
    };
    if !expected {
        let token = if request.own_token() {
            "the session's token".to_string()
        } else {
            format!("a token of shape `{}`", request.token)
        };
        let what = match request.shape {
            Some(shape) => format!("{} with {token}", shape.describe()),
            None => token,
        };
        let gone = if may_be_gone {
            ", or 404 once the session is gone"
        } else {
            ", and the session still existed"
        };
        let (rule, expected) = match (request.own_token(), after_the_token) {
            (false, _) | (true, "EX-4..6") => (
                "EX-1",
                format!("EX-1 decides first (401 for any token but the exact one{gone})"),
            ),
            (true, "EX-2") => (
                "EX-2",
                format!("a request that is not an upgrade gets 405{gone}"),
            ),
            (true, _) => (
                "WS-8",
                format!(
                    "an HTTP/1.0 upgrade is refused with a client error before any shell{gone}"
                ),
            ),
        };
        let detail = format!(
            "{} sent {what} directly at {} and got {status}: {expected}",
            request.browser,
            at(request.opened),
        );
        match rule {
            "EX-2" => violation(found, "status-order", "EX-2", detail),
            "WS-8" => violation(found, "status-order", "WS-8", detail),
            _ => violation(found, "status-order", "EX-1", detail),
        }
    }
}

/// EX-4, WS-7: 423 only while another terminal of the session may be open. A
/// terminal may be open from its request to its observed end (the runner
/// frees the slot before the harness sees the close); a Workhorse dial whose
/// outcome the harness did not see may hold it until the runner's read
/// deadline.
fn locked_only_while_open(facts: &Facts, request: &Request, answered: u64, found: &mut Judge) {
    found.ran("WS-7");
    let from = request.opened;
    let overlaps = |start: u64, end: Option<u64>| {
        start <= answered && end.is_none_or(|end| end + SAME_MOMENT >= from)
    };
    let other_direct = facts.requests.iter().any(|other| {
        !std::ptr::eq(other, request) && other.job == request.job && {
            let connection = facts.connections.iter().find(|c| {
                c.browser == other.browser
                    && other
                        .answer
                        .is_some_and(|(at, status)| status == 101 && c.since == at)
            });
            match (other.answer, connection) {
                (Some((_, 101)), Some(c)) => overlaps(other.opened, c.until),
                // EX-5 comes after EX-4: a request that waited for docker's
                // container held the slot until its 500.
                (Some((at, 500)), _) => overlaps(other.opened, Some(at)),
                (Some((_, 0)) | None, _) => overlaps(other.opened, None),
                _ => false,
            }
        }
    });
    let by_workhorse = workhorse_links(facts, request.job)
        .into_iter()
        .any(|(start, end)| overlaps(start, end));
    if !other_direct && !by_workhorse && !facts.runner_obscured {
        violation(
            found,
            "reconnect-gets-101",
            "WS-7",
            format!(
                "{} opened at {} and got 423 at {}, though no other terminal of job {} was open: a closed or dropped connection must free the slot",
                request.browser,
                at(request.opened),
                at(answered),
                request.job
            ),
        );
    }
}

/// Workhorse's grace for the runner's answer to an EOT (1 s), plus a frame's
/// latency, in ms.
const EOT_REPLY: u64 = 1_000 + SAME_MOMENT;

/// The runner's read deadline (WS-4: 60 s) and the close's grace, in ms.
const READ_DEADLINE: u64 = 90_000;

/// Workhorse's dials to the runner for `job`: from Rails' allowing it to the
/// link's end (`None`: not seen to end). A refused dial ends at its answer.
fn workhorse_links(facts: &Facts, job: u64) -> Vec<(u64, Option<u64>)> {
    let mut links: Vec<(u64, Option<u64>)> = Vec::new();
    // When a browser leaves, Workhorse ends that link and may then note the
    // runner's close reply within its EOT grace (WH-5): that close belongs to
    // the link already ended, not to the next one. (Found by a 20,000-case
    // run: it ended another tab's live link, and a right 423 was reported.)
    let mut left_at = None;
    for e in facts.events {
        match &e.what {
            What::Authorize {
                job: j, verdict, ..
            } if *j == job && verdict.allows_terminal() => links.push((e.at_ms, None)),
            What::RunnerLink { job: j, event } if *j == job => {
                if matches!(event, Link::BrowserLeft { .. }) {
                    left_at = Some(e.at_ms);
                } else if matches!(event, Link::RunnerClosed { .. })
                    && left_at.is_some_and(|left| e.at_ms <= left + EOT_REPLY)
                {
                    left_at = None;
                    continue;
                }
                let end = if matches!(event, Link::Refused { .. }) || event.ends() {
                    e.at_ms
                } else if matches!(
                    event,
                    Link::Connected | Link::ConnectedToService { .. } | Link::LastOutput { .. }
                ) {
                    continue;
                } else {
                    // The dial failed, maybe after the runner upgraded it: the
                    // runner holds that terminal until its read deadline.
                    e.at_ms + READ_DEADLINE
                };
                if let Some(link) = links.iter_mut().find(|(_, end)| end.is_none()) {
                    link.1 = Some(end);
                }
            }
            _ => {}
        }
    }
    links
}
