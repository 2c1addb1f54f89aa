//! The error body every Stream endpoint returns (HTTP and WebSocket alike) and the table of error
//! codes with their HTTP status and whether the JS SDK retries them (PROTOCOL.md §2.5–2.7, §9).
//!
//! Adding a code: a `pub const` on [`ErrorCode`], a row in [`CODE_TABLE`], and a mock handler
//! that can send it (with a test over a real socket).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Stream error code (the `code` field of an error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub i32);

/// One row of the code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    /// The numeric code.
    pub code: i32,
    /// The HTTP status that accompanies it (also `StatusCode` in the body).
    pub http_status: u16,
    /// Whether the JS SDK's long-poll and delivery paths retry it (`isErrorRetryable`).
    pub retryable: bool,
    /// The name used by the JS SDK (`APIErrorCodes`) or the docs' error table.
    pub name: &'static str,
}

impl ErrorCode {
    /// Internal server error.
    pub const INTERNAL: Self = Self(-1);
    /// Unknown API key.
    pub const ACCESS_KEY: Self = Self(2);
    /// Authentication failed (JS marks it retryable).
    pub const AUTHENTICATION_FAILED: Self = Self(3);
    /// Bad input: invalid user id, oversized user, malformed JSON, missing field.
    pub const INPUT: Self = Self(4);
    /// Generic authentication failure: malformed token, `alg` not HS256, wrong claim types.
    pub const AUTH: Self = Self(5);
    /// Duplicate user name.
    pub const DUPLICATE_USERNAME: Self = Self(6);
    /// Rate limited (HTTP 429).
    pub const RATE_LIMIT: Self = Self(9);
    /// The resource does not exist.
    pub const DOES_NOT_EXIST: Self = Self(16);
    /// The action is not allowed.
    pub const NOT_ALLOWED: Self = Self(17);
    /// The event type is not supported on this channel.
    pub const EVENT_NOT_SUPPORTED: Self = Self(18);
    /// The channel feature is not enabled.
    pub const CHANNEL_FEATURE_NOT_SUPPORTED: Self = Self(19);
    /// The message is too long.
    pub const MESSAGE_TOO_LONG: Self = Self(20);
    /// Replies to replies are not allowed.
    pub const MULTIPLE_NESTING_LEVEL: Self = Self(21);
    /// The payload is too big.
    pub const PAYLOAD_TOO_BIG: Self = Self(22);
    /// The request timed out.
    pub const REQUEST_TIMEOUT: Self = Self(23);
    /// The request headers are too large.
    pub const MAX_HEADER_SIZE_EXCEEDED: Self = Self(24);
    /// The token has expired (or was revoked). The only code that makes JS refresh a token.
    pub const TOKEN_EXPIRED: Self = Self(40);
    /// The token's `nbf` is in the future.
    pub const TOKEN_NOT_VALID_YET: Self = Self(41);
    /// The token's `iat` is in the future.
    pub const TOKEN_USED_BEFORE_ISSUED_AT: Self = Self(42);
    /// The token's signature does not verify.
    pub const TOKEN_SIGNATURE_INVALID: Self = Self(43);
    /// The long-poll `connection_id` is unknown or closed.
    pub const CONNECTION_ID_NOT_FOUND: Self = Self(46);
    /// Slow mode.
    pub const COOLDOWN: Self = Self(60);
    /// Wrong region.
    pub const WRONG_REGION: Self = Self(69);
    /// No access to the queried channels.
    pub const QUERY_CHANNEL_PERMISSIONS: Self = Self(70);
    /// Too many concurrent connections.
    pub const TOO_MANY_CONNECTIONS: Self = Self(71);
    /// The app is suspended.
    pub const APP_SUSPENDED: Self = Self(99);

