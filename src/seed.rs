//! Seeded, stateless randomness: every random choice of a run derives from the run seed and
//! what is being decided (a user index, an action number), so two runs of one scenario make the
//! same choices whatever the order in which tasks happen to run, and whatever the sharding.

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit value for (seed, salt, index).
pub fn hash3(seed: u64, salt: u64, index: u64) -> u64 {
    mix(mix(seed ^ mix(salt)) ^ index)
}

/// A uniform number in `[0, 1)` for (seed, salt, index).
pub fn unit(seed: u64, salt: u64, index: u64) -> f64 {
    (hash3(seed, salt, index) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether `fraction` of all indices selects this one, for the decision named by `salt`.
pub fn picks(seed: u64, salt: u64, index: u64, fraction: f64) -> bool {
    fraction >= 1.0 || unit(seed, salt, index) < fraction
}

/// The per-user RNG seed.
pub fn user_seed(run_seed: u64, index: u32) -> u64 {
    hash3(run_seed, 0x7573_6572, u64::from(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_about_the_fraction_and_is_stable() {
        let n = (0..10_000).filter(|&i| picks(42, 7, i, 0.3)).count();
        assert!((2_800..3_200).contains(&n), "{n}");
        assert_eq!(picks(42, 7, 5, 0.3), picks(42, 7, 5, 0.3));
        assert!((0..100).all(|i| picks(1, 2, i, 1.0)));
        assert!((0..100).all(|i| !picks(1, 2, i, 0.0)));
        assert_ne!(user_seed(1, 0), user_seed(1, 1));
    }
}
