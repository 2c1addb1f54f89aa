//! The seam to `chatstorm-protocol`: the token, user-id and client-frame rules, the error table and
//! the WebSocket limits all come from the protocol crate; this module adapts them to the mock's
//! policies (dev tokens, the `accept_alg_none` violation) and its error type.

use chatstorm_protocol::limits;
use chatstorm_protocol::token::{self, TokenError};

pub use chatstorm_protocol::event::{ClientFrame, parse_client_frame};
pub use chatstorm_protocol::token::Claims;

/// A token rejected: the error code and the detail for the message.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenReject {
    pub code: i32,
    pub detail: String,
    /// The token was expired (code 40), which the `wrong_expired_code` violation reports as 43.
    pub expired: bool,
}

impl From<TokenError> for TokenReject {
    fn from(e: TokenError) -> Self {
        TokenReject {
            code: e.code().0,
            detail: e.detail(),
            expired: matches!(e, TokenError::Expired | TokenError::Revoked),
        }
    }
}

/// How a token's signature is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Accept `.devtoken` signatures (auth checks disabled).
    pub allow_dev_tokens: bool,
    /// The `accept_alg_none` violation: read `alg: none` tokens unverified.
    pub accept_alg_none: bool,
}

/// Verifies a token at `now` (Unix seconds) with the protocol crate's rules: 40 expired, 41 `nbf`,
/// 42 `iat` in the future, 43 bad signature, 5 for anything malformed, a foreign `alg` or a dev
/// token when those are off.
pub fn verify_token(tok: &str, secret: &str, now: i64, policy: TokenPolicy) -> Result<Claims, TokenReject> {
    if token::is_dev_token(tok) && policy.allow_dev_tokens {
        let claims = token::decode_unverified(tok)?;
        token::check_times(&claims, now)?;
        return Ok(claims);
    }
    match token::verify(tok, secret.as_bytes(), now) {
        Err(TokenError::AlgorithmNotAllowed(alg)) if policy.accept_alg_none && alg.eq_ignore_ascii_case("none") => {
            Ok(token::decode_unverified(tok)?)
        }
        other => Ok(other?),
    }
}

/// The documented user-id rule; the message names the field and the allowed set.
pub fn validate_user_id(field: &str, id: &str) -> Result<(), String> {
    limits::validate_user_id(id).map_err(|e| format!("{field}: {e}"))
}

/// The 5 KB rule's message (size and limit).
pub fn user_size_error(size: usize, limit: usize) -> String {
    limits::user_size_error(size, limit)
}

/// Server-side WebSocket limits (finite write backlog, 64 KiB messages); the buffer sizes are the
/// mock's own (`ws.rs`).
pub use limits::{MAX_WRITE_BUFFER, SERVER_MAX_MESSAGE};
