//! A scenario in real time: every duration scaled by one factor, so that a
//! 30-minute session takes seconds.
//!
//! The factor is the one asked for, adjusted so that `session_timeout` is a
//! whole number of seconds (config.toml has no other), at least 1: every other
//! time scales by the same adjusted factor, so the scenario keeps its shape.
//! Scaled: `session_timeout`, step times, `end`, `sleep N` in job scripts, job
//! timeouts, `container_start`, Workhorse's MaxSessionTime, and in
//! expectations the times, their tolerances and the durations written in close
//! reasons and log lines (`30m0s` becomes `18s`).

use std::time::Duration;

use session_server::config::DEFAULT_SESSION_TIMEOUT;

use crate::duration::{go_durations, go_string, trimmed};
use crate::expect::{BROWSER_TOLERANCE, JOB_TOLERANCE};
use crate::scenario::{ContainerStart, Dur, Scenario};

/// A scenario rewritten into real time.
#[derive(Clone, Debug)]
pub struct Scaled {
    pub scenario: Scenario,
    pub factor: f64,
    /// The `session_timeout` the runner gets, in seconds.
    pub session_timeout: u64,
    /// How far observed times and the durations in texts may be off.
    pub text_tolerance: Duration,
}

impl Scaled {
    /// One line for the report: how the scenario was scaled.
    pub fn describe(&self) -> String {
        format!(
            "scaled ×{}: session_timeout {} s",
            trimmed(self.factor),
            self.session_timeout
        )
    }
}

/// Scales `s` by about `requested`; observed times may be off by their scaled
/// tolerance, and never less than `slack` (real processes take real time).
/// `Err`: why it cannot be scaled.
pub fn scale(s: &Scenario, requested: f64, slack: Duration) -> Result<Scaled, String> {
    let configured = match s.runner.session_timeout {
        None => DEFAULT_SESSION_TIMEOUT.as_secs(),
        Some(t) if t > 0 => t as u64,
        Some(t) => {
            return Err(format!(
                "CFG-3: session_timeout = {t} means the runner's built-in default of {} s, \
                 which the harness cannot scale (it would take {} real minutes)",
                DEFAULT_SESSION_TIMEOUT.as_secs(),
                DEFAULT_SESSION_TIMEOUT.as_secs() / 60
            ))
        }
    };
    let session_timeout = ((configured as f64 * requested).ceil() as u64).max(1);
    let factor = session_timeout as f64 / configured as f64;
    let by = |d: Duration| scaled(d, factor);
    let tolerance = |d: Option<Dur>, default: Duration| {
        Some(Dur(by(d.map(|d| d.0).unwrap_or(default)).max(slack)))
    };
    let text = |t: &String| scale_text(t, factor);

    let mut out = s.clone();
    out.runner.session_timeout = Some(session_timeout as i64);
    out.end = Some(Dur(by(s.ends_by())));
    out.gitlab.max_session_time = s.gitlab.max_session_time.map(|d| Dur(by(d.0)));
    for step in &mut out.steps {
        step.at = Dur(by(step.at.0));
    }
    for job in &mut out.jobs {
        // The job API carries whole seconds; GitLab's default is an hour.
        let exact = by(job.timeout());
        let whole = Duration::from_secs(exact.as_secs_f64().round().max(1.0) as u64);
        if whole.abs_diff(exact) > slack {
            return Err(format!(
                "job {}: its timeout scales to {:.3} s, but the job API carries whole seconds: \
                 try another --scale",
                job.id,
                exact.as_secs_f64()
            ));
        }
        job.timeout = Some(Dur(whole));
        job.script = job.script.iter().map(|l| scale_sleeps(l, factor)).collect();
        if let Some(ContainerStart::After(start)) = job.container_start.as_mut() {
            *start = Dur(by(start.0));
        }
    }
    for expect in out.expect.browser.values_mut() {
        if let Some(times) = expect.closed_at.as_mut() {
            times.iter_mut().for_each(|t| *t = Dur(by(t.0)));
        }
        expect.tolerance = tolerance(expect.tolerance, BROWSER_TOLERANCE);
        if let Some(closes) = expect.closes.as_mut() {
            closes.iter_mut().for_each(|c| *c = text(c));
        }
    }
    for expect in out.expect.job.values_mut() {
        expect.finished_at = expect.finished_at.map(|t| Dur(by(t.0)));
        expect.tolerance = tolerance(expect.tolerance, JOB_TOLERANCE);
        expect.log = expect.log.iter().map(text).collect();
        expect.no_log = expect.no_log.iter().map(text).collect();
    }
    Ok(Scaled {
        scenario: out,
        factor,
        session_timeout,
        text_tolerance: by(BROWSER_TOLERANCE).max(slack),
    })
}

