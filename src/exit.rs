//! The exit codes, one class each (README "Exit codes").

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 0: everything passed.
    Passed,
    /// 1: a threshold was breached (or a baseline comparison found a regression).
    ThresholdBreached,
    /// 1: an implicit check failed (users did not connect or come back, state vanished).
    CheckFailed,
    /// 2: the configuration or scenario is invalid; nothing ran.
    InvalidConfig,
    /// 3: a strict conformance rule failed.
    ConformanceFailed,
    /// 4: the run is invalid because the generator itself was saturated.
    GeneratorSaturated,
    /// 4: the run is invalid because shards of its fleet were lost or never started (more than
    /// the scenario allows): their users are missing.
    ShardsLost,
    /// 5: the target could not be reached at all, failed during setup, or the run was interrupted.
    Unreachable,
    /// 5: the target stopped answering during the run (its own outcome, named with the time).
    TargetLost,
    /// 6: the local source addresses (`--source-ips`) or descriptors cannot carry the users;
    /// nothing ran.
    SourcesTooFew,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 10] = [
        Self::Passed,
        Self::ThresholdBreached,
        Self::CheckFailed,
        Self::InvalidConfig,
        Self::ConformanceFailed,
        Self::GeneratorSaturated,
        Self::Unreachable,
        Self::TargetLost,
        Self::ShardsLost,
        Self::SourcesTooFew,
    ];

    /// Every documented exit code (README "Exit codes"), ascending.
    pub fn codes() -> Vec<u8> {
        let mut codes: Vec<u8> = Self::ALL.iter().map(|o| o.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    /// Every outcome's [`verdict`](Self::verdict) word.
    pub fn verdicts() -> Vec<&'static str> {
        Self::ALL.iter().map(|o| o.verdict()).collect()
    }

    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Passed => 0,
            Self::ThresholdBreached | Self::CheckFailed => 1,
            Self::InvalidConfig => 2,
            Self::ConformanceFailed => 3,
            Self::GeneratorSaturated | Self::ShardsLost => 4,
            Self::Unreachable | Self::TargetLost => 5,
            Self::SourcesTooFew => 6,
        }
    }

    /// Combines two outcomes of one run: the more severe wins, in the order
    /// target lost > unreachable/interrupted > saturated > conformance > threshold > passed.
    pub fn worst(self, other: Self) -> Self {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Passed => 0,
                Outcome::ThresholdBreached | Outcome::CheckFailed => 1,
                Outcome::ConformanceFailed => 2,
                Outcome::GeneratorSaturated | Outcome::ShardsLost => 3,
                Outcome::InvalidConfig | Outcome::SourcesTooFew => 4,
                Outcome::Unreachable => 5,
                Outcome::TargetLost => 6,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }

    /// A short lowercase word for reports.
    pub fn verdict(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::ThresholdBreached => "threshold breached",
            Self::CheckFailed => "check failed",
            Self::InvalidConfig => "invalid configuration",
            Self::ConformanceFailed => "conformance failed",
            Self::GeneratorSaturated => "invalid: generator saturated",
            Self::ShardsLost => "invalid: shards lost",
            Self::Unreachable => "target unreachable or interrupted",
            Self::TargetLost => "target died during the run",
            Self::SourcesTooFew => "too few source addresses or descriptors for the users",
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o.code())
    }
}

impl Outcome {
    /// The outcome of an exit code written in a summary.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Passed,
            1 => Self::ThresholdBreached,
            2 => Self::InvalidConfig,
            3 => Self::ConformanceFailed,
            4 => Self::GeneratorSaturated,
            6 => Self::SourcesTooFew,
            _ => Self::Unreachable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_the_more_severe() {
        assert_eq!(
            Outcome::Passed.worst(Outcome::ThresholdBreached),
            Outcome::ThresholdBreached
        );
        assert_eq!(
            Outcome::GeneratorSaturated.worst(Outcome::ConformanceFailed),
            Outcome::GeneratorSaturated
        );
        assert_eq!(Outcome::Unreachable.code(), 5);
    }
}
