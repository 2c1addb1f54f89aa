//! Owns the channel endpoints: query channels (`POST /channels`, Swift's `GET /channels?payload=`),
//! get-or-create / watch (`POST /channels/{type}/{id}/query`), `stop-watching`, and `POST /sync`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use serde_json::value::RawValue;

use super::{Body, Outcome, caller_conn, check_channel_part, clip, flag};
use crate::app::App;
use crate::auth::{ApiError, Caller};
use crate::exchange::Req;
use crate::fault::Violation;
use crate::proto;
use crate::wire::{self, code};
use crate::world::{Channel, ChannelView, Msg, World};

/// Channels returned by one query at most.
const MAX_LIMIT: usize = 30;
/// Events one `/sync` may return; beyond, the client must re-query (code 4, as the backend's 400).
const MAX_SYNC_EVENTS: usize = 2000;
const THIRTY_DAYS_NANOS: i128 = 30 * 86_400 * 1_000_000_000;

fn binds(app: &App, req: &Req, caller: &Caller, body: &Value) -> Result<Option<Arc<crate::conn::Conn>>, ApiError> {
    if flag(body, "watch") || flag(body, "presence") {
        let conn = caller_conn(app, req, caller)?;
        if flag(body, "presence") {
            conn.presence.store(true, Ordering::Relaxed);
        }
        Ok(flag(body, "watch").then_some(conn))
    } else {
        Ok(None)
    }
}

fn message_limit(body: &Value) -> usize {
    body.pointer("/messages/limit")
        .or_else(|| body.get("message_limit"))
        .and_then(Value::as_u64)
        .unwrap_or(25)
        .min(300) as usize
}

/// `POST /channels` with `filter_conditions`, `sort`, `limit`, `offset`, `watch`, `presence`.
pub fn query_channels(app: &App, req: &Req, caller: &Caller) -> Outcome {
    let body = match req.query.get("payload") {
        Some(p) if req.method == http::Method::GET => serde_json::from_str(p)
            .map_err(|e| ApiError::new(code::INPUT, format!("invalid payload parameter: {e}")))?,
        _ => req.json()?,
    };
    let empty = json!({});
    let filter = body.get("filter_conditions").unwrap_or(&empty);
    if !filter.is_object() {
        return Err(ApiError::new(code::INPUT, "filter_conditions must be an object"));
    }
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .min(MAX_LIMIT as u64) as usize;
    let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let watch_conn = binds(app, req, caller, &body)?;
    let cids: Vec<Arc<str>> = {
        let w = app.world();
        let mut found: Vec<&Channel> = candidates(&w, filter, &caller.user)
            .into_iter()
            .filter(|c| matches(c, filter, &caller.user))
            .collect();
        found.sort_by(|a, b| {
            (b.last_message_at.as_deref(), &b.created_at, &b.cid).cmp(&(
                a.last_message_at.as_deref(),
                &a.created_at,
                &a.cid,
            ))
        });
        found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|c| c.cid.clone())
            .collect()
    };
    if let Some(conn) = watch_conn
        .as_ref()
        .filter(|_| !app.violation(Violation::RecoverWatchIgnored))
    {
        for cid in &cids {
            app.watch(conn, cid);
        }
    }
    let w = app.world();
    let ml = message_limit(&body);
    let ignore = app.violation(Violation::ReadIgnoresPrivacy);
    let channels: Vec<_> = cids
        .iter()
        .filter_map(|cid| w.channels.get(cid))
        .map(|ch| w.channel_state(ch, &caller.user, ignore, ml))
        .collect();
    #[derive(serde::Serialize)]
    struct Channels<T> {
        channels: T,
    }
    let out = wire::to_string(&Channels { channels });
    Ok((201, Body::Raw(out)))
}

