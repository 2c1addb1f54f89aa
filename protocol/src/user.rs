//! Users as the wire carries them: the user object (with custom fields flattened at the top
//! level), the "own user" `me` of the first `health.check`, and privacy settings (PROTOCOL.md §1.5, §6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"enabled": bool}`, the shape of every privacy switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toggle {
    /// Whether the feature is on.
    pub enabled: bool,
}

/// A user's privacy settings; an absent switch means enabled.
///
/// # Format
/// ```text
/// {"typing_indicators":{"enabled":false},"read_receipts":{"enabled":true},"delivery_receipts":{"enabled":true}}
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySettings {
    /// Typing events from this user reach others only when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_indicators: Option<Toggle>,
    /// Read events from this user reach others only when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<Toggle>,
    /// Delivery receipts from this user reach others only when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_receipts: Option<Toggle>,
}

impl PrivacySettings {
    /// Settings with the given typing and read switches set explicitly.
    pub fn with(typing: bool, read: bool) -> Self {
        Self {
            typing_indicators: Some(Toggle { enabled: typing }),
            read_receipts: Some(Toggle { enabled: read }),
            delivery_receipts: None,
        }
    }

    /// Nested merge as `PATCH /users` does it: switches present in `patch` replace ours, others stay.
    pub fn merge_from(&mut self, patch: &PrivacySettings) {
        if patch.typing_indicators.is_some() {
            self.typing_indicators = patch.typing_indicators;
        }
        if patch.read_receipts.is_some() {
            self.read_receipts = patch.read_receipts;
        }
        if patch.delivery_receipts.is_some() {
            self.delivery_receipts = patch.delivery_receipts;
        }
    }

    /// Whether typing events are delivered (default on).
    pub fn typing_enabled(&self) -> bool {
        self.typing_indicators.is_none_or(|t| t.enabled)
    }

    /// Whether read receipts are delivered (default on).
    pub fn read_receipts_enabled(&self) -> bool {
        self.read_receipts.is_none_or(|t| t.enabled)
    }

    /// Whether delivery receipts are delivered (default on).
    pub fn delivery_receipts_enabled(&self) -> bool {
        self.delivery_receipts.is_none_or(|t| t.enabled)
    }
}

/// A user object: well-known fields plus custom data flattened at the top level.
///
/// # Format
/// ```text
/// {"id":"user-1","name":"User 1","role":"user","privacy_settings":{...},"favourite_colour":"teal"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user id (`a-z 0-9 @ _ -`).
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Role, `"user"` for normal users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Present only once set (PROTOCOL.md §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_settings: Option<PrivacySettings>,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl User {
    /// A user with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// The effective privacy settings (all enabled when unset).
    pub fn privacy(&self) -> PrivacySettings {
        self.privacy_settings.unwrap_or_default()
    }

    /// Upsert semantics: fields present in `other` replace ours; privacy settings merge nested.
    pub fn merge_from(&mut self, other: &User) {
        if other.name.is_some() {
            self.name.clone_from(&other.name);
        }
        if other.image.is_some() {
            self.image.clone_from(&other.image);
        }
        if other.role.is_some() {
            self.role.clone_from(&other.role);
        }
        if let Some(p) = &other.privacy_settings {
            self.privacy_settings
                .get_or_insert_with(PrivacySettings::default)
                .merge_from(p);
        }
        for (k, v) in &other.custom {
            self.custom.insert(k.clone(), v.clone());
        }
    }

    /// The size of the user's JSON, the quantity the 5 KB rule limits.
    pub fn json_size(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }
}

/// The own user sent as `me` in the first `health.check`: the user plus own-only fields. The JS
/// SDK copies `mutes` and `channel_mutes` without defaults, so they are always present.
///
/// # Format
/// ```text
/// {"id":"amin","role":"user","online":true,"invisible":false,"banned":false,"devices":[],"mutes":[],
///  "channel_mutes":[],"unread_count":0,"total_unread_count":0,"unread_channels":0,"unread_threads":0,
///  "created_at":"...","updated_at":"...","last_active":"...","teams":[],"language":"",
///  "privacy_settings":{...}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnUser {
    /// The user object itself.
    #[serde(flatten)]
    pub user: User,
    /// Online right now.
    #[serde(default)]
    pub online: bool,
    /// Hidden from presence.
    #[serde(default)]
    pub invisible: bool,
    /// Banned.
    #[serde(default)]
    pub banned: bool,
    /// Push devices.
    #[serde(default)]
    pub devices: Vec<Value>,
    /// Muted users.
    #[serde(default)]
    pub mutes: Vec<Value>,
    /// Muted channels.
    #[serde(default)]
    pub channel_mutes: Vec<Value>,
    /// Unread messages (JS recognises an own user by `total_unread_count`).
    #[serde(default)]
    pub unread_count: u64,
    /// Unread messages across all channels.
    #[serde(default)]
    pub total_unread_count: u64,
    /// Channels with unread messages.
    #[serde(default)]
    pub unread_channels: u64,
    /// Threads with unread replies.
    #[serde(default)]
    pub unread_threads: u64,
}

