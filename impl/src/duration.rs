//! Durations written as the reference's job log writes them (Go's `Duration.String`
//! after rounding to the second): `30m0s`, `1h0m0s`, `45s`.

use std::time::Duration;

pub fn go_format(d: Duration) -> String {
    let secs = (d.as_millis() + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(go_format(Duration::from_secs(1800)), "30m0s");
        assert_eq!(go_format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_format(Duration::from_secs(45)), "45s");
        assert_eq!(go_format(Duration::from_millis(89_600)), "1m30s");
        assert_eq!(go_format(Duration::ZERO), "0s");
    }
}
