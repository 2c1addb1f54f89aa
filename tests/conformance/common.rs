//! Starting the mock for conformance tests and pointing a `Target` at it.

use std::time::Duration;

use chatstorm::conformance::SuiteOptions;
use chatstorm::target::{Target, TargetAuth};
use chatstorm_mock::{MockConfig, MockHandle};

/// The mock's health interval in these tests: short, so HEALTH-INTERVAL takes seconds, and long
/// enough that a periodic check is not mistaken for a reply (the reply window is half of it).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(3);

/// The configuration the suite runs the embedded mock with.
pub fn suite_config() -> MockConfig {
    MockConfig {
        health_interval: HEALTH_INTERVAL,
        longpoll_hold: Duration::from_secs(2),
        rate_limit: Some(40),
        ..MockConfig::default()
    }
}

/// Starts a mock on 127.0.0.1:0 with [`suite_config`] changed by `tweak`.
pub async fn start_mock(tweak: impl FnOnce(&mut MockConfig)) -> MockHandle {
    let mut cfg = suite_config();
    tweak(&mut cfg);
    chatstorm_mock::start(cfg).await.expect("mock starts on 127.0.0.1:0")
}

/// A target for a running mock, minting tokens with its secret.
pub fn mock_target(mock: &MockHandle) -> Target {
    let secret = MockConfig::default().secret.into_bytes();
    let mut t = Target::new(
        mock.base_url().parse().expect("mock url"),
        MockConfig::default().api_key,
        TargetAuth::Secret(secret.clone()),
        Some(secret),
    )
    .expect("http target");
    t.is_mock = true;
    t
}

/// Suite options matching [`suite_config`].
pub fn suite_options() -> SuiteOptions {
    SuiteOptions {
        health_interval: HEALTH_INTERVAL,
        timeout_per_case: Duration::from_secs(30),
        rate_probe: 100,
        ..SuiteOptions::default()
    }
}