/// `d` times `factor`, to the millisecond.
fn scaled(d: Duration, factor: f64) -> Duration {
    Duration::from_millis((d.as_secs_f64() * factor * 1000.0).round() as u64)
}

/// `sleep N` in a script line with N scaled (`sleep 60` → `sleep 0.6`).
/// Fractions of a second are not POSIX, but GNU, BusyBox and BSD sleep take them.
fn scale_sleeps(line: &str, factor: f64) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    for i in 1..words.len() {
        if words[i - 1] == "sleep" {
            if let Ok(n) = words[i].parse::<f64>() {
                words[i] = seconds(n * factor);
            }
        }
    }
    words.join(" ")
}

/// The Go durations in `text` scaled and written as Go writes them.
fn scale_text(text: &str, factor: f64) -> String {
    let mut out = String::new();
    let mut from = 0;
    for (range, d) in go_durations(text) {
        out.push_str(&text[from..range.start]);
        out.push_str(&go_string(scaled(d, factor)));
        from = range.end;
    }
    out.push_str(&text[from..]);
    out
}

/// Seconds to the millisecond, without trailing zeros: `0.6`, `18`.
fn seconds(s: f64) -> String {
    trimmed((s * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load_str, TEST_SCENARIO};
    use std::path::Path;

    /// A job of 60 s whose terminal opens at 90 s and times out (2 min) at 3 min.
    fn scenario() -> String {
        let job = TEST_SCENARIO
            .replace(
                "script = [\"sleep 1\"]",
                "script = [\"echo building\", \"sleep 60\"]\ntimeout = \"10m\"",
            )
            .replace("at = \"1s\"", "at = \"90s\"");
        format!(
            "{job}[runner]\nsession_timeout = 120\n[expect.browser.alice]\n\
             closes = [\"1001 terminal session timed out (maximum time allowed - 2m0s)\"]\n\
             closed_at = [\"3m\"]\n[expect.job.1]\n\
             log = [\"Terminal is connected, will time out in 2m0s...\"]\nfinished_at = \"3m\"\n"
        )
    }

    fn load(text: &str) -> Scenario {
        load_str(text, Path::new("x/y.toml"), "x/y").unwrap()
    }

    #[test]
    fn session_timeout_is_whole_seconds_and_the_rest_follows_it() {
        let s = scale(&load(&scenario()), 0.01, Duration::from_millis(500)).unwrap();
        // 120 s × 0.01 = 1.2 s, rounded up to 2 s: the factor becomes 1/60.
        assert_eq!(s.session_timeout, 2);
        assert!((s.factor - 1.0 / 60.0).abs() < 1e-9);
        let sc = &s.scenario;
        assert_eq!(sc.runner.session_timeout, Some(2));
        assert_eq!(sc.steps[0].at.0, Duration::from_millis(1500));
        assert_eq!(sc.jobs[0].script, ["echo building", "sleep 1"]);
        assert_eq!(sc.jobs[0].timeout.unwrap().0, Duration::from_secs(10));
        let alice = &sc.expect.browser["alice"];
        assert_eq!(
            alice.closes.as_ref().unwrap()[0],
            "1001 terminal session timed out (maximum time allowed - 2s)"
        );
        assert_eq!(
            alice.closed_at.as_ref().unwrap()[0].0,
            Duration::from_secs(3)
        );
        // 2 s × 1/60 is below the slack.
        assert_eq!(alice.tolerance.unwrap().0, Duration::from_millis(500));
        let job = &sc.expect.job["1"];
        assert_eq!(job.log[0], "Terminal is connected, will time out in 2s...");
        assert_eq!(job.finished_at.unwrap().0, Duration::from_secs(3));
    }

    #[test]
    fn the_default_session_timeout_is_written_and_a_non_positive_one_refused() {
        let default = scenario().replace("session_timeout = 120", "");
        let s = scale(&load(&default), 0.01, Duration::from_millis(500)).unwrap();
        assert_eq!(s.session_timeout, 18);
        let zero = scenario().replace("session_timeout = 120", "session_timeout = 0");
        let why = scale(&load(&zero), 0.01, Duration::from_millis(500)).unwrap_err();
        assert!(why.starts_with("CFG-3"), "{why}");
    }

    #[test]
    fn a_job_timeout_that_is_not_whole_seconds_is_refused() {
        let odd = scenario().replace("timeout = \"10m\"", "timeout = \"130s\"");
        let why = scale(&load(&odd), 0.01, Duration::from_millis(100)).unwrap_err();
        assert!(why.contains("whole seconds"), "{why}");
    }

    #[test]
    fn sleeps_scale() {
        assert_eq!(
            scale_sleeps("sleep 20 && sleep x", 0.01),
            "sleep 0.2 && sleep x"
        );
    }
}
