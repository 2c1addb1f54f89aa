//! Owns the chat data: users (with privacy settings and unread counters), channels (members, read
//! state, watchers, recent messages) and the connection registry. Plain data behind one lock in
//! `App`; the JSON views of users and channels live here too.
//!
//! The views are written straight from the records (serde `Serialize` on borrowing structs), never
//! through a `serde_json::Value` tree: a channel state of 50 members carries 100 user objects, and a
//! reconnect storm asks for thousands of them a second. Each user's public JSON is serialized once
//! and cached until the record changes ([`UserRec::touch`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::conn::{Conn, ConnId};
use crate::wire;

/// The maps behind the world lock, keyed by ids clients choose: aHash with per-process random
/// keys (resistant to chosen collisions, as SipHash is) at a fraction of SipHash's cost on the
/// short ids of every lookup a connect, a query and a fan-out make.
pub type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// Messages kept per channel by default (for channel state and `/sync`; `--messages-kept`).
pub const MESSAGES_KEPT: usize = 100;

/// Fields the server owns; clients cannot set them.
const RESERVED: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "last_active",
    "online",
    "banned",
    "total_unread_count",
    "unread_count",
    "unread_channels",
    "unread_threads",
    "devices",
    "mutes",
    "channel_mutes",
    "deactivated_at",
    "deleted_at",
];

/// The marks a server-side deactivate or delete leaves on a user.
#[derive(Debug, Default)]
struct Lifecycle {
    deactivated_at: Option<String>,
    deleted_at: Option<String>,
}

/// One user.
#[derive(Debug)]
pub struct UserRec {
    pub id: Arc<str>,
    /// Client-settable fields: name, image, role, privacy_settings, custom data.
    pub fields: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    pub last_active: String,
    /// Open connections (WebSocket and long-poll), the index behind `World::conns_of`.
    pub conns: Vec<ConnId>,
    /// The id of the user's latest connection (for the `same_connection_id` violation).
    pub last_conn: Option<ConnId>,
    pub total_unread: u32,
    pub unread_channels: u32,
    /// Channels the user is a member of.
    pub member_of: Vec<Arc<str>>,
    /// Server-side deactivation and deletion, boxed: almost no user has either, and the record
    /// is one per connected user.
    lifecycle: Option<Box<Lifecycle>>,
    /// `to_json()` serialized, filled on first use; every change of a field it shows (fields,
    /// times, connections) must call [`UserRec::touch`].
    cached: OnceLock<Box<RawValue>>,
}

impl UserRec {
    pub fn new(id: Arc<str>) -> Self {
        let t = wire::now();
        UserRec {
            id,
            fields: Map::new(),
            created_at: t.clone(),
            updated_at: t.clone(),
            last_active: t,
            conns: Vec::new(),
            last_conn: None,
            total_unread: 0,
            unread_channels: 0,
            member_of: Vec::new(),
            lifecycle: None,
            cached: OnceLock::new(),
        }
    }

    /// When a server-side deactivate took effect (shown as `deactivated_at` until reactivated).
    pub fn deactivated_at(&self) -> Option<&str> {
        self.lifecycle.as_ref().and_then(|l| l.deactivated_at.as_deref())
    }

    /// When a server-side delete took effect (shown as `deleted_at`; the user leaves queries).
    pub fn deleted_at(&self) -> Option<&str> {
        self.lifecycle.as_ref().and_then(|l| l.deleted_at.as_deref())
    }

    /// Sets or clears `deactivated_at`.
    pub fn set_deactivated(&mut self, at: Option<String>) {
        self.lifecycle.get_or_insert_default().deactivated_at = at;
        self.settle_lifecycle();
    }

    /// Sets or clears `deleted_at`.
    pub fn set_deleted(&mut self, at: Option<String>) {
        self.lifecycle.get_or_insert_default().deleted_at = at;
        self.settle_lifecycle();
    }

