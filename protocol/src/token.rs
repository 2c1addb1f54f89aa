//! JWT user and server tokens: HS256 signing and strict verification, and developer tokens
//! (PROTOCOL.md §2.1–2.2). Only HS256 is accepted; `alg: none` and every other algorithm are
//! refused, and claim types are strict as on the real (Go) backend.

use crate::error::ErrorCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The fixed header of every token we sign: `{"alg":"HS256","typ":"JWT"}`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// The literal signature of developer tokens.
const DEV_SIGNATURE: &str = "devtoken";

/// The claims a Stream token carries.
///
/// # Format
/// ```text
/// {"user_id":"user-1","exp":1764500000,"iat":1764496400}     user token
/// {"server":true}                                            server token
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The user the token is for (absent on server tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// `true` on server-side tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<bool>,
}

impl Claims {
    /// A user token's claims, optionally expiring.
    pub fn user(user_id: impl Into<String>, exp: Option<i64>) -> Self {
        Self {
            user_id: Some(user_id.into()),
            exp,
            ..Self::default()
        }
    }

    /// A server token's claims.
    pub fn server() -> Self {
        Self {
            server: Some(true),
            ..Self::default()
        }
    }
}

/// Why a token was refused, each mapped to the code the backend sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON. Code 5.
    #[error("JWTAuth error: {0}")]
    Malformed(String),
    /// `alg` other than HS256 (including `none`). Code 5.
    #[error("JWTAuth error: signing method {0} is invalid")]
    AlgorithmNotAllowed(String),
    /// A claim of the wrong JSON type (e.g. a numeric `user_id`). Code 5.
    #[error("JWTAuth error: {0}")]
    ClaimType(String),
    /// The signature does not verify with the app secret. Code 43.
    #[error("JWTAuth error: signature is not valid. Make sure the token is created using the secret for this API key")]
    BadSignature,
    /// `exp` has passed. Code 40.
    #[error("JWTAuth error: token is expired (exp)")]
    Expired,
    /// `nbf` is in the future. Code 41.
    #[error("JWTAuth error: token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future. Code 42.
    #[error("JWTAuth error: token used before issued (iat)")]
    IssuedInFuture,
    /// A developer token while auth checks are on. Code 5.
    #[error("Token signature is invalid")]
    DevTokenRejected,
    /// Issued before a revocation cut-off. Code 40.
    #[error("This token has been revoked, please generate a new token")]
    Revoked,
    /// The header's `crit` lists extensions this verifier does not implement (it implements
    /// none), which RFC 7515 §4.1.11 says must make the token invalid. Code 43: the token cannot
    /// be verified.
    #[error("JWTAuth error: the token header marks extensions this server does not support as critical (crit)")]
    UnsupportedCritical,
}

impl TokenError {
    /// The Stream error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::AlgorithmNotAllowed(_) | Self::ClaimType(_) | Self::DevTokenRejected => {
                ErrorCode::AUTH
            }
            Self::BadSignature | Self::UnsupportedCritical => ErrorCode::TOKEN_SIGNATURE_INVALID,
            Self::Expired | Self::Revoked => ErrorCode::TOKEN_EXPIRED,
            Self::NotYetValid => ErrorCode::TOKEN_NOT_VALID_YET,
            Self::IssuedInFuture => ErrorCode::TOKEN_USED_BEFORE_ISSUED_AT,
        }
    }

    /// The human detail, as used inside `"<Op> failed with error: \"<detail>\""`.
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

/// Signs claims with HS256.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    sign_bytes(&serde_json::to_vec(claims).unwrap_or_default(), secret)
}

/// Signs any JSON payload with HS256, e.g. claims of the wrong type for conformance cases.
pub fn sign_json(payload: &serde_json::Value, secret: &[u8]) -> String {
    sign_bytes(&serde_json::to_vec(payload).unwrap_or_default(), secret)
}

