//! Owns the JSON the mock writes: timestamps, error bodies and the events' shapes. Everything here is
//! pure; callers serialize once and share the bytes among recipients.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatstorm_protocol::error::{ConnectionErrorEvent, ErrorBody};
use chatstorm_protocol::{ErrorCode, ServerEvent};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Error codes the mock sends, from the protocol crate's table.
pub mod code {
    use chatstorm_protocol::ErrorCode;

    pub const INTERNAL: i32 = ErrorCode::INTERNAL.0;
    pub const ACCESS_KEY: i32 = ErrorCode::ACCESS_KEY.0;
    pub const INPUT: i32 = ErrorCode::INPUT.0;
    pub const AUTH: i32 = ErrorCode::AUTH.0;
    pub const RATE_LIMIT: i32 = ErrorCode::RATE_LIMIT.0;
    pub const DOES_NOT_EXIST: i32 = ErrorCode::DOES_NOT_EXIST.0;
    pub const NOT_ALLOWED: i32 = ErrorCode::NOT_ALLOWED.0;
    pub const EVENT_NOT_SUPPORTED: i32 = ErrorCode::EVENT_NOT_SUPPORTED.0;
    pub const MESSAGE_TOO_LONG: i32 = ErrorCode::MESSAGE_TOO_LONG.0;
    pub const PAYLOAD_TOO_BIG: i32 = ErrorCode::PAYLOAD_TOO_BIG.0;
    pub const TOKEN_EXPIRED: i32 = ErrorCode::TOKEN_EXPIRED.0;
    pub const TOKEN_SIGNATURE_INVALID: i32 = ErrorCode::TOKEN_SIGNATURE_INVALID.0;
    pub const CONNECTION_ID_NOT_FOUND: i32 = ErrorCode::CONNECTION_ID_NOT_FOUND.0;
    /// Answered when the fault API refuses upgrades with 503 (no Stream code exists for it).
    pub const UNAVAILABLE: i32 = ErrorCode::INTERNAL.0;

    /// The HTTP status that goes with a code (PROTOCOL.md §9.2).
    pub fn http_status(code: i32) -> u16 {
        ErrorCode(code).http_status()
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `now + d` for timers, saturating at about a year: configured or client-supplied durations
/// (a token's `exp`, `--health-interval`) must never overflow an `Instant`.
pub fn deadline(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d.min(Duration::from_secs(365 * 86_400))).unwrap_or(now)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    (now_nanos() / 1_000_000_000) as i64
}

/// RFC 3339 with nanoseconds and `Z`, the backend's timestamp format.
pub fn rfc3339(nanos: i128) -> String {
    let n = u64::try_from(nanos.max(0)).unwrap_or(u64::MAX);
    chatstorm_protocol::time::format_rfc3339(UNIX_EPOCH + Duration::from_nanos(n))
}

/// The current time in RFC 3339.
pub fn now() -> String {
    rfc3339(now_nanos())
}

/// Parses an RFC 3339 UTC time into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let t = chatstorm_protocol::time::parse_rfc3339(s)?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i128)
}

/// `"<n>ms"`, the `duration` field of every response.
pub fn duration_since(start_nanos: i128) -> String {
    let us = (now_nanos() - start_nanos).max(0) / 1000;
    format!("{}.{:02}ms", us / 1000, us % 1000 / 10)
}

/// The full error body `{"code","message","StatusCode","duration","more_info","details"}`, or only
/// `code` and `message` when the `incomplete_error_body` violation is on.
pub fn error_body(code: i32, operation: &str, detail: &str, incomplete: bool) -> Value {
    let body = ErrorBody::new(ErrorCode(code), operation, detail);
    if incomplete {
        return json!({"code": body.code, "message": body.message});
    }
    serde_json::to_value(&body).unwrap_or(Value::Null)
}

/// The WebSocket error frame: `{"type":"connection.error","created_at","connection_id":"","error":{…}}`.
pub fn connection_error(code: i32, detail: &str, incomplete: bool) -> String {
    if incomplete {
        let error = error_body(code, "Connect", detail, true);
        return json!({"type": "connection.error", "created_at": now(), "connection_id": "", "error": error})
            .to_string();
    }
    let ev = ConnectionErrorEvent::new(ErrorBody::new(ErrorCode(code), "Connect", detail), now());
    ServerEvent::ConnectionError(ev).to_json()
}