    fn settle_lifecycle(&mut self) {
        if self
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.deactivated_at.is_none() && l.deleted_at.is_none())
        {
            self.lifecycle = None;
        }
        self.touch();
    }

    /// Drops the cached JSON; called by everything that changes what `to_json` shows.
    pub fn touch(&mut self) {
        self.cached = OnceLock::new();
    }

    /// The user as other users see it, serialized once per change.
    pub fn raw(&self) -> &RawValue {
        self.cached.get_or_init(|| {
            let s = self.to_json().to_string();
            // A serialized object is valid JSON; the fallback is never taken.
            RawValue::from_string(s).unwrap_or_else(|_| RawValue::NULL.to_owned())
        })
    }

    /// A new connection of this user.
    pub fn connected(&mut self, id: ConnId) {
        self.conns.push(id);
        self.last_conn = Some(id);
        self.last_active = wire::now();
        self.touch();
    }

    /// A connection of this user closed; returns whether it was the last one.
    pub fn disconnected(&mut self, id: ConnId) -> bool {
        self.conns.retain(|c| *c != id);
        self.last_active = wire::now();
        self.touch();
        self.conns.is_empty()
    }

    fn toggle(&self, which: &str) -> bool {
        self.fields
            .get("privacy_settings")
            .and_then(|p| p.get(which))
            .and_then(|t| t.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// `privacy_settings.typing_indicators.enabled`, default true.
    pub fn typing_enabled(&self) -> bool {
        self.toggle("typing_indicators")
    }

    /// `privacy_settings.read_receipts.enabled`, default true.
    pub fn read_receipts_enabled(&self) -> bool {
        self.toggle("read_receipts")
    }

    /// The user as other users see it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(&*self.id));
        m.insert("role".into(), "user".into());
        m.insert("banned".into(), false.into());
        m.insert("online".into(), (!self.conns.is_empty()).into());
        m.insert("created_at".into(), self.created_at.clone().into());
        m.insert("updated_at".into(), self.updated_at.clone().into());
        m.insert("last_active".into(), self.last_active.clone().into());
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        for (k, v) in [
            ("deactivated_at", self.deactivated_at()),
            ("deleted_at", self.deleted_at()),
        ] {
            if let Some(t) = v {
                m.insert(k.into(), t.into());
            }
        }
        Value::Object(m)
    }

    /// The own-user object (`me`): the user plus the own-user fields the SDKs require.
    pub fn to_me(&self) -> Value {
        let mut v = self.to_json();
        if let Some(m) = v.as_object_mut() {
            m.entry("language").or_insert_with(|| "".into());
            m.entry("teams").or_insert_with(|| json!([]));
            m.entry("invisible").or_insert_with(|| false.into());
            m.insert("devices".into(), json!([]));
            m.insert("mutes".into(), json!([]));
            m.insert("channel_mutes".into(), json!([]));
            m.insert("blocked_user_ids".into(), json!([]));
            m.insert("unread_count".into(), self.total_unread.into());
            m.insert("total_unread_count".into(), self.total_unread.into());
            m.insert("unread_channels".into(), self.unread_channels.into());
            m.insert("unread_threads".into(), 0.into());
            m.insert("total_unread_count_by_team".into(), json!({}));
        }
        v
    }

    /// [`UserRec::to_me`] serialized straight from the record, without building the tree: every
    /// connect sends one. Same keys and values (a test holds the two together).
    pub fn me_raw(&self) -> Box<RawValue> {
        let s = wire::to_string(&MeView(self));
        RawValue::from_string(s).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }

    /// Applies an upsert or the `user_details` of a connect: given top-level keys replace, except
    /// `privacy_settings`, whose nested objects merge.
    ///
    /// Keys are matched case-insensitively, as the backend's Go decoder does: Unity sends `Id`,
    /// and a `Name` or `Privacy_Settings` lands on the standard field, not beside it.
    pub fn apply_upsert(&mut self, incoming: &Map<String, Value>) {
        for (k, v) in incoming {
            let k = canonical_key(k, USER_KEYS);
            if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                continue;
            }
            if k == "privacy_settings" {
                let v = canonical_privacy(v);
                let slot = self.fields.entry(k.to_owned()).or_insert_with(|| json!({}));
                deep_merge(slot, &v);
            } else {
                self.fields.insert(k.to_owned(), v.clone());
            }
        }
        self.updated_at = wire::now();
        self.touch();
    }

    /// Applies a partial update: `set` keys may be dotted paths; objects set on an existing object
    /// merge into it; `unset` removes paths.
    pub fn apply_partial(&mut self, set: &Map<String, Value>, unset: &[String]) {
        for (path, v) in set {
            let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
            let Some(first) = parts.first() else { continue };
            if RESERVED.contains(first) {
                continue;
            }
            set_path(&mut self.fields, &parts, v);
        }
        for path in unset {
            let parts: Vec<&str> = path.split('.').collect();
            unset_path(&mut self.fields, &parts);
        }
        self.updated_at = wire::now();
        self.touch();
    }

    /// Serialized size of the client-visible user, for the 5 KB rule.
    pub fn size(&self) -> usize {
        self.raw().get().len()
    }
}