impl OwnUser {
    /// Own-user fields around `user`, everything unread at zero.
    pub fn new(user: User, online: bool) -> Self {
        Self {
            user,
            online,
            ..Self::default()
        }
    }
}

/// Reads `user_details` from a connect payload or upsert, accepting Unity's PascalCase `Id` and any
/// letter case in the well-known keys (Go's decoder, which the real backend uses, matches keys
/// case-insensitively; PROTOCOL.md U.7).
///
/// # Errors
/// A one-line description when the value is not an object or has no string id.
pub fn user_details_from_value(v: &Value) -> Result<User, String> {
    let Some(obj) = v.as_object() else {
        return Err("user_details must be an object".to_owned());
    };
    const KNOWN: [&str; 5] = ["id", "name", "image", "role", "privacy_settings"];
    let mut normalized = Map::with_capacity(obj.len());
    for (k, val) in obj {
        let key = KNOWN
            .iter()
            .find(|known| known.eq_ignore_ascii_case(k))
            .map_or_else(|| k.clone(), |known| (*known).to_owned());
        normalized.insert(key, val.clone());
    }
    match normalized.get("id") {
        Some(Value::String(_)) => {}
        Some(_) => return Err("user_details.id must be a string".to_owned()),
        None => return Err("user_details.id is a required field".to_owned()),
    }
    serde_json::from_value(Value::Object(normalized)).map_err(|e| format!("user_details: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn privacy_merge_is_nested() {
        let mut p = PrivacySettings::with(false, true);
        p.merge_from(&PrivacySettings {
            read_receipts: Some(Toggle { enabled: false }),
            ..Default::default()
        });
        assert!(!p.typing_enabled() && !p.read_receipts_enabled() && p.delivery_receipts_enabled());
        assert!(PrivacySettings::default().typing_enabled());
    }

    #[test]
    fn user_round_trip_keeps_custom_fields() {
        let v =
            json!({"id":"u1","name":"U","privacy_settings":{"typing_indicators":{"enabled":false}},"colour":"teal"});
        let u: User = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(u.custom["colour"], "teal");
        assert!(!u.privacy().typing_enabled());
        assert_eq!(serde_json::to_value(&u).unwrap(), v);
    }

    #[test]
    fn own_user_always_has_mutes() {
        let me = OwnUser::new(User::new("a"), true);
        let v = serde_json::to_value(&me).unwrap();
        assert_eq!(v["mutes"], json!([]));
        assert_eq!(v["channel_mutes"], json!([]));
        assert_eq!(v["total_unread_count"], 0);
        assert_eq!(serde_json::from_value::<OwnUser>(v).unwrap(), me);
    }

    #[test]
    fn user_details_accepts_unity_casing() {
        let u = user_details_from_value(&json!({"Id": "u-1"})).unwrap();
        assert_eq!(u.id, "u-1");
        assert!(user_details_from_value(&json!({"name": "x"})).is_err());
        assert!(user_details_from_value(&json!({"id": 5})).is_err());
        assert!(user_details_from_value(&json!([1])).is_err());
    }

    #[test]
    fn merge_keeps_unset_fields() {
        let mut a: User = serde_json::from_value(json!({"id":"a","name":"A","x":1})).unwrap();
        let b: User =
            serde_json::from_value(json!({"id":"a","y":2,"privacy_settings":{"read_receipts":{"enabled":false}}}))
                .unwrap();
        a.merge_from(&b);
        assert_eq!(a.name.as_deref(), Some("A"));
        assert_eq!((a.custom["x"].clone(), a.custom["y"].clone()), (json!(1), json!(2)));
        assert!(!a.privacy().read_receipts_enabled());
    }
}
