//! The engine: turns a validated scenario into a schedule of users and timeline actions, runs
//! them against the target, and gathers what they measured.
//!
//! Layout: `schedule` (load stages → intended start/stop per user index), `run` (one run start
//! to finish), `users` (specs and spawning), `timeline` (faults and actions at offsets),
//! `fault` (the mock's fault-control API), `embedded` (starting the bundled mock), `probe`
//! (is the target there), `lag` (is the generator keeping up), `progress` (the live line),
//! `signals` (SIGINT/SIGTERM), `children` (child processes that die with the harness).

pub mod abort;
pub mod children;
pub mod embedded;
pub mod fault;
pub mod lag;
pub mod probe;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod setup;
pub mod signals;
pub mod timeline;
pub mod users;
pub mod workers;

use crate::scenario::{RemoteTarget, Scenario, TokenSource};
use crate::target::{Target, TargetAuth};

/// The target a scenario names (`target.url`), with its token source.
///
/// # Errors
/// When the URL is not usable.
pub fn target_from_scenario(remote: &RemoteTarget, scenario: &Scenario) -> anyhow::Result<Target> {
    if scenario.users.kind == crate::scenario::UserKind::PlainWebsocket {
        return Target::plain(&remote.url).map_err(|e| anyhow::anyhow!("target.url {e}"));
    }
    let url = remote
        .url
        .replacen("ws://", "http://", 1)
        .replacen("wss://", "https://", 1);
    let url: url::Url = url.parse().map_err(|e| anyhow::anyhow!("target.url {url:?}: {e}"))?;
    let (auth, secret) = match &scenario.users.token.source {
        TokenSource::Secret(s) => (TargetAuth::Secret(s.clone().into_bytes()), Some(s.clone().into_bytes())),
        TokenSource::Endpoint(e) => {
            let e: url::Url = e
                .parse()
                .map_err(|err| anyhow::anyhow!("token endpoint {e:?}: {err}"))?;
            (TargetAuth::TokenEndpoint(e), None)
        }
        TokenSource::EmbeddedSecret => anyhow::bail!("a remote target needs target.secret or users.token.endpoint"),
    };
    Target::new(url, remote.api_key.clone(), auth, secret).map_err(anyhow::Error::msg)
}
