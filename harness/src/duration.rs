//! Durations, read and written one way across the harness: Go's notation
//! (`90s`, `1h30m`, `250ms`, `1.5s`), which GitLab Runner also uses for the
//! waits it writes into close reasons and log lines, plus a bare number of
//! seconds in scenario files. [`Dur`] is a scenario's duration; [`go_string`]
//! writes one as Go's `Duration.String()` does; [`go_durations`] finds them
//! inside a text (a reason's `30m0s`); [`clock`] writes a trace's time; and
//! [`seconds`] is a report's number of seconds.
//!
//! The runner (`impl/`) has a parser of its own for its configuration, and
//! the two are deliberately not shared: the harness never judges a runner
//! with the runner's own code, so that a bug there cannot vouch for itself.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration as a scenario writes it: `250ms`, `90s`, `30m`, `1h30m`,
/// `1.5s`, or a bare number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(text: &str) -> Result<Dur, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty duration".into());
        }
        if let Ok(seconds) = text.parse::<f64>() {
            return seconds_to(seconds, text);
        }
        match go_at(text, 0) {
            Some((end, duration)) if end == text.len() => Ok(Dur(duration)),
            _ => Err(format!(
                "{text:?} is not a duration (e.g. 90s, 30m, 1h30m, 250ms, or a number of seconds)"
            )),
        }
    }
}

fn seconds_to(seconds: f64, text: &str) -> Result<Dur, String> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(Dur(Duration::from_secs_f64(seconds)))
    } else {
        Err(format!("{text:?} is not a duration of zero or more"))
    }
}

/// Seconds, with milliseconds only when there are any: `90s`, `1.500s`.
impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{}.{:03}s", ms / 1000, ms % 1000)
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"30m\", \"1h30m\", \"250ms\", or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                seconds_to(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                seconds_to(v as f64, &v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                seconds_to(v, &v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A time in a trace, always to the millisecond: `12.345s`.
pub fn clock(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Go's `Duration.String()` to the millisecond: `18s`, `1.2s`, `2m0s`, `1h0m0s`, `500ms`.
pub fn go_string(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let s = trimmed(((ms % 60_000) as f64 / 1000.0 * 1000.0).round() / 1000.0);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A number to the millisecond, without trailing zeros: `0.6`, `18`.
pub fn trimmed(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The Go durations in `text` (`30m0s`, `1.5s`, `250ms`, `1h0m0s`), as whole
/// words, with where they are.
pub fn go_durations(text: &str) -> Vec<(Range<usize>, Duration)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        if bytes[i].is_ascii_digit() && starts_word {
            if let Some((end, duration)) = go_at(text, i) {
                found.push((i..end, duration));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// A Go duration starting at byte `start` that ends a word: its end and value.
fn go_at(text: &str, start: usize) -> Option<(usize, Duration)> {
    const UNITS: [(&str, f64); 7] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
    ];
    let bytes = text.as_bytes();
    let (mut i, mut seconds, mut parts) = (start, 0.0, 0);
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        let number_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let value: f64 = text[number_start..i].parse().ok()?;
        let Some((unit, scale)) = UNITS.iter().find(|(u, _)| text[i..].starts_with(u)) else {
            i = number_start;
            break;
        };
        seconds += value * scale;
        i += unit.len();
        parts += 1;
    }
    let ends_word = i == bytes.len() || !bytes[i].is_ascii_alphanumeric();
    (parts > 0 && ends_word).then(|| (i, Duration::from_secs_f64(seconds)))
}

/// A report's duration as a number of seconds to the millisecond (`1.234`),
/// and read back (`report merge`): `#[serde(with = "crate::duration::seconds")]`.
pub mod seconds {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(d)?;
        Duration::try_from_secs_f64(seconds).map_err(de::Error::custom)
    }
}

/// [`seconds`] for an optional duration (`null`: none).
pub mod seconds_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => seconds::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|s| Duration::try_from_secs_f64(s).map_err(de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_seconds() {
        assert_eq!(Dur::parse("90s").unwrap().0, Duration::from_secs(90));
        assert_eq!(Dur::parse("1h30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("1.5").unwrap().0, Duration::from_millis(1500));
        assert!(Dur::parse("5 minutes").is_err());
        assert!(Dur::parse("5min").is_err());
        assert!(Dur::parse("").is_err());
        assert!(Dur::parse("-1").is_err());
    }

    #[test]
    fn what_go_writes_reads_back() {
        for d in [
            Duration::from_millis(250),
            Duration::from_millis(1200),
            Duration::from_secs(18),
            Duration::from_secs(120),
            Duration::from_secs(3600),
            Duration::from_secs(5430),
        ] {
            assert_eq!(Dur::parse(&go_string(d)).unwrap().0, d, "{}", go_string(d));
        }
    }

    #[test]
    fn go_strings() {
        assert_eq!(go_string(Duration::ZERO), "0s");
        assert_eq!(go_string(Duration::from_secs(18)), "18s");
        assert_eq!(go_string(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_string(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_string(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_string(Duration::from_millis(250)), "250ms");
        assert_eq!(clock(61_005), "61.005s");
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1.500s");
    }

    #[test]
    fn finds_go_durations_as_whole_words() {
        let found =
            |t: &str| -> Vec<Duration> { go_durations(t).into_iter().map(|(_, d)| d).collect() };
        assert_eq!(
            found("will time out in 30m0s..."),
            [Duration::from_secs(1800)]
        );
        assert_eq!(found("allowed - 1.2s)"), [Duration::from_millis(1200)]);
        assert_eq!(
            found("1h0m0s and 250ms"),
            [Duration::from_secs(3600), Duration::from_millis(250)]
        );
        assert!(found("1001 terminal, exit code 1, v0.1.0, 5min, 2m0").is_empty());
    }
}
