//! Events on the socket: everything a server sends (tagged by `type`), and the client's inbound
//! health check in its three shapes (PROTOCOL.md §1.4–1.5, §3, §7, §10).
//!
//! Adding an event: a variant on [`ServerEvent`] with its wire JSON in a `text` block, a row in
//! the `by_kind!` table and `kind`, a round-trip test below, the mock's sender, and a
//! conformance check that reads it.

use crate::error::{ConnectionErrorEvent, ErrorBody};
use crate::user::{OwnUser, User};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a frame could not be read as an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON at all.
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("frame is not a JSON object")]
    NotObject,
    /// An object without a string `type` (and not a bare error frame).
    #[error("frame has no string `type`")]
    NoType,
    /// A known `type` whose fields do not fit.
    #[error("`{kind}` event is malformed: {detail}")]
    Malformed {
        /// The event type.
        kind: String,
        /// What serde said.
        detail: String,
    },
}

/// `health.check`: the first frame of every connection (with `me`), then periodic keep-alives.
///
/// # Format
/// ```text
/// {"type":"health.check","connection_id":"61112366-0a15-3891-0000-000000000009","cid":"*",
///  "created_at":"2026-11-30T10:42:44.222203145Z","me":{...own user...}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Server-chosen connection id.
    #[serde(default)]
    pub connection_id: String,
    /// `"*"` on connection-level events.
    #[serde(default)]
    pub cid: String,
    /// RFC 3339 time.
    #[serde(default)]
    pub created_at: String,
    /// The own user; present on the first health check of a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub me: Option<OwnUser>,
}

/// A channel event caused by a user: `typing.start`, `typing.stop`, `message.read`,
/// `user.watching.start`, `user.watching.stop`.
///
/// # Format
/// ```text
/// {"type":"typing.start","cid":"messaging:general","channel_id":"general","channel_type":"messaging",
///  "user":{"id":"u1",...},"created_at":"...","parent_id":"m1"}
/// {"type":"message.read","cid":"messaging:general",...,"last_read_message_id":"m9"}
/// ```
/// Fields a sender added to its event (e.g. a harness sequence number) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelUserEvent {
    /// `"<type>:<id>"`.
    pub cid: String,
    /// The channel id.
    #[serde(default)]
    pub channel_id: String,
    /// The channel type.
    #[serde(default)]
    pub channel_type: String,
    /// Who caused it.
    pub user: User,
    /// RFC 3339 time.
    #[serde(default)]
    pub created_at: String,
    /// Thread parent, for thread typing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// For `message.read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_message_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `notification.mark_read`, sent to the reader's own connections.
///
/// # Format
/// ```text
/// {"type":"notification.mark_read","cid":"messaging:general","channel_id":"general",
///  "channel_type":"messaging","user":{...},"created_at":"...","total_unread_count":0,"unread_channels":0}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationMarkRead {
    /// The channel (absent for mark-all-read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The channel id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// The channel type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    /// The reader.
    pub user: User,
    /// RFC 3339 time.
    #[serde(default)]
    pub created_at: String,
    /// Unread messages left.
    #[serde(default)]
    pub total_unread_count: u64,
    /// Channels with unread messages left.
    #[serde(default)]
    pub unread_channels: u64,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `message.new` to watchers (the sender included) and `notification.message_new` to members
/// who do not watch (which adds the full `channel` in `extra`).
///
/// # Format
/// ```text
/// {"type":"message.new","cid":"messaging:general","channel_id":"general","channel_type":"messaging",
///  "message_id":"m1","message":{"id":"m1","text":"hi","user":{...},...},"user":{...},
///  "created_at":"...","watcher_count":2,"unread_count":1,"total_unread_count":1,"unread_channels":1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageNew {
    /// `"<type>:<id>"`.
    pub cid: String,
    /// The channel id.
    #[serde(default)]
    pub channel_id: String,
    /// The channel type.
    #[serde(default)]
    pub channel_type: String,
    /// The message id.
    #[serde(default)]
    pub message_id: String,
    /// The full message.
    pub message: Value,
    /// The sender.
    pub user: User,
    /// RFC 3339 time.
    #[serde(default)]
    pub created_at: String,
    /// Everything else (counters, `channel`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `user.presence.changed` and `user.updated`.
