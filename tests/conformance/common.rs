//! Starting the mock for conformance tests and pointing a `Target` at it.

use chatstorm::conformance::{SuiteOptions, embedded_mock_config, embedded_suite_options};
use chatstorm::target::Target;
use chatstorm_mock::{MockConfig, MockHandle};

/// Starts a mock on 127.0.0.1:0 with the embedded suite configuration changed by `tweak`.
pub async fn start_mock(tweak: impl FnOnce(&mut MockConfig)) -> MockHandle {
    let mut cfg = embedded_mock_config();
    tweak(&mut cfg);
    chatstorm_mock::start(cfg).await.expect("mock starts on 127.0.0.1:0")
}

/// A target for a running mock, minting tokens with its secret.
pub fn mock_target(mock: &MockHandle) -> Target {
    chatstorm::conformance::mock_target(&mock.base_url(), &embedded_mock_config()).expect("mock target")
}

/// Suite options matching the embedded configuration.
pub fn suite_options() -> SuiteOptions {
    embedded_suite_options(Vec::new(), false)
}