/// Keys of `me` the server always writes itself, over any custom field of the same name.
const ME_OWN: &[&str] = &[
    "devices",
    "mutes",
    "channel_mutes",
    "blocked_user_ids",
    "unread_count",
    "total_unread_count",
    "unread_channels",
    "unread_threads",
    "total_unread_count_by_team",
];

/// The own-user object as [`UserRec::to_me`] builds it: the base fields unless a stored field
/// replaces them, the stored fields, the defaults a stored field may replace, then [`ME_OWN`].
struct MeView<'a>(&'a UserRec);

impl Serialize for MeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let stored = |k: &str| u.fields.contains_key(k);
        let mut m = s.serialize_map(None)?;
        if !stored("id") {
            m.serialize_entry("id", &*u.id)?;
        }
        if !stored("role") {
            m.serialize_entry("role", "user")?;
        }
        if !stored("banned") {
            m.serialize_entry("banned", &false)?;
        }
        if !stored("online") {
            m.serialize_entry("online", &!u.conns.is_empty())?;
        }
        for (k, v) in [
            ("created_at", &u.created_at),
            ("updated_at", &u.updated_at),
            ("last_active", &u.last_active),
        ] {
            if !stored(k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in u.fields.iter().filter(|(k, _)| !ME_OWN.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        for (k, v) in [("deactivated_at", u.deactivated_at()), ("deleted_at", u.deleted_at())] {
            if let Some(t) = v {
                m.serialize_entry(k, t)?;
            }
        }
        if !stored("language") {
            m.serialize_entry("language", "")?;
        }
        if !stored("teams") {
            m.serialize_entry("teams", EMPTY)?;
        }
        if !stored("invisible") {
            m.serialize_entry("invisible", &false)?;
        }
        for k in ["devices", "mutes", "channel_mutes", "blocked_user_ids"] {
            m.serialize_entry(k, EMPTY)?;
        }
        m.serialize_entry("unread_count", &u.total_unread)?;
        m.serialize_entry("total_unread_count", &u.total_unread)?;
        m.serialize_entry("unread_channels", &u.unread_channels)?;
        m.serialize_entry("unread_threads", &0)?;
        m.serialize_entry("total_unread_count_by_team", &Map::new())?;
        m.end()
    }
}

/// The standard user fields a client may send (custom fields keep their own spelling).
const USER_KEYS: &[&str] = &[
    "name",
    "image",
    "role",
    "language",
    "invisible",
    "teams",
    "privacy_settings",
    "blocked_user_ids",
];

/// `key` spelled as the known key it matches case-insensitively (reserved keys included), else as is.
fn canonical_key<'a>(key: &'a str, known: &[&'static str]) -> &'a str {
    known
        .iter()
        .chain(RESERVED)
        .find(|k| k.eq_ignore_ascii_case(key))
        .copied()
        .unwrap_or(key)
}

/// A `privacy_settings` value with its known keys in their standard spelling.
fn canonical_privacy(v: &Value) -> Value {
    const KEYS: &[&str] = &["typing_indicators", "read_receipts", "delivery_receipts", "enabled"];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (canonical_key(k, KEYS).to_owned(), canonical_privacy(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn set_path(obj: &mut Map<String, Value>, parts: &[&str], v: &Value) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let slot = obj.entry((*first).to_owned()).or_insert(Value::Null);
    if rest.is_empty() {
        deep_merge(slot, v);
        return;
    }
    if !slot.is_object() {
        *slot = json!({});
    }
    if let Some(inner) = slot.as_object_mut() {
        set_path(inner, rest, v);
    }
}

fn unset_path(obj: &mut Map<String, Value>, parts: &[&str]) {
    match parts {
        [] => {}
        [last] => {
            obj.remove(*last);
        }
        [first, rest @ ..] => {
            if let Some(inner) = obj.get_mut(*first).and_then(Value::as_object_mut) {
                unset_path(inner, rest);
            }
        }
    }
}

/// Objects merge key by key (recursively); anything else replaces.
pub fn deep_merge(slot: &mut Value, v: &Value) {
    match (slot.as_object_mut(), v.as_object()) {
        (Some(dst), Some(src)) => {
            for (k, sv) in src {
                deep_merge(dst.entry(k.clone()).or_insert(Value::Null), sv);
            }
        }
        _ => *slot = v.clone(),
    }
}

/// A member's read state in one channel.
#[derive(Debug, Clone)]
pub struct Member {
    pub joined_at: String,
    pub last_read: String,
    pub last_read_message_id: Option<String>,
    pub unread: u32,
}

impl Member {
    pub fn new() -> Self {
        let t = wire::now();
        Member {
            joined_at: t.clone(),
            last_read: t,
            last_read_message_id: None,
            unread: 0,
        }
    }
}

impl Default for Member {
    fn default() -> Self {
        Self::new()
    }
}

/// One kept message: its serialized form (written as is into every state and event that carries
/// it) and the fields the handlers look up.
#[derive(Debug)]
pub struct Msg {
    /// Creation time in nanoseconds since the epoch.
    pub nanos: i128,
    pub id: String,
    pub created_at: String,
    pub author: String,
    pub raw: Box<RawValue>,
}

impl Msg {
    pub fn new(nanos: i128, value: Value) -> Self {
        let s = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let author = value
            .pointer("/user/id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let raw = RawValue::from_string(value.to_string()).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Msg {
            nanos,
            id: s("id"),
            created_at: s("created_at"),
            author,
            raw,
        }
    }
}

/// One channel.
#[derive(Debug)]
pub struct Channel {
    pub cid: Arc<str>,
    pub kind: Arc<str>,
    pub id: Arc<str>,
    pub data: Map<String, Value>,
    pub created_by: Arc<str>,
    pub created_at: String,
    pub updated_at: String,
    pub members: BTreeMap<Arc<str>, Member>,
    /// Watching connections, held directly so a fan-out walks this map once and looks nothing up.
    pub watchers: FastMap<ConnId, Arc<Conn>>,
    /// Watching connections per user, so "first/last connection of this user" needs no scan.
    pub watching_users: FastMap<Arc<str>, u32>,
    /// The last `MESSAGES_KEPT` messages, oldest first.
    pub messages: VecDeque<Msg>,
    pub last_message_at: Option<String>,
    pub message_count: u64,
    /// Set on the copy a delete returns and announces (a deleted channel leaves the world).
    pub deleted_at: Option<String>,
    /// The channel-type config, serialized once (it depends only on the type and creation time).
    config: Box<RawValue>,
}

impl Channel {
    pub fn new(kind: &str, id: &str, created_by: Arc<str>, data: Map<String, Value>) -> Self {
        let t = wire::now();
        let config = RawValue::from_string(wire::channel_config(kind, &t).to_string())
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        Channel {
            cid: Arc::from(format!("{kind}:{id}")),
            kind: Arc::from(kind),
            id: Arc::from(id),
            data,
            created_by,
            created_at: t.clone(),
            updated_at: t,
            members: BTreeMap::new(),
            watchers: FastMap::default(),
            watching_users: FastMap::default(),
            messages: VecDeque::new(),
            last_message_at: None,
            message_count: 0,
            deleted_at: None,
            config,
        }
    }

    /// Adds a watching connection; returns (newly added, first connection of that user).
    pub fn add_watcher(&mut self, conn: &Arc<Conn>) -> (bool, bool) {
        if self.watchers.contains_key(&conn.id) {
            return (false, false);
        }
        self.watchers.insert(conn.id, conn.clone());
        let n = self.watching_users.entry(conn.user.clone()).or_insert(0);
        *n += 1;
        (true, *n == 1)
    }

    /// Removes a watching connection; returns (was watching, it was that user's last one).
    pub fn remove_watcher(&mut self, id: ConnId, user: &str) -> (bool, bool) {
        if self.watchers.remove(&id).is_none() {
            return (false, false);
        }
        let last = match self.watching_users.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.watching_users.remove(user);
                true
            }
        };
        (true, last)
    }

    /// The id of the newest kept message.
    pub fn latest_message_id(&self) -> Option<&str> {
        self.messages.back().map(|m| m.id.as_str())
    }
}

/// A user object inside a response or event: the cached JSON of a known user, or `{"id"}` for
/// one never seen.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Known(&'a RawValue),
    Bare(&'a str),
}

impl Serialize for UserRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UserRef::Known(raw) => raw.serialize(s),
            UserRef::Bare(id) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("id", id)?;
                m.end()
            }
        }
    }
}

