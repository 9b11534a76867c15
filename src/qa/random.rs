//! SplitMix64, the one random number generator outside libtorch (training's data order and
//! dropout masks, negatives and distractor passages): a tiny, stable function, so none of
//! them changes with a dependency update.

/// The `n`-th output (from 0) of the SplitMix64 sequence seeded with `seed`, computed directly:
/// any element of a stream is available without the ones before it, which is what lets threads
/// fill disjoint parts of a dropout mask.
pub fn splitmix64_at(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 as a sequence, for shuffles.
pub struct SplitMix64 {
    seed: u64,
    drawn: u64,
}

impl SplitMix64 {
    /// Starts the sequence of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, drawn: 0 }
    }

    /// The next output.
    pub fn next_u64(&mut self) -> u64 {
        let value = splitmix64_at(self.seed, self.drawn);
        self.drawn += 1;
        value
    }

    /// Fisher-Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64_at(0, 1), 0x6E78_9E6A_A1B9_65F4);
    }
}
