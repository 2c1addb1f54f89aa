//! Request bodies of the REST calls a realistic client makes (PROTOCOL.md §6.2, §7), shared by
//! the harness that sends them and the mock that reads them. Unknown fields are tolerated on
//! read, as real servers do.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /channels`: query channels (and watch them on the caller's `connection_id`).
///
/// # Format
/// ```text
/// {"filter_conditions":{"cid":{"$in":["messaging:c1"]}},"sort":[{"field":"last_message_at","direction":-1}],
///  "state":true,"watch":true,"presence":false,"limit":30}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryChannelsRequest {
    /// Mongo-style filter; the mock understands `cid` (`$in`/`$eq`), `members` (`$in`) and `type`.
    #[serde(default)]
    pub filter_conditions: Value,
    /// Sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Value>,
    /// Return channel state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<bool>,
    /// Watch the returned channels on the caller's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<bool>,
    /// Subscribe to the members' presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    /// At most this many channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Skip this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Messages per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_limit: Option<u32>,
    /// Members per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_limit: Option<u32>,
}

/// `POST /channels/{type}/{id}/query`: get or create one channel, optionally watching it.
///
/// # Format
/// ```text
/// {"data":{"members":["u1","u2"]},"state":true,"watch":true,"presence":false}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelQueryRequest {
    /// Channel data for creation (`members`, custom fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Return channel state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<bool>,
    /// Watch it on the caller's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<bool>,
    /// Subscribe to the members' presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    /// Message pagination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Value>,
    /// Member pagination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Value>,
    /// Watcher pagination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchers: Option<Value>,
}

/// `POST /channels/{type}/{id}/event`: a typing (or custom) event.
///
/// # Format
/// ```text
/// {"event":{"type":"typing.start","parent_id":"m1"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendEventRequest {
    /// The event; must have a string `type`.
    pub event: Value,
}

/// `POST /channels/{type}/{id}/read`.
///
/// # Format
/// ```text
/// {}        {"message_id":"m1"}        {"thread_id":"t1"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkReadRequest {
    /// Mark read up to this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Mark a thread read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// The message part of a send-message request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageInput {
    /// A client-chosen id (the harness encodes sender and sequence in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Thread parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Everything else (attachments, custom fields).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /channels/{type}/{id}/message`.
///
/// # Format
/// ```text
/// {"message":{"id":"u1-7","text":"hello"},"skip_push":true}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// The message.
    pub message: MessageInput,
    /// Do not send push notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_push: Option<bool>,
}

/// `POST /users`: upsert whole users, keyed by id.
///
/// # Format
/// ```text
/// {"users":{"u1":{"id":"u1","name":"U 1","privacy_settings":{"typing_indicators":{"enabled":false}}}}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpsertUsersRequest {
    /// The users by id.
    pub users: Map<String, Value>,
}

/// One entry of a partial user update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialUserUpdate {
    /// The user to update.
    pub id: String,
    /// Fields to set; nested objects merge, dotted keys address sub-fields.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Fields to remove.
    #[serde(default)]
    pub unset: Vec<String>,
}

/// `PATCH /users`: partial updates.
///
/// # Format
/// ```text
/// {"users":[{"id":"u1","set":{"privacy_settings":{"read_receipts":{"enabled":false}}},"unset":[]}]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialUpdateUsersRequest {
    /// The updates.
    pub users: Vec<PartialUserUpdate>,
}

/// `POST /sync`: events missed since a time, optionally re-watching the channels.
///
/// # Format
/// ```text
/// {"channel_cids":["messaging:c1"],"last_sync_at":"2026-11-30T10:00:00.000000000Z","watch":true}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The channels.
    pub channel_cids: Vec<String>,
    /// Since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
    /// Re-watch on the caller's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: Value) {
        let t: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
    }

    #[test]
    fn bodies_round_trip() {
        round_trip::<QueryChannelsRequest>(json!({"filter_conditions":{"cid":{"$in":["messaging:c1"]}},
            "sort":[{"field":"last_message_at","direction":-1}],"state":true,"watch":true,"presence":false,"limit":30}));
        round_trip::<ChannelQueryRequest>(
            json!({"data":{"members":["u1"]},"state":true,"watch":true,"presence":false}),
        );
        round_trip::<SendEventRequest>(json!({"event":{"type":"typing.start","parent_id":"m1"}}));
        round_trip::<MarkReadRequest>(json!({}));
        round_trip::<MarkReadRequest>(json!({"message_id":"m1"}));
        round_trip::<SendMessageRequest>(json!({"message":{"id":"u1-7","text":"hello","custom":1},"skip_push":true}));
        round_trip::<UpsertUsersRequest>(json!({"users":{"u1":{"id":"u1"}}}));
        round_trip::<PartialUpdateUsersRequest>(json!({"users":[{"id":"u1","set":{"a.b":1},"unset":["c"]}]}));
        round_trip::<SyncRequest>(json!({"channel_cids":["messaging:c1"],"last_sync_at":"t","watch":true}));
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let r: MarkReadRequest = serde_json::from_value(json!({"user_id":"x"})).unwrap();
        assert_eq!(r, MarkReadRequest::default());
    }
}