///
/// # Format
/// ```text
/// {"type":"user.presence.changed","user":{"id":"u1","online":false,"last_active":"..."},"created_at":"..."}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// The user, with `online` and `last_active` in its custom fields for presence.
    pub user: User,
    /// RFC 3339 time.
    #[serde(default)]
    pub created_at: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Every server-to-client event the harness and mock understand; others are kept as `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `health.check`.
    HealthCheck(HealthCheck),
    /// `connection.error`, or the legacy bare `{"error":{...}}` frame.
    ConnectionError(ConnectionErrorEvent),
    /// `typing.start`.
    TypingStart(ChannelUserEvent),
    /// `typing.stop`.
    TypingStop(ChannelUserEvent),
    /// `message.read`.
    MessageRead(ChannelUserEvent),
    /// `notification.mark_read`.
    NotificationMarkRead(NotificationMarkRead),
    /// `message.new`.
    MessageNew(MessageNew),
    /// `notification.message_new`.
    NotificationMessageNew(MessageNew),
    /// `user.presence.changed`.
    UserPresenceChanged(UserEvent),
    /// `user.updated`.
    UserUpdated(UserEvent),
    /// `user.watching.start`.
    UserWatchingStart(ChannelUserEvent),
    /// `user.watching.stop`.
    UserWatchingStop(ChannelUserEvent),
    /// Any other event, kept whole.
    Other {
        /// Its `type`.
        kind: String,
        /// The whole object.
        raw: Value,
    },
}

/// The one table of known event types: `by_kind!(kind, read, otherwise)` is the variant of
/// `kind` holding `read` (an expression that reads that variant's struct), or `otherwise`. Both
/// ways of reading a frame (straight from text, and from a `Value`) go through it.
macro_rules! by_kind {
    ($kind:expr, $read:expr, $otherwise:expr) => {
        match $kind {
            "health.check" => Self::HealthCheck($read),
            "connection.error" => Self::ConnectionError($read),
            "typing.start" => Self::TypingStart($read),
            "typing.stop" => Self::TypingStop($read),
            "message.read" => Self::MessageRead($read),
            "notification.mark_read" => Self::NotificationMarkRead($read),
            "message.new" => Self::MessageNew($read),
            "notification.message_new" => Self::NotificationMessageNew($read),
            "user.presence.changed" => Self::UserPresenceChanged($read),
            "user.updated" => Self::UserUpdated($read),
            "user.watching.start" => Self::UserWatchingStart($read),
            "user.watching.stop" => Self::UserWatchingStop($read),
            _ => $otherwise,
        }
    };
}

/// The `type` of a frame that starts with it (`{"type":"...",`, as the mock and Stream write
/// their events), read without a first pass over the whole text; `None` when the frame does not
/// start so, or when any other `"type"` key could be in it (another `"type"` token, or a `\u`
/// escape that could spell one). Only then is it the answer a full parse of `{"type": ...}`
/// gives for a text that the typed read then accepts (a repeated `type` key makes that parse
/// fail, which must not be skipped).
fn leading_type(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("{\"type\":\"")?;
    let end = rest.find('"')?;
    let (kind, after) = rest.split_at(end);
    if kind.contains('\\') || after.contains("\"type\"") || text.contains("\\u") {
        return None;
    }
    Some(kind)
}

impl ServerEvent {
    /// Reads one text frame.
    ///
    /// # Errors
    /// [`FrameError`] when the frame is not a JSON object with a `type` (a bare `{"error":...}`
    /// is accepted as a connection error) or a known event's fields do not fit.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        if let Some(event) = Self::parse_known(text) {
            return Ok(event);
        }
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// A well-formed frame of a known type, read straight into its struct without building a
    /// `Value` tree first (the tree cost a tenth of the harness's CPU in a 10,000-user connect
    /// burst). `None` for anything else (unknown types, legacy error frames, malformed or odd
    /// input such as a repeated key): [`ServerEvent::parse`] then takes the `Value` path, so
    /// every result and error is the same as before.
    fn parse_known(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        fn typed<'a, T: Deserialize<'a>>(text: &'a str) -> Option<T> {
            serde_json::from_str(text).ok()
        }
        if let Some(kind) = leading_type(text) {
            return Some(by_kind!(kind, typed(text)?, return None));
        }
        let head: Head<'_> = serde_json::from_str(text).ok()?;
        Some(by_kind!(head.kind.as_ref(), typed(text)?, return None))
    }

    /// Like [`ServerEvent::parse`], from an already parsed value (long-poll batches).
    ///
    /// # Errors
    /// As [`ServerEvent::parse`].
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(obj) = &value else {
            return Err(FrameError::NotObject);
        };
        let kind = match obj.get("type") {
            Some(Value::String(s)) => s.clone(),
            _ if obj.contains_key("error") => "connection.error".to_owned(),
            _ => return Err(FrameError::NoType),
        };
        fn typed<T: serde::de::DeserializeOwned>(kind: &str, v: Value) -> Result<T, FrameError> {
            serde_json::from_value(v).map_err(|e| FrameError::Malformed {
                kind: kind.to_owned(),
                detail: e.to_string(),
            })
        }
        Ok(by_kind!(
            kind.as_str(),
            typed(&kind, value)?,
            Self::Other { kind, raw: value }
        ))
    }

    /// The wire `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::HealthCheck(_) => "health.check",
            Self::ConnectionError(_) => "connection.error",
            Self::TypingStart(_) => "typing.start",
            Self::TypingStop(_) => "typing.stop",
            Self::MessageRead(_) => "message.read",
            Self::NotificationMarkRead(_) => "notification.mark_read",
            Self::MessageNew(_) => "message.new",
            Self::NotificationMessageNew(_) => "notification.message_new",
            Self::UserPresenceChanged(_) => "user.presence.changed",
            Self::UserUpdated(_) => "user.updated",
            Self::UserWatchingStart(_) => "user.watching.start",
            Self::UserWatchingStop(_) => "user.watching.stop",
            Self::Other { kind, .. } => kind,
        }
    }

    /// The event's `created_at`, when it has one (Unity's `/sync` watermark, U.7 item 5).
    pub fn created_at(&self) -> Option<&str> {
        let t = match self {
            Self::HealthCheck(e) => &e.created_at,
            Self::ConnectionError(e) => &e.created_at,
            Self::TypingStart(e) | Self::TypingStop(e) | Self::MessageRead(e) => &e.created_at,
            Self::UserWatchingStart(e) | Self::UserWatchingStop(e) => &e.created_at,
            Self::NotificationMarkRead(e) => &e.created_at,
            Self::MessageNew(e) | Self::NotificationMessageNew(e) => &e.created_at,
            Self::UserPresenceChanged(e) | Self::UserUpdated(e) => &e.created_at,
            Self::Other { raw, .. } => return raw.get("created_at").and_then(Value::as_str),
        };
        Some(t.as_str()).filter(|t| !t.is_empty())
    }

    /// The event as a JSON value with its `type`.
    pub fn to_value(&self) -> Value {
        fn tagged<T: Serialize>(kind: &str, body: &T) -> Value {
            let mut v = serde_json::to_value(body).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("type".to_owned(), Value::String(kind.to_owned()));
            }
            v
        }
        let kind = self.kind();
        match self {
            Self::HealthCheck(e) => tagged(kind, e),
            Self::ConnectionError(e) => tagged(kind, e),
            Self::TypingStart(e) | Self::TypingStop(e) | Self::MessageRead(e) => tagged(kind, e),
            Self::UserWatchingStart(e) | Self::UserWatchingStop(e) => tagged(kind, e),
            Self::NotificationMarkRead(e) => tagged(kind, e),
            Self::MessageNew(e) | Self::NotificationMessageNew(e) => tagged(kind, e),
            Self::UserPresenceChanged(e) | Self::UserUpdated(e) => tagged(kind, e),
            Self::Other { raw, .. } => raw.clone(),
        }
    }

    /// The event as one text frame.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The error body, for a connection error.
    pub fn error(&self) -> Option<&ErrorBody> {
        match self {
            Self::ConnectionError(e) => Some(&e.error),
            _ => None,
        }
    }

    /// The channel this event belongs to, for channel events.
    pub fn cid(&self) -> Option<&str> {
        match self {
            Self::TypingStart(e) | Self::TypingStop(e) | Self::MessageRead(e) => Some(&e.cid),
            Self::UserWatchingStart(e) | Self::UserWatchingStop(e) => Some(&e.cid),
            Self::MessageNew(e) | Self::NotificationMessageNew(e) => Some(&e.cid),
            Self::NotificationMarkRead(e) => e.cid.as_deref(),
            _ => None,
        }
    }

    /// The user who caused the event, where there is one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::TypingStart(e) | Self::TypingStop(e) | Self::MessageRead(e) => Some(&e.user.id),
            Self::UserWatchingStart(e) | Self::UserWatchingStop(e) => Some(&e.user.id),
            Self::MessageNew(e) | Self::NotificationMessageNew(e) => Some(&e.user.id),
            Self::NotificationMarkRead(e) => Some(&e.user.id),
            Self::UserPresenceChanged(e) | Self::UserUpdated(e) => Some(&e.user.id),
            _ => None,
        }
    }
}