/// The channels a filter can match, found through an index when the filter names cids or members
/// (recovery queries after a reconnect storm must not scan every channel).
fn candidates<'a>(w: &'a World, filter: &Value, caller: &str) -> Vec<&'a Channel> {
    let names = |cond: &Value| -> Option<Vec<String>> {
        match cond {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Object(o) => o
                .get("$in")
                .or_else(|| o.get("$eq"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
            _ => None,
        }
    };
    let by_cids = |cids: &mut dyn Iterator<Item = &str>| -> Vec<&'a Channel> {
        let mut out: Vec<&'a Channel> = cids.filter_map(|c| w.channels.get(c)).collect();
        out.sort_by(|a, b| a.cid.cmp(&b.cid));
        out.dedup_by(|a, b| a.cid == b.cid);
        out
    };
    let empty = filter.as_object().is_none_or(|f| f.is_empty());
    if let Some(cids) = filter.get("cid").and_then(names) {
        return by_cids(&mut cids.iter().map(String::as_str));
    }
    let members = if empty {
        Some(vec![caller.to_owned()])
    } else {
        filter.get("members").and_then(names)
    };
    if let Some(users) = members {
        let mut it = users
            .iter()
            .filter_map(|u| w.users.get(u.as_str()))
            .flat_map(|u| u.member_of.iter().map(|c| &**c));
        return by_cids(&mut it);
    }
    w.channels.values().collect()
}

/// The subset of Stream's filter language the mock understands: `cid`, `id`, `type` (a string,
/// `$eq` or `$in`), `members` (a string, `$in` or `$eq`), `$and`, `$or`, and equality on custom
/// data. An empty filter means "channels the caller is a member of".
fn matches(ch: &Channel, filter: &Value, caller: &str) -> bool {
    let Some(f) = filter.as_object() else {
        return false;
    };
    if f.is_empty() {
        return ch.members.contains_key(caller);
    }
    f.iter().all(|(k, cond)| match k.as_str() {
        "cid" => str_cond(&ch.cid, cond),
        "id" => str_cond(&ch.id, cond),
        "type" => str_cond(&ch.kind, cond),
        "members" => member_cond(ch, cond),
        "$and" => cond
            .as_array()
            .is_some_and(|a| a.iter().all(|c| matches(ch, c, caller))),
        "$or" => cond
            .as_array()
            .is_some_and(|a| a.iter().any(|c| matches(ch, c, caller))),
        other => match ch.data.get(other) {
            Some(v) if !cond.is_object() => v == cond,
            Some(v) => cond.get("$eq").is_none_or(|e| e == v),
            None => false,
        },
    })
}

fn str_cond(v: &str, cond: &Value) -> bool {
    match cond {
        Value::String(s) => s == v,
        Value::Object(o) => {
            o.get("$eq").is_none_or(|e| e.as_str() == Some(v))
                && o.get("$in")
                    .is_none_or(|a| a.as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v))))
        }
        _ => false,
    }
}

fn member_cond(ch: &Channel, cond: &Value) -> bool {
    let is_member = |x: &Value| x.as_str().is_some_and(|u| ch.members.contains_key(u));
    match cond {
        Value::String(_) => is_member(cond),
        Value::Object(o) => {
            o.get("$in")
                .is_none_or(|a| a.as_array().is_some_and(|a| a.iter().any(is_member)))
                && o.get("$eq").is_none_or(|a| {
                    a.as_array()
                        .is_some_and(|a| a.len() == ch.members.len() && a.iter().all(is_member))
                })
        }
        _ => false,
    }
}

fn member_ids(data: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = data.get("members") else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        return Err(ApiError::new(code::INPUT, "data.members must be an array"));
    };
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let id = m
            .as_str()
            .or_else(|| m.get("user_id").and_then(Value::as_str))
            .or_else(|| m.pointer("/user/id").and_then(Value::as_str))
            .ok_or_else(|| ApiError::new(code::INPUT, "each of data.members must be a user id or {\"user_id\"}"))?;
        proto::validate_user_id("data.members", id).map_err(|m| ApiError::new(code::INPUT, m))?;
        out.push(id.to_owned());
    }
    Ok(Some(out))
}