fn sign_bytes(payload: &[u8], secret: &[u8]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signing_input = format!("{HEADER_B64}.{payload}");
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies a token's algorithm, signature, claim types and times against `now_unix`.
///
/// # Errors
/// The first [`TokenError`] that applies, in the order: shape, developer token, algorithm,
/// critical header extensions, signature, claim types, `exp`, `nbf`, `iat`.
pub fn verify(token: &str, secret: &[u8], now_unix: i64) -> Result<Claims, TokenError> {
    let (header, payload, signature) = split(token)?;
    if signature == DEV_SIGNATURE {
        return Err(TokenError::DevTokenRejected);
    }
    let header_json = decode_segment(header, "header")?;
    match header_json.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(Value::String(alg)) => return Err(TokenError::AlgorithmNotAllowed(alg.clone())),
        _ => return Err(TokenError::Malformed("token header has no alg".to_owned())),
    }
    if header_json.get("crit").is_some() {
        return Err(TokenError::UnsupportedCritical);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("signature is not base64url".to_owned()))?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
    mac.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let claims = claims_from(&decode_segment(payload, "payload")?)?;
    check_times(&claims, now_unix)?;
    Ok(claims)
}

/// Checks `exp`, `nbf` and `iat` of already verified claims.
///
/// # Errors
/// [`TokenError::Expired`], [`TokenError::NotYetValid`] or [`TokenError::IssuedInFuture`].
pub fn check_times(claims: &Claims, now_unix: i64) -> Result<(), TokenError> {
    if claims.exp.is_some_and(|exp| now_unix >= exp) {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now_unix) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat.is_some_and(|iat| iat > now_unix) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

/// Reads a token's claims without checking its signature or times (a client inspecting its own
/// token; the mock's dev-token mode).
///
/// # Errors
/// [`TokenError::Malformed`] or [`TokenError::ClaimType`].
pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
    let (_, payload, signature) = split(token)?;
    let json = if signature == DEV_SIGNATURE {
        let bytes = STANDARD
            .decode(payload)
            .map_err(|_| TokenError::Malformed("dev token payload is not base64".to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("dev token payload is not JSON".to_owned()))?
    } else {
        decode_segment(payload, "payload")?
    };
    claims_from(&json)
}

/// A developer token: the fixed header, standard base64 of `{"user_id":...}`, and the literal
/// signature `devtoken` (accepted only when the server disables auth checks).
pub fn dev_token(user_id: &str) -> String {
    let payload = STANDARD.encode(serde_json::json!({ "user_id": user_id }).to_string());
    format!("{HEADER_B64}.{payload}.{DEV_SIGNATURE}")
}

/// Whether a token is a developer token.
pub fn is_dev_token(token: &str) -> bool {
    token.rsplit('.').next() == Some(DEV_SIGNATURE) && token.split('.').count() == 3
}

fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(TokenError::Malformed(
            "token contains an invalid number of segments".to_owned(),
        )),
    }
}

fn decode_segment(segment: &str, what: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed(format!("token {what} is not base64url")))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(format!("token {what} is not JSON")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(TokenError::Malformed(format!("token {what} is not a JSON object")))
    }
}

