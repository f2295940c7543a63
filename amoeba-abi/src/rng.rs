//! ChaCha20-based CSPRNG for check fields and ports.

use chacha20::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

use crate::{Check, Port};

/// A cryptographically secure random number generator (ChaCha20), seeded with 32
/// bytes the caller supplies (the nucleus seeds it from virtio-rng and the timer).
pub struct Rng {
    inner: ChaCha20Rng,
}

impl Rng {
    /// A generator from a 32-byte seed. Equal seeds give equal streams.
    pub fn from_seed(seed: [u8; 32]) -> Rng {
        Rng { inner: ChaCha20Rng::from_seed(seed) }
    }

    /// Mix fresh entropy in: the new key is the next 32 output bytes XOR `extra`.
    pub fn reseed(&mut self, extra: [u8; 32]) {
        let mut k = [0u8; 32];
        self.inner.fill_bytes(&mut k);
        for (k, e) in k.iter_mut().zip(extra) {
            *k ^= e;
        }
        self.inner = ChaCha20Rng::from_seed(k);
    }

    /// Fill `dst` with random bytes.
    pub fn fill(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst);
    }

    /// A random 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A random 48-bit check value (for a new object's owner capability).
    pub fn check(&mut self) -> Check {
        let mut b = [0u8; 6];
        self.fill(&mut b);
        Check(b)
    }

    /// A random port (e.g. a fresh get-port).
    pub fn port(&mut self) -> Port {
        let mut b = [0u8; 6];
        self.fill(&mut b);
        Port(b)
    }
}

impl core::fmt::Debug for Rng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rng(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let mut a = Rng::from_seed([1; 32]);
        let mut b = Rng::from_seed([1; 32]);
        let mut c = Rng::from_seed([2; 32]);
        let (x, y, z) = (a.check(), b.check(), c.check());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(a.check(), x);
        a.reseed([9; 32]);
        b.reseed([8; 32]);
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
