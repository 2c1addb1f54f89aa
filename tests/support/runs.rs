//! A run as the in-process tests make it, against a TLS mock they start themselves: a scratch
//! folder (`temp`), the mock with a fresh self-signed certificate (`tls_mock`), the target options
//! that reach it (`target_options`, `ca`), the plan (one lane, quiet, summary.json only: `plan`)
//! and the summary read back (`summary`). Included with `#[path]` by the tests that drive
//! `chatstorm::commands::run` (tls, net_setup, tls_resumption).

#![allow(dead_code)]

use chatstorm::net::TlsOptions;
use chatstorm::plan::RunPlan;
use chatstorm::report::summary::RunSummary;
use chatstorm::target::TargetOptions;
use chatstorm_mock::{MockConfig, MockHandle, SelfSigned};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh folder `chatstorm-PREFIX-NAME-PID` under the system's temporary folder.
pub fn temp(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chatstorm-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A TLS mock with a fresh self-signed certificate for `names` (expired when asked), the suite's
/// configuration otherwise; returns it and the certificate's PEM file in `dir`.
pub async fn tls_mock(dir: &Path, names: &[&str], expired: bool) -> (MockHandle, MockConfig, PathBuf) {
    let made = SelfSigned {
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        expired,
    }
    .make()
    .expect("a self-signed certificate");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &made.cert_pem).unwrap();
    let cfg = MockConfig {
        tls: Some(made.tls),
        health_interval: Duration::from_secs(3),
        longpoll_hold: Duration::from_secs(2),
        ..MockConfig::default()
    };
    let mock = chatstorm_mock::start(cfg.clone()).await.expect("the TLS mock starts");
    assert!(mock.base_url().starts_with("https://127.0.0.1:"), "{}", mock.base_url());
    (mock, cfg, ca)
}

/// The target options of a run against `mock`, trusting it by `tls`.
pub fn target_options(mock: &MockHandle, cfg: &MockConfig, tls: TlsOptions) -> TargetOptions {
    TargetOptions {
        target: Some(mock.base_url()),
        api_key: Some(cfg.api_key.clone()),
        secret: Some(cfg.secret.clone()),
        token_endpoint: None,
        fault_secret: Some(cfg.fault_secret.clone()),
        tls,
        source_ips: None,
    }
}

/// Trust the certificate in `ca` (PEM), nothing insecure.
pub fn ca(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca_cert: Some(ca.to_owned()),
        insecure: false,
    }
}

/// `scenario` against `target`, summary.json into `out`, on one lane, without a live line.
pub fn plan(scenario: &Path, target: TargetOptions, out: &Path) -> RunPlan {
    RunPlan {
        out: Some(out.to_owned()),
        formats: vec![chatstorm::report::Format::Json],
        quiet: true,
        threads: Some(1),
        ..RunPlan::new(scenario.to_owned(), target)
    }
}

/// The summary.json a run wrote into `out`.
pub fn summary(out: &Path) -> RunSummary {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("a summary")
}