/// Everything behind the world lock.
#[derive(Debug, Default)]
pub struct World {
    pub users: FastMap<Arc<str>, UserRec>,
    pub channels: FastMap<Arc<str>, Channel>,
    pub conns: FastMap<ConnId, Arc<Conn>>,
    /// Results of the asynchronous server-side calls (`users/delete`, `users/deactivate`),
    /// complete at once, by task id, for `GET /tasks/{id}`.
    pub tasks: FastMap<String, Value>,
}

impl World {
    /// The user record, created empty on first sight.
    pub fn user_mut(&mut self, id: &str) -> &mut UserRec {
        if !self.users.contains_key(id) {
            let id: Arc<str> = Arc::from(id);
            self.users.insert(id.clone(), UserRec::new(id));
        }
        // Inserted just above when missing.
        self.users.get_mut(id).expect("user inserted above")
    }

    /// The user as responses and events carry it, without building anything.
    pub fn user_ref<'a>(&'a self, id: &'a str) -> UserRef<'a> {
        match self.users.get(id) {
            Some(u) => UserRef::Known(u.raw()),
            None => UserRef::Bare(id),
        }
    }

    /// Adds a member to a channel (and the channel to the user's list).
    pub fn add_member(&mut self, cid: &Arc<str>, user: &str) {
        let uid: Arc<str> = self.user_mut(user).id.clone();
        let Some(ch) = self.channels.get_mut(cid) else {
            return;
        };
        if ch.members.contains_key(&uid) {
            return;
        }
        ch.members.insert(uid.clone(), Member::new());
        self.user_mut(&uid).member_of.push(cid.clone());
    }

