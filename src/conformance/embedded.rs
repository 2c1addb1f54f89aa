//! Running the suite against the embedded mock: the mock configuration the suite expects (short
//! health interval and long-poll hold, rate limiting on so the RATE rules run) and a one-call
//! entry point for `chatstorm conform` without `--target`.

use std::time::Duration;

use chatstorm_mock::MockConfig;

use super::{ConformanceReport, SuiteOptions, run_suite};
use crate::target::{Target, TargetError};

/// The embedded mock's health interval during `conform`: short so HEALTH-INTERVAL takes seconds,
/// long enough that a periodic check is not mistaken for a reply (replies get half of it).
pub const EMBEDDED_HEALTH_INTERVAL: Duration = Duration::from_secs(3);

/// The configuration `conform` starts the embedded mock with.
pub fn embedded_mock_config() -> MockConfig {
    MockConfig {
        health_interval: EMBEDDED_HEALTH_INTERVAL,
        longpoll_hold: Duration::from_secs(2),
        // Per user, per endpoint, per minute: well above what any case sends, except the RATE
        // probe (100 requests).
        rate_limit: Some(40),
        ..MockConfig::default()
    }
}

/// Suite options for the embedded mock, keeping the caller's selection and strictness.
pub fn embedded_suite_options(only: Vec<String>, strict: bool) -> SuiteOptions {
    SuiteOptions {
        only,
        strict,
        health_interval: EMBEDDED_HEALTH_INTERVAL,
        timeout_per_case: Duration::from_secs(30),
        rate_probe: 100,
        ..SuiteOptions::default()
    }
}

/// A target for a mock listening at `http_base`, minting tokens with `config`'s secret.
///
/// # Errors
/// When `http_base` is not an http(s) URL.
pub fn mock_target(http_base: &str, config: &MockConfig) -> Result<Target, TargetError> {
    let url = http_base.parse().map_err(|reason| TargetError::BadUrl {
        what: "mock url",
        value: http_base.to_owned(),
        reason,
    })?;
    Target::mock(url, config.api_key.clone(), &config.secret, config.fault_secret.clone())
}

/// Starts the embedded mock on 127.0.0.1:0 with [`embedded_mock_config`], runs the suite with
/// `opts` (its `health_interval` is overridden to match), and stops the mock.
///
/// # Errors
/// When the mock cannot bind a loopback port.
pub async fn run_embedded(opts: &SuiteOptions) -> std::io::Result<ConformanceReport> {
    let config = embedded_mock_config();
    let mock = chatstorm_mock::start(config.clone()).await?;
    let target = mock_target(&mock.base_url(), &config).map_err(std::io::Error::other)?;
    let opts = SuiteOptions {
        health_interval: EMBEDDED_HEALTH_INTERVAL,
        ..opts.clone()
    };
    let report = run_suite(&target, &opts).await;
    mock.shutdown().await;
    Ok(report)
}
