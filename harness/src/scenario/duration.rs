//! Durations in scenario files: `250ms`, `90s`, `30m`, `1h30m`, `1.5s`, or a
//! bare number of seconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(text: &str) -> Result<Dur, String> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<f64>() {
            return seconds_to(seconds, text);
        }
        let mut total = 0.0;
        let mut rest = text;
        if rest.is_empty() {
            return Err("an empty duration".into());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(digits);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let value: f64 = number
                .parse()
                .map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 30m, 1h30m, 250ms)"))?;
            total += value
                * match unit {
                    "ms" => 0.001,
                    "s" => 1.0,
                    "m" => 60.0,
                    "h" => 3600.0,
                    _ => {
                        return Err(format!(
                            "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
                        ))
                    }
                };
            rest = tail;
        }
        seconds_to(total, text)
    }
}

fn seconds_to(seconds: f64, text: &str) -> Result<Dur, String> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(Dur(Duration::from_secs_f64(seconds)))
    } else {
        Err(format!("{text:?} is not a duration of zero or more"))
    }
}

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
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                seconds_to(v, &v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
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
        assert!(Dur::parse("-1").is_err());
    }
}