    /// Removes a member from a channel: its unread messages leave the user's totals, the channel
    /// leaves the user's list. Returns whether it was a member.
    pub fn remove_member(&mut self, cid: &str, user: &str) -> bool {
        let Some(mem) = self.channels.get_mut(cid).and_then(|ch| ch.members.remove(user)) else {
            return false;
        };
        if let Some(u) = self.users.get_mut(user) {
            u.member_of.retain(|c| &**c != cid);
            u.total_unread = u.total_unread.saturating_sub(mem.unread);
            if mem.unread > 0 {
                u.unread_channels = u.unread_channels.saturating_sub(1);
            }
        }
        true
    }

    /// Removes a channel with its members (as [`World::remove_member`]) and its watchers (their
    /// connections forget it). Returns the channel as it was, members and watchers included.
    pub fn remove_channel(&mut self, cid: &str) -> Option<Channel> {
        let members: Vec<Arc<str>> = self.channels.get(cid)?.members.keys().cloned().collect();
        let kept: BTreeMap<Arc<str>, Member> = self.channels.get(cid)?.members.clone();
        for m in &members {
            self.remove_member(cid, m);
        }
        let mut ch = self.channels.remove(cid)?;
        for conn in ch.watchers.values() {
            conn.watching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|c| &**c != cid);
        }
        ch.members = kept;
        Some(ch)
    }

    /// The `member` object of `user` in `ch` (events and update responses carry it).
    pub fn member_view<'a>(&'a self, ch: &'a Channel, user: &str) -> Option<impl Serialize + 'a> {
        let (uid, mem) = ch.members.get_key_value(user)?;
        Some(MemberView {
            user_id: uid,
            user: self.user_ref(uid),
            created_at: &mem.joined_at,
            updated_at: &mem.joined_at,
            role: "member",
            channel_role: "channel_member",
            banned: false,
            shadow_banned: false,
        })
    }

    /// Every member object of `ch`, in member order.
    pub fn member_views<'a>(&'a self, ch: &'a Channel) -> Vec<impl Serialize + 'a> {
        ch.members.keys().filter_map(|u| self.member_view(ch, u)).collect()
    }

    /// Open connections of a user.
    pub fn conns_of<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a Arc<Conn>> + 'a {
        self.users
            .get(user)
            .into_iter()
            .flat_map(|u| u.conns.iter())
            .filter_map(|id| self.conns.get(id))
    }

    /// The channel object inside states and `notification.message_new`.
    pub fn channel_view<'a>(&'a self, ch: &'a Channel) -> ChannelView<'a> {
        ChannelView {
            w: self,
            ch,
            members: false,
        }
    }

    /// The channel object with its `members` array, as `channel.updated`, `channel.deleted` and
    /// the delete response carry it.
    pub fn channel_view_with_members<'a>(&'a self, ch: &'a Channel) -> ChannelView<'a> {
        ChannelView {
            w: self,
            ch,
            members: true,
        }
    }

    /// The channel state object that query and watch responses carry, as `viewer` sees it.
    pub fn channel_state<'a>(
        &'a self,
        ch: &'a Channel,
        viewer: &'a str,
        read_ignores_privacy: bool,
        message_limit: usize,
    ) -> ChannelState<'a> {
        ChannelState {
            w: self,
            ch,
            viewer,
            read_ignores_privacy,
            message_limit,
        }
    }
}

