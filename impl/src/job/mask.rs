//! JOB-5: masked variables never reach the job log; each occurrence becomes
//! `[MASKED]`, as GitLab Runner writes it.
//!
//! The log is sent in increments, and a script's output arrives in pieces of
//! any size, so a secret can be split across two writes. The masker therefore
//! holds back the end of what it was given while that end could still be the
//! start of a secret, and lets it go once the next bytes show it is not (or the
//! job ends). Nothing else is delayed.

/// What a masked value becomes in the log.
pub const MASK: &[u8] = b"[MASKED]";

/// Replaces every occurrence of its phrases in a byte stream with [`MASK`].
#[derive(Debug, Default)]
pub struct Masker {
    /// Longest first, so that a secret that starts with another is masked whole.
    phrases: Vec<Vec<u8>>,
    /// The end of the input that may be the start of a phrase.
    held: Vec<u8>,
}

impl Masker {
    /// GitLab only lets variables of 8 characters or more be masked, but a
    /// runner masks what it is told to: only empty values are ignored (they
    /// would match everywhere).
    pub fn new<I, S>(phrases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut phrases: Vec<Vec<u8>> = phrases
            .into_iter()
            .map(|p| p.as_ref().to_vec())
            .filter(|p| !p.is_empty())
            .collect();
        phrases.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        phrases.dedup();
        Masker {
            phrases,
            held: Vec::new(),
        }
    }

    /// Masks `input`; returns what can be logged now.
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        if self.phrases.is_empty() {
            return input.to_vec();
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(input);
        let (out, done) = self.scan(&buf, false);
        self.held = buf[done..].to_vec();
        out
    }

    /// The input has ended: returns what was held back, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.held);
        self.scan(&buf, true).0
    }

    /// Masks `buf` and says how much of it was consumed (all, `at_end`).
    fn scan(&self, buf: &[u8], at_end: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(buf.len());
        let mut at = 0;
        while at < buf.len() {
            let rest = &buf[at..];
            // A longer phrase that may still complete wins over a shorter one
            // that matches already: wait for the next bytes.
            if !at_end
                && self
                    .phrases
                    .iter()
                    .any(|p| p.len() > rest.len() && p.starts_with(rest))
            {
                return (out, at);
            }
            match self.phrases.iter().find(|p| rest.starts_with(p)) {
                Some(phrase) => {
                    out.extend_from_slice(MASK);
                    at += phrase.len();
                }
                None => {
                    out.push(buf[at]);
                    at += 1;
                }
            }
        }
        (out, buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one by one and returns the whole output.
    fn mask(phrases: &[&str], pieces: &[&str]) -> String {
        let mut masker = Masker::new(phrases);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(masker.push(piece.as_bytes()));
        }
        out.extend(masker.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_secret_in_one_piece_is_masked() {
        assert_eq!(
            mask(&["s3cr3t-value"], &["token=s3cr3t-value done\n"]),
            "token=[MASKED] done\n"
        );
    }

    #[test]
    fn a_secret_split_across_pieces_is_masked() {
        let secret = "s3cr3t-value";
        for cut in 1..secret.len() {
            let (a, b) = secret.split_at(cut);
            assert_eq!(
                mask(&[secret], &["x ", a, b, " y\n"]),
                "x [MASKED] y\n",
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<String> = "a s3cr3t-value b".chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(mask(&[secret], &pieces), "a [MASKED] b");
    }

    #[test]
    fn only_a_possible_start_of_a_secret_is_held_back() {
        let mut masker = Masker::new(["s3cr3t-value"]);
        assert_eq!(masker.push(b"line one\nand s3cr"), b"line one\nand ");
        assert_eq!(masker.push(b"een\n"), b"s3creen\n");
        assert_eq!(masker.push(b"no secret here\n"), b"no secret here\n");
    }

    #[test]
    fn a_held_prefix_that_never_completes_is_logged_at_the_end() {
        assert_eq!(
            mask(&["s3cr3t-value"], &["ends with s3cr3t"]),
            "ends with s3cr3t"
        );
    }

    #[test]
    fn overlapping_and_repeated_secrets() {
        assert_eq!(
            mask(
                &["abcdefgh", "abcdefgh-longer"],
                &["abcdefgh-lon", "ger abcdefgh!"]
            ),
            "[MASKED] [MASKED]!"
        );
        assert_eq!(mask(&["aaaaaaab"], &["aaaaaaaaab"]), "aa[MASKED]");
        assert_eq!(
            mask(&["12345678"], &["1234567812345678"]),
            "[MASKED][MASKED]"
        );
    }

    #[test]
    fn empty_phrases_mask_nothing() {
        assert_eq!(mask(&[""], &["anything\n"]), "anything\n");
    }
}