/// `POST /channels/{type}/{id}/query` (get-or-create, optionally watch) and `/channels/{type}/query`
/// (create by member list; the id is derived from the members).
pub fn get_or_create(app: &App, req: &Req, caller: &Caller, kind: &str, id: Option<&str>) -> Outcome {
    check_channel_part("channel type", kind)?;
    let body = req.json()?;
    let data: Map<String, Value> = body.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    let members = member_ids(&data)?;
    let id = match id {
        Some(id) => id.to_owned(),
        None => {
            let Some(mut m) = members.clone() else {
                return Err(ApiError::new(code::INPUT, "a channel without an id needs data.members"));
            };
            m.sort();
            m.dedup();
            format!("!members-{:016x}", fnv(&m.join(",")))
        }
    };
    check_channel_part("channel id", &id)?;
    let watch_conn = binds(app, req, caller, &body)?;
    let cid: Arc<str> = Arc::from(format!("{kind}:{id}"));
    let given_creator = created_by(&data)?;
    let added = {
        let mut w = app.world();
        if w.channels.contains_key(&cid) {
            Vec::new()
        } else {
            // A user-token create is the caller's; a server-side one names its creator
            // (`data.created_by` or `data.created_by_id`, as the server SDKs send it).
            let creator = match (given_creator, caller.user.is_empty()) {
                (Some(c), _) => c,
                (None, false) => caller.user.clone(),
                (None, true) => {
                    return Err(ApiError::new(
                        code::INPUT,
                        "either data.created_by or data.created_by_id must be provided when using server side auth.",
                    ));
                }
            };
            proto::validate_user_id("data.created_by.id", &creator).map_err(|m| ApiError::new(code::INPUT, m))?;
            let mut custom = data.clone();
            for k in ["members", "created_by", "created_by_id"] {
                custom.remove(k);
            }
            let creator_id = w.user_mut(&creator).id.clone();
            let ch = Channel::new(kind, &id, creator_id, custom);
            w.channels.insert(cid.clone(), ch);
            // A server-side create without members has none; a user's own create makes it one.
            let list = members.unwrap_or_else(|| {
                if caller.server && caller.user.is_empty() {
                    Vec::new()
                } else {
                    vec![caller.user.clone()]
                }
            });
            let mut added = Vec::with_capacity(list.len());
            for m in list {
                w.add_member(&cid, &m);
                added.push(m);
            }
            added
        }
    };
    // A server-side create tells its members (`notification.added_to_channel` to their
    // connections); a user's own create stays silent, as it always was here.
    if caller.server && !added.is_empty() {
        super::channel_admin::announce_added(app, &cid, &added);
    }
    if let Some(conn) = &watch_conn {
        app.watch(conn, &cid);
    }
    let w = app.world();
    let Some(ch) = w.channels.get(&cid) else {
        return Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("channel {} does not exist", clip(&cid)),
        ));
    };
    let state = w.channel_state(
        ch,
        &caller.user,
        app.violation(Violation::ReadIgnoresPrivacy),
        message_limit(&body),
    );
    Ok((201, Body::Raw(wire::to_string(&state))))
}

/// The creator a server-side create names: `data.created_by` (`{"id"}`) or `data.created_by_id`,
/// not both (code 4, the backend's wording).
fn created_by(data: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let by = data.get("created_by").filter(|v| !v.is_null());
    let by_id = data.get("created_by_id").filter(|v| !v.is_null());
    match (by, by_id) {
        (Some(_), Some(_)) => Err(ApiError::new(
            code::INPUT,
            "cannot set both data.created_by and data.created_by_id.",
        )),
        (Some(v), None) => match v.get("id").and_then(Value::as_str) {
            Some(id) => Ok(Some(id.to_owned())),
            None => Err(ApiError::new(code::INPUT, "data.created_by.id is a required field")),
        },
        (None, Some(v)) => match v.as_str() {
            Some(id) => Ok(Some(id.to_owned())),
            None => Err(ApiError::new(code::INPUT, "data.created_by_id must be a string")),
        },
        (None, None) => Ok(None),
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `POST /channels/{type}/{id}/stop-watching`.
pub fn stop_watching(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let cid: Arc<str> = Arc::from(format!("{kind}:{id}"));
    if !app.world().channels.contains_key(&cid) {
        return Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("channel {} does not exist", clip(&cid)),
        ));
    }
    let conn = caller_conn(app, req, caller)?;
    app.unwatch(&conn, &cid);
    Ok((200, json!({}).into()))
}

