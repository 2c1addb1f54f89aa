//! The reconnect back-off of the official SDKs (PROTOCOL.md §3.4) and Unity's scheduler (U.4).
//!
//! For `n` consecutive failures the JS, Android and Flutter SDKs wait a uniform random time in
//! `[min(max(250, (n-1)·2000), 25000), min(500 + n·2000, 25000))` milliseconds. Randomness comes
//! from the caller (a uniform number in `[0, 1)`), so this module stays pure and seedable.

/// The largest delay any SDK waits between attempts, in milliseconds.
pub const MAX_RETRY_MS: u64 = 25_000;

/// The `[min, max)` delay range in milliseconds after `failures` consecutive failures.
pub fn retry_interval_bounds(failures: u32) -> (u64, u64) {
    let n = u64::from(failures);
    let max = (500 + n.saturating_mul(2000)).min(MAX_RETRY_MS);
    let min = n.saturating_sub(1).saturating_mul(2000).clamp(250, MAX_RETRY_MS);
    (min, max)
}

/// The delay in milliseconds after `failures` failures, for a uniform `unit` in `[0, 1)` (floored,
/// as JS does). When the range is empty (n ≥ 14) the delay is exactly 25 s.
pub fn retry_interval_ms(failures: u32, unit: f64) -> u64 {
    let (min, max) = retry_interval_bounds(failures);
    let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
    let span = max.saturating_sub(min) as f64;
    (min + (unit * span).floor() as u64).min(max.max(min))
}

/// Swift's variant: the same range but 0 ms before the first retry (CORE `DefaultRetryStrategy`).
pub fn swift_retry_interval_ms(failures: u32, unit: f64) -> u64 {
    if failures == 0 {
        0
    } else {
        retry_interval_ms(failures, unit)
    }
}

/// Unity's reconnect strategies (`ReconnectStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnityStrategy {
    /// Six immediate attempts, then `min(max(0.01, 2^n), 64)` s (64 s with the defaults).
    Exponential,
    /// Six immediate attempts, then 1 s.
    Constant,
    /// Never reconnect.
    Never,
}

/// Unity's maximum instant trials before the strategy's delay applies.
pub const UNITY_INSTANT_TRIALS: u32 = 5;

/// The delay before Unity's attempt number `attempt` (1-based, counted since the last success),
/// or `None` when the strategy never reconnects. `Constant` waits Unity's default 1 s.
pub fn unity_retry_delay_ms(attempt: u32, strategy: UnityStrategy) -> Option<u64> {
    unity_retry_delay_with(attempt, strategy, 1000)
}

/// [`unity_retry_delay_ms`] with the `Constant` strategy's interval in milliseconds.
///
/// Unity counts `n`, the attempts started since the last successful connect, and retries at once
/// while `n <= 5` (so `attempt = n + 1 <= 6`): six back-to-back attempts after a drop, or the
/// first connect plus five, before the strategy's wait (`min(max(0.01, 2^n), 64)` s).
pub fn unity_retry_delay_with(attempt: u32, strategy: UnityStrategy, constant_ms: u64) -> Option<u64> {
    if strategy == UnityStrategy::Never {
        return None;
    }
    if attempt <= UNITY_INSTANT_TRIALS + 1 {
        return Some(0);
    }
    Some(match strategy {
        UnityStrategy::Constant => constant_ms,
        _ => {
            let n = attempt.saturating_sub(1).min(30) as i32;
            let secs = 2f64.powi(n).clamp(0.01, 64.0);
            (secs * 1000.0) as u64
        }
    })
}

/// Unity's reconnect settings (`SetReconnectStrategySettings`): the strategy, and the interval of
/// `Constant`. The default is the SDK's: exponential, constant 1 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnityReconnect {
    /// Which strategy.
    pub strategy: UnityStrategy,
    /// The wait of `Constant` after the instant trials.
    pub interval: std::time::Duration,
}

impl Default for UnityReconnect {
    fn default() -> Self {
        UnityReconnect {
            strategy: UnityStrategy::Exponential,
            interval: std::time::Duration::from_secs(1),
        }
    }
}

impl UnityReconnect {
    /// The wait before the next attempt after `failed` failed attempts since the last successful
    /// connect (a drop itself is not a failed attempt); `None` when the client never reconnects.
    pub fn delay_after(&self, failed: u32) -> Option<std::time::Duration> {
        let ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        unity_retry_delay_with(failed.saturating_add(1), self.strategy, ms).map(std::time::Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_the_sdk_table() {
        let table = [
            (0, (250, 500)),
            (1, (250, 2500)),
            (2, (2000, 4500)),
            (3, (4000, 6500)),
            (6, (10000, 12500)),
            (12, (22000, 24500)),
            (13, (24000, 25000)),
            (14, (25000, 25000)),
            (u32::MAX, (25000, 25000)),
        ];
        for (n, want) in table {
            assert_eq!(retry_interval_bounds(n), want, "n={n}");
        }
    }

    #[test]
    fn delay_stays_in_range() {
        for n in 0..20 {
            let (min, max) = retry_interval_bounds(n);
            for unit in [0.0, 0.25, 0.999_999, 1.0, f64::NAN, -3.0] {
                let d = retry_interval_ms(n, unit);
                assert!(
                    d >= min && (d < max || min == max || unit >= 1.0 && d == max),
                    "n={n} u={unit} d={d}"
                );
            }
        }
        assert_eq!(retry_interval_ms(2, 0.5), 3250);
        assert_eq!(swift_retry_interval_ms(0, 0.9), 0);
        assert_eq!(swift_retry_interval_ms(1, 0.0), 250);
    }

    #[test]
    fn unity_schedule() {
        let delays: Vec<_> = (1..=8)
            .map(|a| unity_retry_delay_ms(a, UnityStrategy::Exponential))
            .collect();
        assert_eq!(
            delays,
            [
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(64_000),
                Some(64_000)
            ]
        );
        assert_eq!(unity_retry_delay_ms(7, UnityStrategy::Constant), Some(1000));
        assert_eq!(unity_retry_delay_ms(1, UnityStrategy::Never), None);
    }

    #[test]
    fn unity_settings_count_failed_attempts() {
        let secs =
            |r: UnityReconnect| -> Vec<Option<u64>> { (0..8).map(|f| r.delay_after(f).map(|d| d.as_secs())).collect() };
        let exp = UnityReconnect::default();
        // After a drop (0 failed) and five more failures: six immediate attempts, then 64 s.
        assert_eq!(secs(exp), [0, 0, 0, 0, 0, 0, 64, 64].map(Some));
        let constant = UnityReconnect {
            strategy: UnityStrategy::Constant,
            interval: std::time::Duration::from_secs(5),
        };
        assert_eq!(secs(constant), [0, 0, 0, 0, 0, 0, 5, 5].map(Some));
        let never = UnityReconnect {
            strategy: UnityStrategy::Never,
            ..exp
        };
        assert_eq!(secs(never), [None; 8]);
    }
}
