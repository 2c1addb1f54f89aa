//! Owns the JSON the mock writes: timestamps, error bodies and the events' shapes. Everything here is
//! pure; callers serialize once and share the bytes among recipients.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Error codes the mock sends (the subset of the protocol's table it uses).
pub mod code {
    pub const INTERNAL: i32 = -1;
    pub const ACCESS_KEY: i32 = 2;
    pub const INPUT: i32 = 4;
    pub const AUTH: i32 = 5;
    pub const RATE_LIMIT: i32 = 9;
    pub const DOES_NOT_EXIST: i32 = 16;
    pub const NOT_ALLOWED: i32 = 17;
    pub const PAYLOAD_TOO_BIG: i32 = 22;
    pub const TOKEN_EXPIRED: i32 = 40;
    pub const TOKEN_SIGNATURE_INVALID: i32 = 43;
    pub const CONNECTION_ID_NOT_FOUND: i32 = 46;
    /// Answered when the fault API refuses upgrades with 503 (no Stream code exists for it).
    pub const UNAVAILABLE: i32 = -1;

    /// The HTTP status that goes with a code (PROTOCOL.md §9.2).
    pub fn http_status(code: i32) -> u16 {
        match code {
            2 | 3 | 5 | 40..=43 => 401,
            4 | 6 | 18..=21 | 46 | 73 => 400,
            9 => 429,
            16 => 404,
            17 | 60 | 70 | 99 => 403,
            22 => 413,
            23 => 408,
            24 => 431,
            _ => 500,
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    (now_nanos() / 1_000_000_000) as i64
}

/// RFC 3339 with nanoseconds and `Z`, the backend's timestamp format.
pub fn rfc3339(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The current time in RFC 3339.
pub fn now() -> String {
    rfc3339(now_nanos())
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut scaled = String::from(&digits[..digits.len().min(9)]);
        while scaled.len() < 9 {
            scaled.push('0');
        }
        frac = scaled.parse().ok()?;
    }
    let offset_secs = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = tz.get(4..6)?.parse().ok()?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

/// `"<n>ms"`, the `duration` field of every response.
pub fn duration_since(start_nanos: i128) -> String {
    let us = (now_nanos() - start_nanos).max(0) / 1000;
    format!("{}.{:02}ms", us / 1000, us % 1000 / 10)
}

/// The full error body `{"code","message","StatusCode","duration","more_info","details"}`, or only
/// `code` and `message` when the `incomplete_error_body` violation is on.
pub fn error_body(code: i32, operation: &str, detail: &str, incomplete: bool) -> Value {
    let message = format!("{operation} failed with error: \"{detail}\"");
    if incomplete {
        return json!({"code": code, "message": message});
    }
    json!({
        "code": code,
        "message": message,
        "StatusCode": code::http_status(code),
        "duration": "0.00ms",
        "more_info": "https://getstream.io/chat/docs/api_errors_response",
        "details": [],
    })
}

/// The WebSocket error frame: `{"type":"connection.error","created_at","connection_id":"","error":{…}}`.
pub fn connection_error(code: i32, detail: &str, incomplete: bool) -> String {
    json!({
        "type": "connection.error",
        "created_at": now(),
        "connection_id": "",
        "error": error_body(code, "Connect", detail, incomplete),
    })
    .to_string()
}

/// A `health.check` event; `me` only on the first one of a connection.
pub fn health_check(connection_id: &str, me: Option<Value>) -> String {
    let mut ev = json!({
        "type": "health.check",
        "connection_id": connection_id,
        "cid": "*",
        "created_at": now(),
    });
    if let (Some(me), Some(obj)) = (me, ev.as_object_mut()) {
        obj.insert("me".to_owned(), me);
    }
    ev.to_string()
}

/// The cid fields every channel event carries.
pub fn channel_event(kind: &str, cid: &str, channel_type: &str, channel_id: &str, user: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), kind.into());
    m.insert("cid".into(), cid.into());
    m.insert("channel_id".into(), channel_id.into());
    m.insert("channel_type".into(), channel_type.into());
    m.insert("user".into(), user);
    m.insert("created_at".into(), now().into());
    m
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
        assert_eq!(
            parse_rfc3339("2021-08-11T12:42:44+02:00"),
            Some(1_628_678_564_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2021-13-11T10:42:44Z"), None);
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