/// Keys of the channel object the server writes; custom data under these names is not repeated.
const CHANNEL_KEYS: &[&str] = &[
    "id",
    "type",
    "cid",
    "created_at",
    "updated_at",
    "created_by",
    "frozen",
    "disabled",
    "member_count",
    "members",
    "last_message_at",
    "deleted_at",
    "config",
    "own_capabilities",
];

/// The channel object: custom data, then the server's fields.
pub struct ChannelView<'a> {
    w: &'a World,
    ch: &'a Channel,
    members: bool,
}

impl Serialize for ChannelView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ch = self.ch;
        let mut m = s.serialize_map(None)?;
        for (k, v) in ch.data.iter().filter(|(k, _)| !CHANNEL_KEYS.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("id", &*ch.id)?;
        m.serialize_entry("type", &*ch.kind)?;
        m.serialize_entry("cid", &*ch.cid)?;
        m.serialize_entry("created_at", &ch.created_at)?;
        m.serialize_entry("updated_at", &ch.updated_at)?;
        m.serialize_entry("created_by", &self.w.user_ref(&ch.created_by))?;
        m.serialize_entry("frozen", &false)?;
        m.serialize_entry("disabled", &false)?;
        m.serialize_entry("member_count", &ch.members.len())?;
        if self.members {
            m.serialize_entry("members", &self.w.member_views(ch))?;
        }
        if let Some(t) = &ch.last_message_at {
            m.serialize_entry("last_message_at", t)?;
        }
        if let Some(t) = &ch.deleted_at {
            m.serialize_entry("deleted_at", t)?;
        }
        m.serialize_entry("config", &*ch.config)?;
        m.serialize_entry("own_capabilities", wire::OWN_CAPABILITIES)?;
        m.end()
    }
}

/// A channel state (query and watch responses), as one viewer sees it.
pub struct ChannelState<'a> {
    w: &'a World,
    ch: &'a Channel,
    viewer: &'a str,
    read_ignores_privacy: bool,
    message_limit: usize,
}

#[derive(serde::Serialize)]
struct MemberView<'a> {
    user_id: &'a str,
    user: UserRef<'a>,
    created_at: &'a str,
    updated_at: &'a str,
    role: &'static str,
    channel_role: &'static str,
    banned: bool,
    shadow_banned: bool,
}

#[derive(serde::Serialize)]
struct ReadView<'a> {
    user: UserRef<'a>,
    last_read: &'a str,
    unread_messages: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_read_message_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct MembershipView<'a> {
    user_id: &'a str,
    user: UserRef<'a>,
    created_at: &'a str,
    updated_at: &'a str,
    role: &'static str,
    channel_role: &'static str,
}

