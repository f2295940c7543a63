//! Bytes that depend on a seed and on their place, so that a block written in
//! the wrong place, or left over from an earlier run, shows: the nucleus's
//! disk self-test writes them, and the host's disk tests write and check them.

/// SplitMix64's output function: a good 64-bit mix of `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern's 64-bit words from word `first` on, for `seed`: word `n` is
/// the mix of `seed` and `n`, little endian.
pub fn words(seed: u64, first: u64) -> impl Iterator<Item = [u8; 8]> {
    (first..).map(move |word| splitmix64(seed ^ word).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate alloc;
    use alloc::vec::Vec;

    #[test]
    fn words_differ_by_place_and_seed_and_repeat() {
        let a: Vec<[u8; 8]> = words(1, 0).take(4).collect();
        assert_eq!(a, words(1, 0).take(4).collect::<Vec<_>>());
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], words(2, 0).next().unwrap());
        assert_eq!(a[2], words(1, 2).next().unwrap());
        // SplitMix64 of 0, as published.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }
}
