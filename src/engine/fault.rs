//! The mock's fault-control API seen from the harness (`/_fault/...`, guarded by the fault secret
//! in `X-Chatstorm-Secret`, never the app secret; contract in mock-server/README.md). Works the
//! same for the in-process mock, a child-process mock and a mock started elsewhere (`--target`
//! with `--fault-secret`), whose API [`detect`] checks before a run that needs it.

use crate::net;
use crate::target::Target;
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a target's fault-control API cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultApiError {
    /// No fault secret was given (`--fault-secret` / `CHATSTORM_FAULT_SECRET`).
    #[error(
        "no fault secret given: start the mock with --fault-secret (or CHATSTORM_FAULT_SECRET) and pass the same to run"
    )]
    NoSecret,
    /// The API is there but refused the secret.
    #[error("the target's fault-control API refused the fault secret (HTTP 401): pass the mock's --fault-secret")]
    WrongSecret,
    /// The target answered, but not as a chatstorm mock's fault API does.
    #[error("the target has no chatstorm fault-control API (GET /_fault/state answered {0})")]
    NoApi(String),
    /// The target did not answer at all.
    #[error("{0}")]
    Unreachable(String),
}

/// Why one fault-control call failed (reported in the timeline's marks, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum FaultCallError {
    /// No usable HTTP answer.
    #[error(transparent)]
    Http(#[from] net::Error),
    /// The mock answered with an error status.
    #[error("{path}: HTTP {status}: {body}")]
    Refused {
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The answer's JSON (null when it was not JSON).
        body: Value,
    },
}

/// Checks that `target` serves a chatstorm mock's fault-control API that accepts its fault
/// secret: one `GET /_fault/state`, which changes nothing.
///
/// # Errors
/// The reason the API cannot be used, as a one-line [`FaultApiError`].
pub async fn detect(target: &Target) -> Result<(), FaultApiError> {
    let secret = target
        .fault_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(FaultApiError::NoSecret)?;
    let url = Target::join(&target.http_base, "/_fault/state");
    let resp = net::Client::with_tls(target.tls.clone())
        .send(
            http::Method::GET,
            &url,
            &[("x-chatstorm-secret", secret)],
            None,
            TIMEOUT,
        )
        .await
        .map_err(|e| FaultApiError::Unreachable(e.to_string()))?;
    match resp.status {
        401 => Err(FaultApiError::WrongSecret),
        200 => match serde_json::from_slice::<Value>(&resp.body) {
            Ok(v) if v.get("violations").is_some_and(Value::is_array) => Ok(()),
            _ => Err(FaultApiError::NoApi(
                "HTTP 200 with a body that is not a fault state".to_owned(),
            )),
        },
        s => Err(FaultApiError::NoApi(format!("HTTP {s}"))),
    }
}

/// A client of one mock's fault control.
#[derive(Clone)]
pub struct FaultClient {
    http: net::Client,
    base: url::Url,
    secret: String,
}

impl FaultClient {
    /// A client for `target` (which must carry the fault secret).
    pub fn new(target: &Target) -> Self {
        Self {
            http: net::Client::with_tls(target.tls.clone()),
            base: target.http_base.clone(),
            secret: target.fault_secret.clone().unwrap_or_default(),
        }
    }

    async fn call(&self, method: http::Method, path: &str, body: Option<Value>) -> Result<Value, FaultCallError> {
        let url = Target::join(&self.base, path);
        let resp = self
            .http
            .send(
                method,
                &url,
                &[("x-chatstorm-secret", &self.secret)],
                body.map(|v| v.to_string().into()),
                TIMEOUT,
            )
            .await?;
        let value: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if resp.status >= 300 {
            return Err(FaultCallError::Refused {
                path: path.to_owned(),
                status: resp.status,
                body: value,
            });
        }
        Ok(value)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, FaultCallError> {
        self.call(http::Method::POST, path, Some(body)).await
    }

    /// Drops `fraction` of all connections (seeded), with a close code or abruptly.
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn drop_sockets(&self, fraction: f64, close: Option<u16>, seed: u64) -> Result<Value, FaultCallError> {
        let body = match close {
            Some(code) => json!({"fraction": fraction, "mode": "close", "code": code, "seed": seed}),
            None => json!({"fraction": fraction, "mode": "abrupt", "seed": seed}),
        };
        self.post("/_fault/drop", body).await
    }

    /// Treats the tokens of `users` (all when `None`) as expired from now on.
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn expire_tokens(&self, users: Option<Vec<String>>) -> Result<Value, FaultCallError> {
        // Cut off tokens issued before this second, not in it: `iat` has whole seconds, and a user
        // kicked now refreshes at once; a cut-off of "now" would also refuse the fresh token it
        // mints in the same second, which no server would call expired.
        let cutoff = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            - 1;
        let body = match users {
            None => json!({"all": true, "cutoff": cutoff}),
            Some(users) => json!({"users": users, "cutoff": cutoff}),
        };
        self.post("/_fault/expire-tokens", body).await
    }

    /// Refuses WebSocket upgrades for `length`.
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn refuse_upgrades(&self, length: Duration) -> Result<Value, FaultCallError> {
        self.post(
            "/_fault/refuse-upgrades",
            json!({"duration_ms": length.as_millis() as u64}),
        )
        .await
    }

    /// Makes the sockets of `users` (all when `None`) silent without closing them.
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn half_open(&self, users: Option<Vec<String>>) -> Result<Value, FaultCallError> {
        let body = match users {
            None => json!({"all": true}),
            Some(users) => json!({"all": false, "users": users}),
        };
        self.post("/_fault/half-open", body).await
    }

    /// Adds latency to every frame and request (0 removes it).
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn latency(&self, delay: Duration) -> Result<Value, FaultCallError> {
        let ms = delay.as_millis() as u64;
        self.post("/_fault/latency", json!({"frame_ms": ms, "request_ms": ms}))
            .await
    }

    /// Delays every connection's first frame (measurement-overhead benchmarks).
    ///
    /// # Errors
    /// When the mock refuses or does not answer.
    pub async fn first_frame_delay(&self, delay: Duration) -> Result<Value, FaultCallError> {
        self.post("/_fault/first-frame-delay", json!({"ms": delay.as_millis() as u64}))
            .await
    }

    /// Turns named protocol violations on or off.
    ///
    /// # Errors
    /// When the mock refuses (unknown name) or does not answer.
    pub async fn violations(&self, enable: &[&str], disable: &[&str]) -> Result<Value, FaultCallError> {
        self.post("/_fault/violations", json!({"enable": enable, "disable": disable}))
            .await
    }

    /// The mock's counters.
    ///
    /// # Errors
    /// When the mock does not answer.
    pub async fn stats(&self) -> Result<Value, FaultCallError> {
        self.call(http::Method::GET, "/_fault/stats", None).await
    }

    /// Clears every fault (best effort, at the end of a run).
    pub async fn reset(&self) {
        let _ = self.post("/_fault/reset", json!({})).await;
    }
}