/// Serializes the items of an iterator as a JSON array without collecting them.
struct Seq<F>(F);

impl<I, F> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

const EMPTY: &[Value] = &[];

impl Serialize for ChannelState<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (w, ch) = (self.w, self.ch);
        // Each member's record looked up once for `members` and `read` both: the users map is
        // as large as the run, and every lookup there is a cache miss or two.
        let recs: Vec<(&str, &Member, UserRef<'_>, bool)> = ch
            .members
            .iter()
            .map(|(uid, mem)| {
                let rec = w.users.get(&**uid);
                let shows_read = &**uid == self.viewer
                    || self.read_ignores_privacy
                    || rec.is_none_or(UserRec::read_receipts_enabled);
                let user = rec.map_or(UserRef::Bare(uid), |u| UserRef::Known(u.raw()));
                (&**uid, mem, user, shows_read)
            })
            .collect();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("channel", &w.channel_view(ch))?;
        let skip = ch.messages.len().saturating_sub(self.message_limit);
        m.serialize_entry("messages", &Seq(|| ch.messages.iter().skip(skip).map(|m| &*m.raw)))?;
        m.serialize_entry("pinned_messages", EMPTY)?;
        m.serialize_entry(
            "members",
            &Seq(|| {
                recs.iter().map(|&(uid, mem, user, _)| MemberView {
                    user_id: uid,
                    user,
                    created_at: &mem.joined_at,
                    updated_at: &mem.joined_at,
                    role: "member",
                    channel_role: "channel_member",
                    banned: false,
                    shadow_banned: false,
                })
            }),
        )?;
        m.serialize_entry(
            "read",
            &Seq(|| {
                recs.iter().filter(|r| r.3).map(|&(_, mem, user, _)| ReadView {
                    user,
                    last_read: &mem.last_read,
                    unread_messages: mem.unread,
                    last_read_message_id: mem.last_read_message_id.as_deref(),
                })
            }),
        )?;
        m.serialize_entry("watcher_count", &ch.watchers.len())?;
        m.serialize_entry("watchers", EMPTY)?;
        m.serialize_entry("threads", EMPTY)?;
        if let Some(&(uid, mem, user, _)) = recs.iter().find(|r| r.0 == self.viewer) {
            m.serialize_entry(
                "membership",
                &MembershipView {
                    user_id: uid,
                    user,
                    created_at: &mem.joined_at,
                    updated_at: &mem.joined_at,
                    role: "member",
                    channel_role: "channel_member",
                },
            )?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).expect("cached user is JSON")
    }

    #[test]
    fn cached_user_json_follows_every_change() {
        let mut u = UserRec::new(Arc::from("a"));
        assert_eq!(parse(u.raw())["online"], false);
        u.connected(ConnId(1));
        assert_eq!(parse(u.raw())["online"], true);
        u.apply_upsert(json!({"name": "A"}).as_object().expect("object"));
        assert_eq!(parse(u.raw())["name"], "A");
        u.apply_partial(json!({"name": "B"}).as_object().expect("object"), &[]);
        assert_eq!(parse(u.raw())["name"], "B");
        assert!(u.disconnected(ConnId(1)));
        assert_eq!(parse(u.raw())["online"], false);
        assert_eq!(parse(u.raw()), u.to_json());
        assert_eq!(u.size(), u.to_json().to_string().len());
    }

    #[test]
    fn channel_state_writes_server_fields_over_custom_data_once() {
        let mut w = World::default();
        let data = json!({"id": "spoofed", "member_count": 99, "color": "red"});
        let creator: Arc<str> = w.user_mut("a").id.clone();
        let cid: Arc<str> = Arc::from("messaging:c");
        let ch = Channel::new("messaging", "c", creator, data.as_object().cloned().expect("object"));
        w.channels.insert(cid.clone(), ch);
        w.add_member(&cid, "a");
        w.add_member(&cid, "b");
        w.user_mut("b").apply_upsert(
            json!({"privacy_settings": {"read_receipts": {"enabled": false}}})
                .as_object()
                .expect("o"),
        );
        let ch = &w.channels[&cid];
        let text = serde_json::to_string(&w.channel_state(ch, "a", false, 25)).expect("serializes");
        assert_eq!(text.matches("\"member_count\"").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["channel"]["id"], "c");
        assert_eq!(v["channel"]["member_count"], 2);
        assert_eq!(v["channel"]["color"], "red");
        assert_eq!(v["channel"]["created_by"]["id"], "a");
        assert_eq!(v["channel"]["config"]["typing_events"], true);
        assert_eq!(v["members"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["membership"]["user_id"], "a");
        // b hides read receipts: only the viewer's own read state is shown.
        let reads: Vec<&str> = v["read"]
            .as_array()
            .expect("read")
            .iter()
            .filter_map(|r| r["user"]["id"].as_str())
            .collect();
        assert_eq!(reads, ["a"]);
        let as_b: Value =
            serde_json::from_str(&serde_json::to_string(&w.channel_state(ch, "b", false, 25)).expect("s")).expect("j");
        assert_eq!(as_b["read"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["watchers"], json!([]));
    }

    #[test]
    fn me_written_from_the_record_equals_the_built_one() {
        let mut u = UserRec::new(Arc::from("a"));
        let check = |u: &UserRec| assert_eq!(parse(&u.me_raw()), u.to_me());
        check(&u);
        u.connected(ConnId(1));
        u.total_unread = 3;
        u.unread_channels = 2;
        check(&u);
        u.apply_upsert(
            json!({"name": "A", "role": "admin", "language": "fr", "teams": ["t"], "invisible": true,
                   "blocked_user_ids": ["x"], "total_unread_count_by_team": {"t": 9}, "color": "red"})
            .as_object()
            .expect("object"),
        );
        check(&u);
        u.set_deactivated(Some("2026-01-01T00:00:00Z".into()));
        check(&u);
        assert_eq!(parse(&u.me_raw())["deactivated_at"], "2026-01-01T00:00:00Z");
        u.set_deactivated(None);
        assert!(parse(u.raw()).get("deactivated_at").is_none());
        assert_eq!(parse(&u.me_raw())["role"], "admin");
        assert_eq!(parse(&u.me_raw())["blocked_user_ids"], json!([]));
    }

    #[test]
    fn upsert_keys_match_in_any_case() {
        let mut u = UserRec::new(Arc::from("a"));
        let up = json!({
            "Id": "a",
            "Name": "Unity A",
            "Created_At": "1999-01-01T00:00:00Z",
            "Privacy_Settings": {"Typing_Indicators": {"Enabled": false}},
            "Favourite": "kept as written",
        });
        u.apply_upsert(up.as_object().expect("object"));
        assert_eq!(u.fields.get("name"), Some(&json!("Unity A")));
        assert!(!u.typing_enabled());
        assert!(
            !u.fields
                .keys()
                .any(|k| k.eq_ignore_ascii_case("id") || k.eq_ignore_ascii_case("created_at"))
        );
        assert_eq!(u.fields.get("Favourite"), Some(&json!("kept as written")));
        assert_ne!(u.to_json()["created_at"], "1999-01-01T00:00:00Z");
    }

    #[test]
    fn privacy_settings_merge_on_upsert_and_partial_update() {
        let mut u = UserRec::new(Arc::from("a"));
        let up = json!({"name": "A", "privacy_settings": {"typing_indicators": {"enabled": false}}});
        u.apply_upsert(up.as_object().expect("object"));
        assert!(!u.typing_enabled());
        assert!(u.read_receipts_enabled());
        let set = json!({"privacy_settings": {"read_receipts": {"enabled": false}}});
        u.apply_partial(set.as_object().expect("object"), &[]);
        assert!(
            !u.typing_enabled(),
            "typing setting survives a partial update of read_receipts"
        );
        assert!(!u.read_receipts_enabled());
        let dotted = json!({"privacy_settings.typing_indicators.enabled": true, "field2.subfield": 1});
        u.apply_partial(dotted.as_object().expect("object"), &["name".to_owned()]);
        assert!(u.typing_enabled());
        assert_eq!(u.fields["field2"], json!({"subfield": 1}));
        assert!(!u.fields.contains_key("name"));
        let me = u.to_me();
        assert_eq!(me["mutes"], json!([]));
        assert_eq!(me["channel_mutes"], json!([]));
        assert_eq!(me["total_unread_count"], 0);
    }
}