/// A `health.check` event; `me` only on the first one of a connection.
pub fn health_check(connection_id: &str, me: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct HealthCheck<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        connection_id: &'a str,
        cid: &'static str,
        created_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        me: Option<&'a RawValue>,
    }
    to_string(&HealthCheck {
        kind: "health.check",
        connection_id,
        cid: "*",
        created_at: now(),
        me,
    })
}

/// Serializes a view the mock wrote itself (no map with non-string keys, no failing `Serialize`):
/// an error cannot happen, and would give `null` rather than a panic.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// The fields every channel event starts with, then `extra`'s (a struct or map, flattened).
#[derive(Serialize)]
pub struct ChannelEvent<'a, U: Serialize, X: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub cid: &'a str,
    pub channel_id: &'a str,
    pub channel_type: &'a str,
    pub user: U,
    pub created_at: &'a str,
    #[serde(flatten)]
    pub extra: X,
}

/// `user.watching.start` / `user.watching.stop`'s own field.
#[derive(Serialize)]
pub struct WatcherCount {
    pub watcher_count: usize,
}

/// `message.read`'s own fields.
#[derive(Serialize)]
pub struct ReadFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadRef<'a>>,
}

#[derive(Serialize)]
pub struct ThreadRef<'a> {
    pub parent_message_id: &'a str,
}

/// `user.presence.changed`.
#[derive(Serialize)]
pub struct PresenceChanged<'a, U: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user: U,
    pub created_at: &'a str,
}

/// A JSON object (a response body, `{…}`) with `"duration"` added as its first field.
pub fn with_duration(body: &str, start_nanos: i128) -> String {
    let d = duration_since(start_nanos);
    let rest = body.strip_prefix('{').unwrap_or(body).trim_start();
    let mut out = String::with_capacity(body.len() + 32);
    out.push_str("{\"duration\":\"");
    out.push_str(&d);
    out.push('"');
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

/// The channel-type config the SDKs gate typing and read on (PROTOCOL.md, JS SDK section).
pub fn channel_config(channel_type: &str, created_at: &str) -> Value {
    json!({
        "name": channel_type,
        "typing_events": true,
        "read_events": true,
        "delivery_events": true,
        "connect_events": true,
        "custom_events": true,
        "search": true,
        "reactions": true,
        "replies": true,
        "quotes": true,
        "mutes": true,
        "uploads": true,
        "url_enrichment": true,
        "push_notifications": true,
        "reminders": false,
        "mark_messages_pending": false,
        "message_retention": "infinite",
        "max_message_length": 5000,
        "automod": "disabled",
        "automod_behavior": "flag",
        "commands": [],
        "created_at": created_at,
        "updated_at": created_at,
    })
}

/// What every user may do on a mock channel.
pub const OWN_CAPABILITIES: &[&str] = &[
    "connect-events",
    "read-events",
    "delivery-events",
    "send-typing-events",
    "send-message",
    "send-reply",
    "send-reaction",
    "typing-events",
    "upload-file",
    "search-messages",
    "quote-message",
    "pin-message",
    "mute-channel",
    "update-own-message",
    "delete-own-message",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_and_parses_back() {
        let n: i128 = 1_628_678_564_222_203_145;
        let s = rfc3339(n);
        assert_eq!(s, "2021-08-11T10:42:44.222203145Z");
        assert_eq!(parse_rfc3339(&s), Some(n));
        assert_eq!(
            parse_rfc3339("2021-08-11T10:42:44.222Z"),
            Some(1_628_678_564_222_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn connection_error_frames_are_typed() {
        let v: Value = serde_json::from_str(&connection_error(40, "x", false)).expect("json");
        assert_eq!(v["type"], "connection.error");
        assert_eq!(v["connection_id"], "");
        assert_eq!(v["error"]["StatusCode"], 401);
        assert_eq!(v["error"]["details"], json!([]));
    }

    #[test]
    fn error_body_status_matches_code() {
        let b = error_body(40, "SendEvent", "JWTAuth error: token is expired (exp)", false);
        assert_eq!(b["StatusCode"], 401);
        assert_eq!(
            b["message"],
            "SendEvent failed with error: \"JWTAuth error: token is expired (exp)\""
        );
        assert_eq!(b["details"], json!([]));
        assert!(error_body(4, "x", "y", true).get("StatusCode").is_none());
    }
}