/// `POST /sync` `{"channel_cids", "last_sync_at", "watch"?}` → persistent events since then.
pub fn sync(app: &App, req: &Req, caller: &Caller) -> Outcome {
    let body = req.json()?;
    let Some(cids) = body.get("channel_cids").and_then(Value::as_array) else {
        return Err(ApiError::new(code::INPUT, "channel_cids is a required array field"));
    };
    let Some(since) = body
        .get("last_sync_at")
        .and_then(Value::as_str)
        .and_then(wire::parse_rfc3339)
    else {
        return Err(ApiError::new(
            code::INPUT,
            "last_sync_at is required, as an RFC 3339 time",
        ));
    };
    if wire::now_nanos() - since > THIRTY_DAYS_NANOS {
        return Err(ApiError::new(code::INPUT, "last_sync_at is more than 30 days ago"));
    }
    let watch_conn = binds(app, req, caller, &body)?;
    let mut events: Vec<(i128, String)> = Vec::new();
    let mut inaccessible = Vec::new();
    let mut watched = Vec::new();
    {
        let w = app.world();
        for cid in cids {
            let Some(cid) = cid.as_str() else { continue };
            let Some(ch) = w.channels.get(cid) else {
                inaccessible.push(cid.to_owned());
                continue;
            };
            watched.push(ch.cid.clone());
            for m in ch.messages.iter().filter(|m| m.nanos > since) {
                events.push((m.nanos, MessageNew::new(&w, ch, m).for_viewer(&w, ch, &caller.user)));
            }
            if events.len() > MAX_SYNC_EVENTS {
                return Err(ApiError::new(
                    code::INPUT,
                    format!("too many events since last_sync_at (over {MAX_SYNC_EVENTS})"),
                ));
            }
        }
    }
    if let Some(conn) = &watch_conn {
        for cid in &watched {
            app.watch(conn, cid);
        }
    }
    events.sort_by_key(|(t, _)| *t);
    let mut out = String::from("{\"events\":[");
    for (i, (_, e)) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("],\"inaccessible_cids\":");
    out.push_str(&wire::to_string(&inaccessible));
    out.push('}');
    Ok((201, Body::Raw(out)))
}

/// A `message.new` event, serialized once up to the per-recipient unread counters: the common
/// part is shared and each recipient user costs only its three numbers.
pub struct MessageNew {
    /// The event without its closing brace.
    head: String,
}

#[derive(serde::Serialize)]
struct MessageNewFields<'a> {
    message_id: &'a str,
    message: &'a RawValue,
    watcher_count: usize,
    channel_member_count: usize,
    channel_message_count: u64,
    channel_custom: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<ChannelView<'a>>,
}

impl MessageNew {
    /// `message.new` of `m` in `ch`.
    pub fn new(w: &World, ch: &Channel, m: &Msg) -> Self {
        Self::build(w, ch, m, "message.new", None)
    }

    /// `notification.message_new` (to members who do not watch): the channel object included.
    pub fn notification(w: &World, ch: &Channel, m: &Msg) -> Self {
        Self::build(w, ch, m, "notification.message_new", Some(w.channel_view(ch)))
    }

    fn build(w: &World, ch: &Channel, m: &Msg, kind: &str, channel: Option<ChannelView<'_>>) -> Self {
        let ev = wire::ChannelEvent {
            kind,
            cid: &ch.cid,
            channel_id: &ch.id,
            channel_type: &ch.kind,
            user: w.user_ref(&m.author),
            created_at: &m.created_at,
            extra: MessageNewFields {
                message_id: &m.id,
                message: &m.raw,
                watcher_count: ch.watchers.len(),
                channel_member_count: ch.members.len(),
                channel_message_count: ch.message_count,
                channel_custom: &ch.data,
                channel,
            },
        };
        let mut head = wire::to_string(&ev);
        head.pop();
        MessageNew { head }
    }

    /// The event as `viewer` receives it (unread counters are per recipient).
    pub fn for_viewer(&self, w: &World, ch: &Channel, viewer: &str) -> String {
        use std::fmt::Write;
        let (unread, total, chans) = unread_of(w, ch, viewer);
        let mut s = String::with_capacity(self.head.len() + 80);
        s.push_str(&self.head);
        let _ = write!(
            s,
            ",\"unread_count\":{unread},\"total_unread_count\":{total},\"unread_channels\":{chans}}}"
        );
        s
    }
}

/// (unread in this channel, total unread, unread channels) of `user`.
pub fn unread_of(w: &World, ch: &Channel, user: &str) -> (u32, u32, u32) {
    let here = ch.members.get(user).map_or(0, |m| m.unread);
    let (total, chans) = w
        .users
        .get(user)
        .map_or((0, 0), |u| (u.total_unread, u.unread_channels));
    (here, total, chans)
}