/// Strict claim types, with the backend's wording for mismatches.
fn claims_from(v: &Value) -> Result<Claims, TokenError> {
    let type_err = |field: &str, want: &str, got: &Value| {
        let got = match got {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        TokenError::ClaimType(format!(
            "json: cannot unmarshal {got} into Go struct field StreamJWTClaims.{field} of type {want}"
        ))
    };
    let int = |field: &str| -> Result<Option<i64>, TokenError> {
        match v.get(field) {
            None => Ok(None),
            Some(n @ Value::Number(_)) => n.as_i64().map(Some).ok_or_else(|| type_err(field, "int64", n)),
            Some(other) => Err(type_err(field, "int64", other)),
        }
    };
    let user_id = match v.get("user_id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(type_err("user_id", "string", other)),
    };
    let server = match v.get("server") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(type_err("server", "bool", other)),
    };
    Ok(Claims {
        user_id,
        exp: int("exp")?,
        iat: int("iat")?,
        nbf: int("nbf")?,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const NOW: i64 = 1_764_500_000;

    fn forge(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn sign_then_verify() {
        let c = Claims {
            user_id: Some("u-1".into()),
            exp: Some(NOW + 60),
            iat: Some(NOW),
            nbf: None,
            server: None,
        };
        let t = sign(&c, SECRET);
        assert!(t.starts_with(HEADER_B64));
        assert_eq!(verify(&t, SECRET, NOW), Ok(c));
        assert_eq!(
            verify(&sign(&Claims::server(), SECRET), SECRET, NOW).unwrap().server,
            Some(true)
        );
    }

    #[test]
    fn each_failure_has_its_code() {
        let cases: Vec<(String, ErrorCode)> = vec![
            (sign(&Claims::user("u", Some(NOW)), SECRET), ErrorCode::TOKEN_EXPIRED),
            (
                sign(
                    &Claims {
                        nbf: Some(NOW + 10),
                        ..Claims::user("u", None)
                    },
                    SECRET,
                ),
                ErrorCode::TOKEN_NOT_VALID_YET,
            ),
            (
                sign(
                    &Claims {
                        iat: Some(NOW + 10),
                        ..Claims::user("u", None)
                    },
                    SECRET,
                ),
                ErrorCode::TOKEN_USED_BEFORE_ISSUED_AT,
            ),
            (
                sign(&Claims::user("u", None), b"other"),
                ErrorCode::TOKEN_SIGNATURE_INVALID,
            ),
            ("abc".into(), ErrorCode::AUTH),
            ("a.b.c.d".into(), ErrorCode::AUTH),
            (
                forge(r#"{"alg":"HS512"}"#, r#"{"user_id":"u"}"#, SECRET),
                ErrorCode::AUTH,
            ),
            (forge(r#"{"alg":"HS256"}"#, r#"{"user_id":5}"#, SECRET), ErrorCode::AUTH),
            (
                forge(r#"{"alg":"HS256"}"#, r#"{"user_id":"u","exp":1.5}"#, SECRET),
                ErrorCode::AUTH,
            ),
            (
                forge(r#"{"alg":"HS256"}"#, r#"{"user_id":"u","exp":"1"}"#, SECRET),
                ErrorCode::AUTH,
            ),
            (dev_token("u"), ErrorCode::AUTH),
        ];
        for (token, code) in cases {
            assert_eq!(verify(&token, SECRET, NOW).map_err(|e| e.code()), Err(code), "{token}");
        }
    }

    #[test]
    fn alg_none_is_refused_even_without_signature() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"user_id":"u"}"#)
        );
        assert_eq!(
            verify(&none, SECRET, NOW),
            Err(TokenError::AlgorithmNotAllowed("none".into()))
        );
    }

    #[test]
    fn critical_header_extensions_are_refused_with_43() {
        // Correctly signed: only the `crit` entry makes it invalid (RFC 7515 §4.1.11).
        let t = forge(
            r#"{"alg":"HS256","crit":["exp2"],"exp2":1}"#,
            r#"{"user_id":"u"}"#,
            SECRET,
        );
        assert_eq!(verify(&t, SECRET, NOW), Err(TokenError::UnsupportedCritical));
        assert_eq!(
            TokenError::UnsupportedCritical.code(),
            ErrorCode::TOKEN_SIGNATURE_INVALID
        );
        let plain = forge(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"user_id":"u"}"#, SECRET);
        assert!(verify(&plain, SECRET, NOW).is_ok());
    }

    #[test]
    fn claim_type_message_matches_backend() {
        let t = forge(r#"{"alg":"HS256"}"#, r#"{"user_id":5}"#, SECRET);
        assert_eq!(
            verify(&t, SECRET, NOW).unwrap_err().detail(),
            "JWTAuth error: json: cannot unmarshal number into Go struct field StreamJWTClaims.user_id of type string"
        );
    }

    #[test]
    fn dev_tokens() {
        let t = dev_token("luke_skywalker");
        assert!(is_dev_token(&t));
        assert!(!is_dev_token(&sign(&Claims::user("u", None), SECRET)));
        assert_eq!(
            decode_unverified(&t).unwrap().user_id.as_deref(),
            Some("luke_skywalker")
        );
        // Standard base64 with padding, as JS and Swift build it.
        assert_eq!(
            t,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoibHVrZV9za3l3YWxrZXIifQ==.devtoken"
        );
    }

    #[test]
    fn garbage_never_panics() {
        for t in ["", ".", "..", "...", "a..b", "é.é.é", "eyJ.eyJ.%%%", "=.=.="] {
            assert!(verify(t, SECRET, NOW).is_err());
            let _ = decode_unverified(t);
        }
    }
}
