//! Randomness for session ids and tokens (JOB-2), injected so that a simulation
//! draws them from a seed and a real runner from the operating system.

use std::sync::{Arc, Mutex};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A shared source of random bytes.
#[derive(Clone)]
pub struct Rng(Arc<Mutex<Box<dyn RngCore + Send>>>);

impl Rng {
    /// Operating-system randomness, for real runners.
    pub fn from_os() -> Self {
        Self::new(Box::new(ChaCha8Rng::from_os_rng()))
    }

    /// A deterministic stream, for simulation: the same seed gives the same ids.
    pub fn seeded(seed: u64) -> Self {
        Self::new(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    fn new(inner: Box<dyn RngCore + Send>) -> Self {
        Rng(Arc::new(Mutex::new(inner)))
    }

    /// 32 random bytes as 64 lowercase hex characters (JOB-2).
    pub fn hex_token(&self) -> String {
        let mut bytes = [0u8; 32];
        self.0
            .lock()
            .expect("rng lock poisoned")
            .fill_bytes(&mut bytes);
        // A table, not `format!` per byte: a runner makes a session (two
        // tokens) for every job request, so this runs at each poll.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut token = String::with_capacity(2 * bytes.len());
        for b in bytes {
            token.push(char::from(HEX[usize::from(b >> 4)]));
            token.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        token
    }

    /// A value in `0..n`, for jitter.
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.0.lock().expect("rng lock poisoned").next_u64() % n
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_lowercase_hex() {
        let t = Rng::from_os().hex_token();
        assert_eq!(t.len(), 64);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn same_seed_same_tokens() {
        let (a, b) = (Rng::seeded(7), Rng::seeded(7));
        assert_eq!(a.hex_token(), b.hex_token());
        assert_ne!(a.hex_token(), Rng::seeded(8).hex_token());
    }
}
