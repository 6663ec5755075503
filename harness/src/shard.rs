//! `--shard K/N`: one of N parts of a run, for CI's parallel jobs.
//!
//! The split is round-robin over a stable order: scenarios by id (the
//! catalogue's order), fuzz cases by index. Shard K takes positions K-1,
//! K-1+N, K-1+2N, ...: the N shards are disjoint and together the whole run,
//! and each gets an even share. Without `--shard`, GitLab CI's
//! `CI_NODE_INDEX`/`CI_NODE_TOTAL` (set by `parallel: N`, index 1-based) choose it.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based, as `CI_NODE_INDEX`.
    pub index: u64,
    pub total: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// The whole run: one shard of one.
    pub const WHOLE: Shard = Shard { index: 1, total: 1 };

    /// `K/N` with 1 <= K <= N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let usage = || format!("--shard {text:?}: expected K/N with 1 <= K <= N, e.g. 2/8");
        let (k, n) = text.trim().split_once('/').ok_or_else(usage)?;
        let index = k.trim().parse().map_err(|_| usage())?;
        let total = n.trim().parse().map_err(|_| usage())?;
        Shard::new(index, total).ok_or_else(usage)
    }

    pub fn new(index: u64, total: u64) -> Option<Shard> {
        (total >= 1 && (1..=total).contains(&index)).then_some(Shard { index, total })
    }

    /// `--shard` if given, else GitLab CI's `CI_NODE_INDEX`/`CI_NODE_TOTAL`, else the whole.
    pub fn resolve(flag: Option<Shard>) -> Result<Shard, String> {
        if let Some(shard) = flag {
            return Ok(shard);
        }
        Shard::from_vars(
            std::env::var("CI_NODE_INDEX").ok().as_deref(),
            std::env::var("CI_NODE_TOTAL").ok().as_deref(),
        )
    }

    /// From the values of `CI_NODE_INDEX` and `CI_NODE_TOTAL`: both or neither.
    pub fn from_vars(index: Option<&str>, total: Option<&str>) -> Result<Shard, String> {
        match (index, total) {
            (None, None) => Ok(Shard::WHOLE),
            (Some(index), Some(total)) => index
                .trim()
                .parse()
                .ok()
                .zip(total.trim().parse().ok())
                .and_then(|(k, n)| Shard::new(k, n))
                .ok_or_else(|| {
                    format!(
                        "CI_NODE_INDEX={index:?} CI_NODE_TOTAL={total:?}: expected 1 <= index <= total \
                         (GitLab sets both for `parallel: N`; or pass --shard K/N)"
                    )
                }),
            _ => Err(
                "only one of CI_NODE_INDEX and CI_NODE_TOTAL is set: set both, or pass --shard K/N"
                    .into(),
            ),
        }
    }

    /// Whether position `i` (0-based) of the whole run is this shard's.
    pub fn has(&self, i: u64) -> bool {
        i % self.total == self.index - 1
    }

    /// The position in the whole run of this shard's `n`th item (0-based).
    pub fn position(&self, n: u64) -> u64 {
        (self.index - 1) + n * self.total
    }

    /// How many of the first `whole` positions are this shard's.
    pub fn count(&self, whole: u64) -> u64 {
        whole.saturating_sub(self.index - 1).div_ceil(self.total)
    }

    /// This shard's items of `all`, in their order.
    pub fn select<T>(&self, all: Vec<T>) -> Vec<T> {
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| self.has(*i as u64))
            .map(|(_, item)| item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_shards_are_disjoint_and_together_the_whole() {
        for total in 1..=9 {
            for whole in [0u64, 1, 7, 66, 2000] {
                let mut seen = vec![0u32; whole as usize];
                for index in 1..=total {
                    let shard = Shard::new(index, total).unwrap();
                    let mine = shard.select((0..whole).collect());
                    assert_eq!(mine.len() as u64, shard.count(whole));
                    for (n, &i) in mine.iter().enumerate() {
                        assert_eq!(shard.position(n as u64), i);
                        seen[i as usize] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "{total} shards of {whole}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn shards_parse_from_the_flag_or_gitlabs_variables() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, total: 8 }));
        for bad in ["0/8", "9/8", "2", "a/b", "1/0"] {
            let error = Shard::parse(bad).unwrap_err();
            assert!(error.contains("K/N"), "{error}");
        }
        assert_eq!(Shard::from_vars(None, None), Ok(Shard::WHOLE));
        assert_eq!(
            Shard::from_vars(Some("3"), Some("8")),
            Ok(Shard { index: 3, total: 8 })
        );
        assert!(Shard::from_vars(Some("0"), Some("8")).is_err());
        assert!(Shard::from_vars(Some("1"), None)
            .unwrap_err()
            .contains("both"));
    }
}
