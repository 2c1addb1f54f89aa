//! Token modes of a simulated user. `provider`: a new token whenever the SDK asks, minted locally
//! with the app secret (HS256, `exp` = now + ttl) or fetched from an HTTP token endpoint
//! (`GET <endpoint>?user_id=<id>`, body the raw token or `{"token": "..."}`), each call measured as
//! `token.fetch`. `static`: one token for the user's life; a refresh code is then fatal.

use super::http::{self, HttpClient};
use super::record::{Counter, Metric, Recorder};
use crate::target::TargetAuth;
use chatstorm_protocol::token::{Claims, sign};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How a user holds its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// The SDK was given a token provider: tokens are refreshed on the profile's codes.
    Provider,
    /// The SDK was given one token.
    Static,
}

/// The token part of a user spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSpec {
    /// Provider or static.
    pub mode: TokenMode,
    /// Lifetime of locally minted tokens (`None`: no `exp`).
    pub ttl: Option<Duration>,
}

/// Attempts at the token endpoint per provider call.
pub const ENDPOINT_ATTEMPTS: u32 = 3;
/// Time allowed for one token endpoint request.
pub const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard a provider call tries the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Attempts per call (at least one).
    pub attempts: u32,
    /// Time allowed for each attempt.
    pub timeout: Duration,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self {
            attempts: ENDPOINT_ATTEMPTS,
            timeout: ENDPOINT_TIMEOUT,
        }
    }
}

/// Why no token could be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The endpoint failed every attempt.
    #[error("token endpoint failed after {attempts} attempts: {last}")]
    Endpoint {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A locally minted user token, `exp` = now + ttl when a ttl is given.
pub fn mint(secret: &[u8], user_id: &str, ttl: Option<Duration>) -> String {
    let now = unix_now();
    let exp = ttl.map(|t| now + t.as_secs().max(1) as i64);
    sign(
        &Claims {
            iat: Some(now),
            ..Claims::user(user_id, exp)
        },
        secret,
    )
}

/// A token that expired a minute ago (the client-side `expire_tokens` action), when the secret is
/// known; `None` otherwise (an endpoint-only target cannot be expired from the client).
pub fn expired(secret: Option<&[u8]>, user_id: &str) -> Option<String> {
    let now = unix_now();
    secret.map(|s| {
        sign(
            &Claims {
                iat: Some(now - 120),
                ..Claims::user(user_id, Some(now - 60))
            },
            s,
        )
    })
}

/// One provider call: mint or fetch. Counts `TokenFetches` (and `TokenFetchFailures` per failed
/// endpoint attempt) and records the call's whole time, retries included, as `token.fetch`.
///
/// # Errors
/// [`TokenError`] when the endpoint failed every attempt.
pub async fn fetch(
    auth: &TargetAuth,
    http: &HttpClient,
    rec: &Recorder,
    user_id: &str,
    ttl: Option<Duration>,
    seed: u64,
) -> Result<String, TokenError> {
    let started = Instant::now();
    rec.count(Counter::TokenFetches);
    let result = match auth {
        TargetAuth::Secret(secret) => Ok(mint(secret, user_id, ttl)),
        TargetAuth::TokenEndpoint(url) => {
            fetch_from_endpoint(url, http, rec, user_id, seed, EndpointPolicy::default()).await
        }
    };
    if result.is_ok() {
        rec.record(Metric::TokenFetch, started.elapsed());
    }
    result
}

/// `GET <endpoint>?user_id=<id>` with retries: each failed attempt (status, body, timeout,
/// transport) counts `TokenFetchFailures` and is followed by the SDK back-off before the next.
///
/// # Errors
/// [`TokenError::Endpoint`] when every attempt failed.
pub async fn fetch_from_endpoint(
    endpoint: &url::Url,
    client: &HttpClient,
    rec: &Recorder,
    user_id: &str,
    seed: u64,
    policy: EndpointPolicy,
) -> Result<String, TokenError> {
    let attempts = policy.attempts.max(1);
    let mut url = endpoint.clone();
    url.query_pairs_mut().append_pair("user_id", user_id);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match http::send(client, ::http::Method::GET, url.as_str(), &[], None, policy.timeout).await {
            Ok(r) if r.status == 200 => match parse_token_body(&r.body) {
                Some(t) => return Ok(t),
                None => last = "the body is neither a token nor {\"token\": ...}".to_owned(),
            },
            Ok(r) => last = format!("HTTP {}", r.status),
            Err(e) => last = e.to_string(),
        }
        rec.count(Counter::TokenFetchFailures);
        if attempt < attempts {
            // The SDK back-off, seeded per user so retries of many users spread out.
            let unit = (seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(u64::from(attempt))
                >> 11) as f64
                / (1u64 << 53) as f64;
            let ms = chatstorm_protocol::backoff::retry_interval_ms(attempt - 1, unit);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    Err(TokenError::Endpoint { attempts, last })
}

/// Reads a token endpoint's body: a raw JWT (surrounding whitespace and quotes ignored) or a JSON
/// object with a string `token`.
pub fn parse_token_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        return v.get("token")?.as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    }
    let raw = text.trim_matches('"');
    let looks_like_jwt = raw.split('.').count() == 3 && !raw.contains(char::is_whitespace);
    looks_like_jwt.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstorm_protocol::token::verify;

    #[test]
    fn minted_tokens_verify_and_expire() {
        let t = mint(b"s3cret", "u-1", Some(Duration::from_secs(60)));
        let c = verify(&t, b"s3cret", unix_now()).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("u-1"));
        assert!(c.exp.unwrap() >= unix_now() + 59);
        assert!(mint(b"s", "u", None).split('.').count() == 3);
        let e = expired(Some(b"s3cret"), "u-1").unwrap();
        assert_eq!(
            verify(&e, b"s3cret", unix_now()).unwrap_err().code(),
            chatstorm_protocol::ErrorCode::TOKEN_EXPIRED
        );
        assert_eq!(expired(None, "u"), None);
    }

    #[test]
    fn token_bodies() {
        assert_eq!(parse_token_body(b" a.b.c\n").as_deref(), Some("a.b.c"));
        assert_eq!(parse_token_body(br#""a.b.c""#).as_deref(), Some("a.b.c"));
        assert_eq!(parse_token_body(br#"{"token":"a.b.c"}"#).as_deref(), Some("a.b.c"));
        for bad in [
            &b""[..],
            b"{}",
            br#"{"token":5}"#,
            b"not a token",
            b"\xff\xfe",
            b"<html>a.b.c d</html>",
        ] {
            assert_eq!(parse_token_body(bad), None, "{bad:?}");
        }
    }
}