/// What a server reads from a client's text frame. Clients send only health checks on the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A health check, as a JSON object or an array of objects, `type` matched in any case
    /// (JS: `[{"type":"health.check","client_id":"u--uuid"}]`; Android/Flutter: an object;
    /// Unity: `{"Type":"health.check"}`).
    HealthCheck {
        /// The JS `client_id`, when sent.
        client_id: Option<String>,
    },
    /// Valid JSON that is not a health check (ignored by servers).
    Other(Value),
    /// Not JSON, or not an object/array of objects.
    Malformed(String),
}

/// Reads a client's text frame.
pub fn parse_client_frame(text: &str) -> ClientFrame {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return ClientFrame::Malformed(e.to_string()),
    };
    let obj = match &value {
        Value::Object(o) => o,
        Value::Array(items) => match items.first() {
            Some(Value::Object(o)) => o,
            _ => return ClientFrame::Malformed("expected an array of objects".to_owned()),
        },
        _ => return ClientFrame::Malformed("expected a JSON object".to_owned()),
    };
    let field = |name: &str| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    if field("type").and_then(Value::as_str) == Some("health.check") {
        let client_id = field("client_id").and_then(Value::as_str).map(str::to_owned);
        return ClientFrame::HealthCheck { client_id };
    }
    ClientFrame::Other(value)
}