    /// The table row for this code, if it is a known code.
    pub fn info(self) -> Option<&'static CodeInfo> {
        CODE_TABLE.iter().find(|c| c.code == self.0)
    }

    /// The HTTP status for this code (500 for unknown codes).
    pub fn http_status(self) -> u16 {
        self.info().map_or(500, |i| i.http_status)
    }

    /// Whether the JS SDK treats this code as retryable.
    pub fn retryable(self) -> bool {
        self.info().is_some_and(|i| i.retryable)
    }

    /// The code's name, or `"Unknown"`.
    pub fn name(self) -> &'static str {
        self.info().map_or("Unknown", |i| i.name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

const fn row(code: i32, http_status: u16, retryable: bool, name: &'static str) -> CodeInfo {
    CodeInfo {
        code,
        http_status,
        retryable,
        name,
    }
}

/// Every code the SDKs or the docs know, with its HTTP status and retry flag (PROTOCOL.md §2.7, §9.2).
pub static CODE_TABLE: &[CodeInfo] = &[
    row(-1, 500, true, "InternalSystemError"),
    row(2, 401, false, "AccessKeyError"),
    row(3, 401, true, "AuthenticationFailedError"),
    row(4, 400, false, "InputError"),
    row(5, 401, false, "AuthenticationError"),
    row(6, 400, false, "DuplicateUsernameError"),
    row(9, 429, true, "RateLimitError"),
    row(16, 404, false, "DoesNotExistError"),
    row(17, 403, false, "NotAllowedError"),
    row(18, 400, false, "EventNotSupportedError"),
    row(19, 400, false, "ChannelFeatureNotSupportedError"),
    row(20, 400, false, "MessageTooLongError"),
    row(21, 400, false, "MultipleNestingLevelError"),
    row(22, 413, false, "PayloadTooBigError"),
    row(23, 408, true, "RequestTimeoutError"),
    row(24, 431, false, "MaxHeaderSizeExceededError"),
    row(40, 401, false, "AuthErrorTokenExpired"),
    row(41, 401, false, "AuthErrorTokenNotValidYet"),
    row(42, 401, false, "AuthErrorTokenUsedBeforeIssuedAt"),
    row(43, 401, false, "AuthErrorTokenSignatureInvalid"),
    row(44, 400, false, "CustomCommandEndpointMissingError"),
    row(45, 400, true, "CustomCommandEndpointCallError"),
    row(46, 400, false, "ConnectionIDNotFoundError"),
    row(60, 403, true, "CoolDownError"),
    row(69, 400, false, "ErrWrongRegion"),
    row(70, 403, false, "ErrQueryChannelPermissions"),
    row(71, 429, true, "ErrTooManyConnections"),
    row(73, 400, false, "MessageModerationFailedError"),
    row(99, 403, false, "AppSuspendedError"),
];

/// Where the docs send people for error details.
pub const MORE_INFO: &str = "https://getstream.io/chat/docs/api_errors_response";

/// The error body, the same over HTTP (the whole response body) and inside WebSocket error frames.
///
/// # Format
/// ```text
/// {"code":40,"message":"SendEvent failed with error: \"JWTAuth error: token is expired (exp)\"",
///  "StatusCode":401,"duration":"0.01ms","more_info":"https://getstream.io/chat/docs/api_errors_response",
///  "details":[]}
/// ```
/// `details` is always an array (Unity's SDK models it as a list of strings, so the mock sends `[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The Stream error code.
    pub code: i32,
    /// `<Operation> failed with error: "<detail>"`.
    pub message: String,
    /// The HTTP status.
    #[serde(rename = "StatusCode")]
    pub status_code: u16,
    /// Server-side processing time.
    pub duration: String,
    /// A link to the docs.
    pub more_info: String,
    /// Extra details; `[]` from the mock.
    pub details: Vec<Value>,
    /// Per-field messages for input errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_fields: Option<Map<String, Value>>,
}

impl ErrorBody {
    /// An error for `operation` (e.g. `"Connect"`, `"SendEvent"`) with the status from the table.
    pub fn new(code: ErrorCode, operation: &str, detail: &str) -> Self {
        Self {
            code: code.0,
            message: format!("{operation} failed with error: \"{detail}\""),
            status_code: code.http_status(),
            duration: "0.00ms".to_owned(),
            more_info: MORE_INFO.to_owned(),
            details: Vec::new(),
            exception_fields: None,
        }
    }

    /// The code as an [`ErrorCode`].
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode(self.code)
    }

    /// Serializes the body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The names of the required fields missing from a raw error object (conformance rule ERROR).
    pub fn missing_fields(raw: &Value) -> Vec<&'static str> {
        const REQUIRED: [&str; 6] = ["code", "message", "StatusCode", "duration", "more_info", "details"];
        let obj = raw.as_object();
        REQUIRED
            .into_iter()
            .filter(|k| obj.is_none_or(|o| !o.contains_key(*k)))
            .collect()
    }
}

/// The `connection.error` event a server sends as the first (and last) frame of a refused connect,
/// followed by a close with code 1000.
///
/// # Format
/// ```text
/// {"type":"connection.error","created_at":"2026-11-30T10:00:00.000000000Z","connection_id":"",
///  "error":{"code":40,"message":"...","StatusCode":401,"duration":"","more_info":"","details":[]}}
/// ```
/// Older backends sent only `{"error":{...}}`; [`crate::event::ServerEvent::parse`] accepts both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionErrorEvent {
    /// When the error was raised.
    #[serde(default)]
    pub created_at: String,
    /// Always empty: no connection was established.
    #[serde(default)]
    pub connection_id: String,
    /// The error body.
    pub error: ErrorBody,
}

impl ConnectionErrorEvent {
    /// A connection error with the given body.
    pub fn new(error: ErrorBody, created_at: String) -> Self {
        Self {
            created_at,
            connection_id: String::new(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in CODE_TABLE.iter().enumerate() {
            assert!(
                CODE_TABLE[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate {}",
                a.code
            );
        }
        assert_eq!(ErrorCode::TOKEN_EXPIRED.http_status(), 401);
        assert_eq!(ErrorCode::RATE_LIMIT.http_status(), 429);
        assert!(ErrorCode::RATE_LIMIT.retryable());
        assert!(!ErrorCode::TOKEN_EXPIRED.retryable());
        assert_eq!(ErrorCode(12345).http_status(), 500);
    }

    #[test]
    fn body_round_trip_and_fields() {
        let b = ErrorBody::new(
            ErrorCode::TOKEN_EXPIRED,
            "SendEvent",
            "JWTAuth error: token is expired (exp)",
        );
        assert_eq!(
            b.message,
            "SendEvent failed with error: \"JWTAuth error: token is expired (exp)\""
        );
        let json = b.to_json();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["StatusCode"], 401);
        assert!(ErrorBody::missing_fields(&v).is_empty());
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), b);
        let partial = serde_json::json!({"code": 4, "message": "x"});
        assert_eq!(
            ErrorBody::missing_fields(&partial),
            ["StatusCode", "duration", "more_info", "details"]
        );
    }
}
