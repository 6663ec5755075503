//! The soak's verdict on growth: are the runner's file descriptors back to
//! where they were after the first round, and has its memory grown past a
//! ceiling?
//!
//! The first round is the warm-up: a runner allocates its pools, caches and
//! the allocator's arenas on first use, so the baseline is the first round's
//! figures, not the idle process's before any job.

use serde::{Deserialize, Serialize};

use super::sample::Sample;

/// Descriptors above the baseline that are not a leak: a kept-alive
/// connection to GitLab (the harness's GitLab keeps connections alive) may
/// be open at one sample and closed at another.
pub const FD_MARGIN: u64 = 2;
/// The default ceiling on RSS growth from the first round to the last, MiB.
/// An allocator keeps memory it freed, and memory that was touched once by
/// the busiest moment of a round (a 1 MiB paste, buffers of several
/// connections) stays resident: a healthy runner's RSS settles within a few
/// MiB of its first round (README has this project's figures). A leak grows
/// with every round, and a soak long enough shows it past any ceiling.
pub const RSS_CEILING_MIB: u64 = 16;

/// The growth from the first round to the last.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Growth {
    /// After the first round.
    pub baseline: Sample,
    /// After the last round.
    pub last: Sample,
    /// Rounds between them (the last's number minus one).
    pub rounds: usize,
    /// The largest RSS sampled, KiB.
    pub peak_rss_kib: u64,
    /// The ceiling on RSS growth, KiB.
    pub rss_ceiling_kib: u64,
}

impl Growth {
    /// From the samples of the rounds, in order; `None` with fewer than two.
    pub fn of(samples: &[Sample], rss_ceiling_mib: u64) -> Option<Growth> {
        let (baseline, last) = (*samples.first()?, *samples.last()?);
        (samples.len() >= 2).then(|| Growth {
            baseline,
            last,
            rounds: samples.len() - 1,
            peak_rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            rss_ceiling_kib: rss_ceiling_mib * 1024,
        })
    }

    /// Descriptors open after the last round beyond the first's.
    pub fn fds_added(&self) -> i64 {
        self.last.fds as i64 - self.baseline.fds as i64
    }

    pub fn fds_leaked(&self) -> bool {
        self.last.fds > self.baseline.fds + FD_MARGIN
    }

    pub fn rss_added_kib(&self) -> i64 {
        self.last.rss_kib as i64 - self.baseline.rss_kib as i64
    }

    pub fn rss_leaked(&self) -> bool {
        self.rss_added_kib() > self.rss_ceiling_kib as i64
    }

    pub fn leaked(&self) -> bool {
        self.fds_leaked() || self.rss_leaked()
    }

    /// `fds: 21 after round 1, 143 after round 5 (+122, 30.5 a round): LEAK, not back to the baseline`.
    pub fn fds_line(&self) -> String {
        let added = self.fds_added();
        let verdict = if self.fds_leaked() {
            format!(
                "LEAK: not back to the baseline ({:.1} more a round)",
                added as f64 / self.rounds as f64
            )
        } else {
            format!("back to the baseline (within {FD_MARGIN})")
        };
        format!(
            "fds: {} after round 1, {} after round {} ({added:+}): {verdict}",
            self.baseline.fds,
            self.last.fds,
            self.rounds + 1,
        )
    }

    /// `RSS: 13.7 MiB after round 1, 14.1 MiB after round 5 (+0.4 MiB, peak 14.3 MiB; ceiling +16 MiB): within the ceiling`.
    pub fn rss_line(&self) -> String {
        let verdict = if self.rss_leaked() {
            "LEAK: grew past the ceiling"
        } else {
            "within the ceiling"
        };
        format!(
            "RSS: {} after round 1, {} after round {} ({:+.1} MiB, peak {}; ceiling +{}): {verdict}",
            mib(self.baseline.rss_kib),
            mib(self.last.rss_kib),
            self.rounds + 1,
            self.rss_added_kib() as f64 / 1024.0,
            mib(self.peak_rss_kib),
            mib(self.rss_ceiling_kib),
        )
    }
}

/// KiB as `13.7 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(figures: &[(u64, u64)]) -> Vec<Sample> {
        figures
            .iter()
            .map(|&(fds, rss_kib)| Sample { fds, rss_kib })
            .collect()
    }

    #[test]
    fn descriptors_back_to_the_first_round_are_no_leak() {
        let g = Growth::of(&samples(&[(20, 10_000), (22, 10_100), (21, 10_200)]), 16).unwrap();
        assert!(!g.leaked(), "{}", g.fds_line());
        assert!(
            g.fds_line().contains("back to the baseline"),
            "{}",
            g.fds_line()
        );
    }

    #[test]
    fn descriptors_that_grow_every_round_are_a_leak() {
        let g = Growth::of(&samples(&[(20, 10_000), (50, 10_000), (80, 10_000)]), 16).unwrap();
        assert!(g.fds_leaked() && !g.rss_leaked());
        assert!(
            g.fds_line()
                .ends_with("(+60): LEAK: not back to the baseline (30.0 more a round)"),
            "{}",
            g.fds_line()
        );
    }

    #[test]
    fn memory_past_the_ceiling_is_a_leak() {
        let g = Growth::of(&samples(&[(20, 10_240), (20, 30_720)]), 16).unwrap();
        assert!(g.rss_leaked() && !g.fds_leaked());
        assert!(
            g.rss_line()
                .contains("(+20.0 MiB, peak 30.0 MiB; ceiling +16.0 MiB): LEAK"),
            "{}",
            g.rss_line()
        );
    }

    #[test]
    fn one_round_has_no_growth() {
        assert!(Growth::of(&samples(&[(20, 10_000)]), 16).is_none());
    }
}
