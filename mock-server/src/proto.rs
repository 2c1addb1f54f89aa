//! The seam to `chatstorm-protocol`: every wire rule the mock takes from the protocol crate goes
//! through here, so the rest of the server speaks in its own small types.
//!
//! TEMPORARY: until the protocol crate lands on `main`, the token, user-id and client-frame rules are
//! implemented locally below; the merge replaces these bodies with calls into the crate.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Claims the mock reads from a token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    pub user_id: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub server: bool,
}

/// A token rejected: the error code and the detail for the message.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenReject {
    pub code: i32,
    pub detail: String,
    pub expired: bool,
}

fn reject(code: i32, detail: impl Into<String>) -> TokenReject {
    TokenReject {
        code,
        detail: detail.into(),
        expired: code == 40,
    }
}

fn b64(seg: &str) -> Result<Vec<u8>, TokenReject> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg.trim_end_matches('='))
        .map_err(|_| reject(5, "JWTAuth error: token is malformed: could not base64 decode segment"))
}

fn claims_of(payload: &[u8]) -> Result<Claims, TokenReject> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|_| reject(5, "JWTAuth error: token is malformed: could not JSON decode claims"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| reject(5, "JWTAuth error: token claims are not an object"))?;
    let user_id = match obj.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(reject(5, "JWTAuth error: claim user_id must be a string")),
    };
    let int = |k: &str| -> Result<Option<i64>, TokenReject> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| reject(5, format!("JWTAuth error: claim {k} must be an integer"))),
            Some(_) => Err(reject(5, format!("JWTAuth error: claim {k} must be an integer"))),
        }
    };
    let server = matches!(obj.get("server"), Some(Value::Bool(true)));
    let (exp, iat, nbf) = (int("exp")?, int("iat")?, int("nbf")?);
    let _ = nbf;
    Ok(Claims {
        user_id,
        exp,
        iat,
        server,
    })
}

/// How a token's signature is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    pub allow_dev_tokens: bool,
    pub accept_alg_none: bool,
}

/// Verifies an HS256 token at `now` (Unix seconds). Codes: 40 expired, 41 nbf, 42 iat in the future,
/// 43 bad signature, 5 anything malformed, a foreign `alg`, a dev token when those are off.
pub fn verify_token(token: &str, secret: &str, now: i64, policy: TokenPolicy) -> Result<Claims, TokenReject> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(reject(5, "JWTAuth error: token contains an invalid number of segments"));
    }
    if parts[2] == "devtoken" {
        if !policy.allow_dev_tokens {
            return Err(reject(5, "Token signature is invalid"));
        }
        let payload = base64::engine::general_purpose::STANDARD
            .decode(parts[1])
            .or_else(|_| b64(parts[1]))
            .map_err(|_| reject(5, "JWTAuth error: dev token payload is not base64"))?;
        return claims_of(&payload);
    }
    let header: Value = serde_json::from_slice(&b64(parts[0])?)
        .map_err(|_| reject(5, "JWTAuth error: token is malformed: could not JSON decode header"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg.eq_ignore_ascii_case("none") && policy.accept_alg_none {
        return claims_of(&b64(parts[1])?);
    }
    if alg != "HS256" {
        return Err(reject(
            5,
            format!("JWTAuth error: signing method {alg} is invalid, only HS256 is accepted"),
        ));
    }
    let payload = b64(parts[1])?;
    let sig = b64(parts[2])?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| reject(-1, "bad secret"))?;
    mac.update(parts[0].as_bytes());
    mac.update(b".");
    mac.update(parts[1].as_bytes());
    if mac.verify_slice(&sig).is_err() {
        return Err(reject(
            43,
            "JWTAuth error: signature is not valid. Make sure the token is created using the secret for the API key",
        ));
    }
    let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    let claims = claims_of(&payload)?;
    if let Some(nbf) = v.get("nbf").and_then(Value::as_i64) {
        if now < nbf {
            return Err(reject(41, "JWTAuth error: token is not valid yet (nbf)"));
        }
    }
    if let Some(iat) = claims.iat {
        if iat > now {
            return Err(reject(42, "JWTAuth error: token used before issued at (iat)"));
        }
    }
    if let Some(exp) = claims.exp {
        if now >= exp {
            return Err(reject(40, "JWTAuth error: token is expired (exp)"));
        }
    }
    Ok(claims)
}

/// Signs HS256 claims (tests and examples use it).
pub fn sign_token(claims: &Value, secret: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = e.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = e.encode(claims.to_string());
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", e.encode(mac.finalize().into_bytes()))
}

/// The documented user-id rule: `a-z 0-9 @ _ -`, non-empty, at most 255 characters.
pub fn validate_user_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 255
        || !id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'@' | b'_' | b'-'))
    {
        return Err(format!(
            "{field} \"{}\" is invalid: user ids must be 1 to 255 characters from a-z, 0-9, @, _ and -",
            id.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// The 5 KB rule's message.
pub fn user_size_error(size: usize, limit: usize) -> String {
    format!("user object is {size} bytes, larger than the {limit} byte (5 KB) limit")
}

/// What a client sent on its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    HealthCheck,
    Other,
    Malformed,
}

/// Classifies a client text frame: a health check as an object or an array of objects, with the
/// `type` key in any case (Unity sends `Type`).
pub fn parse_client_frame(text: &str) -> ClientFrame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return ClientFrame::Malformed;
    };
    let is_hc = |o: &Value| {
        o.as_object().is_some_and(|m| {
            m.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("type") && v.as_str() == Some("health.check"))
        })
    };
    match &v {
        Value::Array(items) if items.iter().any(is_hc) => ClientFrame::HealthCheck,
        Value::Object(_) if is_hc(&v) => ClientFrame::HealthCheck,
        Value::Object(_) | Value::Array(_) => ClientFrame::Other,
        _ => ClientFrame::Malformed,
    }
}

/// Server-side WebSocket buffer sizes (small read buffer, no write batching, finite backlog).
pub const SERVER_READ_BUFFER: usize = 4 * 1024;
pub const WRITE_BUFFER: usize = 0;
pub const MAX_WRITE_BUFFER: usize = 256 * 1024;
pub const SERVER_MAX_MESSAGE: usize = 64 * 1024;