/// The JS client's health check: an array of one object.
pub fn client_health_check_js(client_id: &str) -> String {
    serde_json::json!([{"type": "health.check", "client_id": client_id}]).to_string()
}

/// The Android/Flutter health check: one object carrying the connection id.
pub fn client_health_check_object(connection_id: &str) -> String {
    serde_json::json!({"type": "health.check", "connection_id": connection_id}).to_string()
}

/// The Unity client's health check, PascalCase key.
pub fn client_health_check_unity() -> String {
    r#"{"Type":"health.check"}"#.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn the_leading_type_is_read_only_when_no_other_type_key_can_exist() {
        let hc = r#"{"type":"health.check","connection_id":"c1","cid":"*","created_at":"x"}"#;
        assert_eq!(leading_type(hc), Some("health.check"));
        assert!(matches!(ServerEvent::parse(hc), Ok(ServerEvent::HealthCheck(h)) if h.connection_id == "c1"));
        for other in [
            r#"{ "type":"health.check"}"#,
            r#"{"cid":"*","type":"health.check"}"#,
            r#"{"type":"health.check","type":"x"}"#,
            r#"{"type":"health.check","typ\u0065":"x"}"#,
            r#"{"type":"a\"b","x":1}"#,
        ] {
            assert_eq!(leading_type(other), None, "{other}");
        }
        // A repeated `type` key is not a health check, however it starts.
        let twice = r#"{"type":"health.check","connection_id":"c1","type":"user.custom"}"#;
        assert!(matches!(ServerEvent::parse(twice), Ok(ServerEvent::Other { kind, .. }) if kind == "user.custom"));
        let escaped = r#"{"type":"health.check","connection_id":"c1","typ\u0065":"user.custom"}"#;
        assert!(matches!(ServerEvent::parse(escaped), Ok(ServerEvent::Other { kind, .. }) if kind == "user.custom"));
    }

    fn round_trip(v: Value) -> ServerEvent {
        let e = ServerEvent::parse(&v.to_string()).unwrap();
        assert_eq!(e.to_value(), v, "round trip of {}", e.kind());
        e
    }

    #[test]
    fn health_check_with_me() {
        let me = serde_json::to_value(OwnUser::new(User::new("amin"), true)).unwrap();
        let e = round_trip(json!({"type":"health.check","connection_id":"c1","cid":"*","created_at":"t","me":me}));
        let ServerEvent::HealthCheck(h) = e else { panic!() };
        assert_eq!(h.me.unwrap().user.id, "amin");
        round_trip(json!({"type":"health.check","connection_id":"c1","cid":"*","created_at":"t"}));
    }

    #[test]
    fn connection_error_both_shapes() {
        let body = serde_json::to_value(ErrorBody::new(ErrorCode::TOKEN_EXPIRED, "Connect", "expired")).unwrap();
        let e = round_trip(json!({"type":"connection.error","created_at":"t","connection_id":"","error":body}));
        assert_eq!(e.error().unwrap().code, 40);
        let legacy = ServerEvent::parse(&json!({"error": body}).to_string()).unwrap();
        assert_eq!(legacy.error().unwrap().error_code(), ErrorCode::TOKEN_EXPIRED);
    }

    #[test]
    fn channel_events_round_trip() {
        for kind in [
            "typing.start",
            "typing.stop",
            "message.read",
            "user.watching.start",
            "user.watching.stop",
        ] {
            let e = round_trip(
                json!({"type":kind,"cid":"messaging:g","channel_id":"g","channel_type":"messaging",
                "user":{"id":"u1"},"created_at":"t","chatstorm_seq":7}),
            );
            assert_eq!((e.cid(), e.user_id()), (Some("messaging:g"), Some("u1")));
        }
        round_trip(
            json!({"type":"notification.mark_read","cid":"messaging:g","channel_id":"g","channel_type":"messaging",
            "user":{"id":"u1"},"created_at":"t","total_unread_count":0,"unread_channels":0}),
        );
        for kind in ["message.new", "notification.message_new"] {
            round_trip(
                json!({"type":kind,"cid":"messaging:g","channel_id":"g","channel_type":"messaging","message_id":"m",
                "message":{"id":"m","text":"hi"},"user":{"id":"u1"},"created_at":"t","watcher_count":2}),
            );
        }
        for kind in ["user.presence.changed", "user.updated"] {
            round_trip(json!({"type":kind,"user":{"id":"u1","online":false},"created_at":"t"}));
        }
        let other = round_trip(json!({"type":"reaction.new","x":1}));
        assert_eq!(other.kind(), "reaction.new");
    }

    #[test]
    fn the_direct_path_reads_what_the_value_path_reads() {
        let me = serde_json::to_value(OwnUser::new(User::new("amin"), true)).unwrap();
        let body = serde_json::to_value(ErrorBody::new(ErrorCode::TOKEN_EXPIRED, "Connect", "expired")).unwrap();
        let frames = [
            json!({"type":"health.check","connection_id":"c1","cid":"*","created_at":"t","me":me}),
            json!({"type":"connection.error","created_at":"t","connection_id":"","error":body}),
            json!({"type":"message.new","cid":"messaging:g","channel_id":"g","channel_type":"messaging","message_id":"m",
                "message":{"id":"m","text":"h\u{e9} \"x\""},"user":{"id":"u1"},"created_at":"t","watcher_count":2,"extra":[1,{"a":null}]}),
            json!({"type":"typing.start","cid":"messaging:g","channel_id":"g","channel_type":"messaging",
                "user":{"id":"u1"},"created_at":"t","chatstorm_seq":7}),
            json!({"type":"user.presence.changed","user":{"id":"u1","online":false},"created_at":"t"}),
        ];
        for v in frames {
            let text = v.to_string();
            let direct = ServerEvent::parse_known(&text).expect("a known, well-formed frame");
            assert_eq!(Some(direct), ServerEvent::from_value(v).ok());
        }
        // Everything else goes the Value way, errors included.
        for text in [
            r#"{"type":"reaction.new","x":1}"#,
            r#"{"error":{"code":40,"message":"m","StatusCode":401}}"#,
            r#"{"type":"typing.start"}"#,
            r#"{"type":"health.check","type":"health.check","connection_id":"c"}"#,
            r#"{"type":7}"#,
            "[1]",
            "nope",
        ] {
            assert_eq!(ServerEvent::parse_known(text), None, "{text}");
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(matches!(
            ServerEvent::parse("token invalid"),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(ServerEvent::parse("[1]"), Err(FrameError::NotObject));
        assert_eq!(ServerEvent::parse("{}"), Err(FrameError::NoType));
        assert!(matches!(
            ServerEvent::parse(r#"{"type":"typing.start"}"#),
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn client_health_checks_in_every_shape() {
        let js = parse_client_frame(&client_health_check_js("u--1"));
        assert_eq!(
            js,
            ClientFrame::HealthCheck {
                client_id: Some("u--1".into())
            }
        );
        assert!(matches!(
            parse_client_frame(&client_health_check_object("c")),
            ClientFrame::HealthCheck { .. }
        ));
        assert!(matches!(
            parse_client_frame(&client_health_check_unity()),
            ClientFrame::HealthCheck { .. }
        ));
        assert!(matches!(
            parse_client_frame(r#"{"type":"typing.start"}"#),
            ClientFrame::Other(_)
        ));
        assert!(matches!(parse_client_frame("\u{0}garbage"), ClientFrame::Malformed(_)));
        assert!(matches!(parse_client_frame("[]"), ClientFrame::Malformed(_)));
        assert!(matches!(parse_client_frame("42"), ClientFrame::Malformed(_)));
    }
}
