//! Owns the channel calls a chat backend makes besides create and send: full update and member
//! changes (`POST /channels/{type}/{id}`), partial update (`PATCH`), delete (`DELETE`), get one
//! message (`GET /messages/{id}`), and the events they cause: `member.added`, `member.removed`,
//! `channel.updated`, `channel.deleted` to the channel's watchers, and
//! `notification.added_to_channel`, `notification.removed_from_channel`,
//! `notification.channel_deleted` to the members' connections that do not watch it
//! (mock-server/README.md, "Server-side REST").

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Body, Outcome, clip};
use crate::app::App;
use crate::auth::{ApiError, Caller};
use crate::conn::Conn;
use crate::exchange::Req;
use crate::proto;
use crate::wire::{self, code};
use crate::world::{Channel, ChannelView, UserRef, World};

/// Members one update may add or remove (the backend's batch bound).
const MAX_MEMBER_CHANGES: usize = 100;

fn not_found(cid: &str) -> ApiError {
    ApiError::new(code::DOES_NOT_EXIST, format!("channel {} does not exist", clip(cid)))
}

/// The backend's permission refusal (code 17), worded as its policy checks word it.
fn not_allowed(user: &str, action: &str, kind: &str) -> ApiError {
    ApiError::new(
        code::NOT_ALLOWED,
        format!(
            "User '{}' with role 'user' is not allowed to perform action {action} in scope '{}'",
            clip(user),
            clip(kind)
        ),
    )
}

/// User-token callers may change only channels they belong to (members or the creator); a
/// server token may change any.
fn may_change(caller: &Caller, ch: &Channel, action: &str) -> Result<(), ApiError> {
    if caller.server || ch.members.contains_key(caller.user.as_str()) || *ch.created_by == *caller.user {
        Ok(())
    } else {
        Err(not_allowed(&caller.user, action, &ch.kind))
    }
}

/// User ids from `add_members` / `remove_members`: strings or `{"user_id"}` objects.
fn id_list(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    let Some(v) = body.get(key).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(list) = v.as_array() else {
        return Err(ApiError::new(code::INPUT, format!("{key} must be an array")));
    };
    if list.len() > MAX_MEMBER_CHANGES {
        return Err(ApiError::new(
            code::INPUT,
            format!("{key} has more than {MAX_MEMBER_CHANGES} items"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let id = m
            .as_str()
            .or_else(|| m.get("user_id").and_then(Value::as_str))
            .ok_or_else(|| {
                ApiError::new(
                    code::INPUT,
                    format!("each of {key} must be a user id or {{\"user_id\"}}"),
                )
            })?;
        proto::validate_user_id(key, id).map_err(|m| ApiError::new(code::INPUT, m))?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// The acting user of a server-side call when it names one (`user_id` in the body or the query).
fn actor(caller: &Caller, body: &Value) -> Option<String> {
    if !caller.user.is_empty() {
        return Some(caller.user.clone());
    }
    body.get("user_id")
        .or_else(|| body.pointer("/user/id"))
        .or_else(|| body.pointer("/message/user_id"))
        .or_else(|| body.pointer("/message/user/id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[derive(Serialize)]
struct MemberFields<M: Serialize> {
    member: M,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_last_message_at: Option<String>,
}

/// `notification.added_to_channel` / `removed_from_channel` / `channel_deleted`: the channel
/// object carried whole, for a client that does not watch it.
#[derive(Serialize)]
struct Note<'a, M: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    cid: &'a str,
    channel_id: &'a str,
    channel_type: &'a str,
    channel: ChannelView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<M>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserRef<'a>>,
    created_at: &'a str,
}

/// `channel.updated` / `channel.deleted`.
#[derive(Serialize)]
struct ChannelChanged<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    cid: &'a str,
    channel_id: &'a str,
    channel_type: &'a str,
    channel: ChannelView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_member_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserRef<'a>>,
    created_at: &'a str,
}

/// Connections of `user` that do not watch `ch`.
fn unwatching<'a>(w: &'a World, ch: &'a Channel, user: &'a str) -> impl Iterator<Item = &'a Arc<Conn>> + 'a {
    w.conns_of(user).filter(move |c| !ch.watchers.contains_key(&c.id))
}

/// `member.added` for each of `added` to the watchers of `cid`, and `notification.added_to_channel`
/// to each added user's connections that do not watch it (a server-side create announces its
/// members this way too).
pub fn announce_added(app: &App, cid: &str, added: &[String]) {
    let w = app.world();
    let Some(ch) = w.channels.get(cid) else { return };
    let now = wire::now();
    for uid in added {
        announce_member(
            app,
            &w,
            ch,
            uid,
            &now,
            ("member.added", "notification.added_to_channel"),
            ch.last_message_at.clone(),
        );
    }
}

/// One member's change announced: `member.added` / `member.removed` (`kinds.0`) to the watchers
/// of `ch`, and `notification.added_to_channel` / `removed_from_channel` (`kinds.1`) to the
/// member's connections that do not watch it. Nothing is written for no one: a run's setup
/// creates thousands of channels, unwatched and with their members not yet connected.
fn announce_member(
    app: &App,
    w: &World,
    ch: &Channel,
    uid: &str,
    now: &str,
    kinds: (&'static str, &'static str),
    channel_last_message_at: Option<String>,
) {
    let Some(member) = w.member_view(ch, uid) else { return };
    if !ch.watchers.is_empty() {
        let ev = wire::to_string(&wire::ChannelEvent {
            kind: kinds.0,
            cid: &ch.cid,
            channel_id: &ch.id,
            channel_type: &ch.kind,
            user: w.user_ref(uid),
            created_at: now,
            extra: MemberFields {
                member,
                channel_last_message_at,
            },
        });
        app.deliver_each(ch.watchers.values(), &Utf8Bytes::from(ev));
    }
    if unwatching(w, ch, uid).next().is_none() {
        return;
    }
    let note = wire::to_string(&Note {
        kind: kinds.1,
        cid: &ch.cid,
        channel_id: &ch.id,
        channel_type: &ch.kind,
        channel: w.channel_view(ch),
        member: w.member_view(ch, uid),
        user: Some(w.user_ref(uid)),
        created_at: now,
    });
    app.deliver_each(unwatching(w, ch, uid), &Utf8Bytes::from(note));
}

/// `channel.updated` to the watchers of `cid`, by `actor` when the call named one.
fn announce_updated(app: &App, cid: &str, actor: Option<&str>) {
    let w = app.world();
    let Some(ch) = w.channels.get(cid) else { return };
    let now = wire::now();
    let ev = wire::to_string(&ChannelChanged {
        kind: "channel.updated",
        cid: &ch.cid,
        channel_id: &ch.id,
        channel_type: &ch.kind,
        channel: w.channel_view_with_members(ch),
        channel_member_count: Some(ch.members.len()),
        user: actor.map(|a| w.user_ref(a)),
        created_at: &now,
    });
    app.deliver_each(ch.watchers.values(), &Utf8Bytes::from(ev));
}

/// Removes `removed` from `cid`: `member.removed` to the watchers (the removed user's own
/// watching connections included) and `notification.removed_from_channel` to the removed user's
/// connections that do not watch it, each sent while the member is still listed. Returns how many
/// were members.
fn remove_members(app: &App, cid: &str, removed: &[String]) -> usize {
    let mut guard = app.world();
    let now = wire::now();
    let mut count = 0;
    for uid in removed {
        let w = &*guard;
        let Some(ch) = w.channels.get(cid) else { return count };
        if !ch.members.contains_key(uid.as_str()) {
            continue;
        }
        count += 1;
        announce_member(
            app,
            w,
            ch,
            uid,
            &now,
            ("member.removed", "notification.removed_from_channel"),
            None,
        );
        guard.remove_member(cid, uid);
    }
    count
}

/// `{"channel": {…}, "members": […]}`, the answer of every update.
fn update_reply(app: &App, cid: &str) -> Result<Body, ApiError> {
    #[derive(Serialize)]
    struct Reply<'a, M: Serialize> {
        channel: ChannelView<'a>,
        members: Vec<M>,
    }
    let w = app.world();
    let ch = w.channels.get(cid).ok_or_else(|| not_found(cid))?;
    Ok(Body::Raw(wire::to_string(&Reply {
        channel: w.channel_view(ch),
        members: w.member_views(ch),
    })))
}

/// `POST /channels/{type}/{id}` `{"data"?, "add_members"?, "remove_members"?, "message"?}`:
/// `data` replaces the channel's custom data (a full update), members are added then removed.
/// Events: `member.added` / `member.removed` per member, then one `channel.updated`.
pub fn update(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let cid = format!("{kind}:{id}");
    let data = match body.get("data").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err(ApiError::new(code::INPUT, "data must be an object")),
    };
    let add = id_list(&body, "add_members")?;
    let remove = id_list(&body, "remove_members")?;
    let actor = actor(caller, &body);
    let added: Vec<String> = {
        let mut w = app.world();
        let ch = w.channels.get(cid.as_str()).ok_or_else(|| not_found(&cid))?;
        let action = if data.is_some() {
            "UpdateChannel"
        } else {
            "UpdateChannelMembers"
        };
        may_change(caller, ch, action)?;
        // A distinct channel's id is its member list: no one may join it later.
        if !add.is_empty() && ch.id.starts_with("!members-") && add.iter().any(|u| !ch.members.contains_key(u.as_str()))
        {
            return Err(ApiError::new(
                code::NOT_ALLOWED,
                "cannot add members to the distinct channel they don't belong to, please create a new distinct channel with the desired members",
            ));
        }
        let new: Vec<String> = add
            .iter()
            .filter(|u| !ch.members.contains_key(u.as_str()))
            .cloned()
            .collect();
        let cid_arc = ch.cid.clone();
        if let Some(mut d) = data.clone() {
            for k in ["members", "created_by", "created_by_id"] {
                d.remove(k);
            }
            if let Some(ch) = w.channels.get_mut(cid.as_str()) {
                ch.data = d;
                ch.updated_at = wire::now();
            }
        }
        for u in &new {
            w.add_member(&cid_arc, u);
        }
        new
    };
    announce_added(app, &cid, &added);
    let removed = remove_members(app, &cid, &remove);
    if data.is_some() || !added.is_empty() || removed > 0 {
        announce_updated(app, &cid, actor.as_deref());
    }
    Ok((201, update_reply(app, &cid)?))
}

/// `PATCH /channels/{type}/{id}` `{"set": {…}, "unset": […]}`: custom fields set and removed,
/// then `channel.updated` to the watchers.
pub fn update_partial(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let cid = format!("{kind}:{id}");
    let empty = Map::new();
    let set = match body.get("set") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::new(code::INPUT, "set must be an object")),
    };
    let unset: Vec<&str> = match body.get("unset") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(ApiError::new(code::INPUT, "unset must be an array")),
    };
    {
        let mut w = app.world();
        let ch = w.channels.get_mut(cid.as_str()).ok_or_else(|| not_found(&cid))?;
        may_change(caller, ch, "UpdateChannel")?;
        for (k, v) in set
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "members" | "created_by" | "created_by_id"))
        {
            ch.data.insert(k.clone(), v.clone());
        }
        for k in unset {
            ch.data.remove(k);
        }
        ch.updated_at = wire::now();
    }
    announce_updated(app, &cid, actor(caller, &body).as_deref());
    Ok((200, update_reply(app, &cid)?))
}

/// `DELETE /channels/{type}/{id}` (`hard_delete` in the query): the channel leaves the world
/// (soft and hard alike; a later get-or-create makes a new one). `channel.deleted` to its
/// watchers, `notification.channel_deleted` to members' connections that do not watch it; the
/// answer is `{"channel": {…, "deleted_at", "members"}}`.
pub fn delete(app: &App, _req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let cid = format!("{kind}:{id}");
    let mut w = app.world();
    {
        let ch = w.channels.get(cid.as_str()).ok_or_else(|| not_found(&cid))?;
        if !caller.server && *ch.created_by != *caller.user {
            return Err(not_allowed(&caller.user, "DeleteChannel", &ch.kind));
        }
    }
    let Some(mut ch) = w.remove_channel(&cid) else {
        return Err(not_found(&cid));
    };
    let now = wire::now();
    ch.deleted_at = Some(now.clone());
    ch.updated_at = now.clone();
    let view = |kind: &'static str, w: &World, ch: &Channel| {
        wire::to_string(&ChannelChanged {
            kind,
            cid: &ch.cid,
            channel_id: &ch.id,
            channel_type: &ch.kind,
            channel: w.channel_view_with_members(ch),
            channel_member_count: None,
            user: None,
            created_at: &now,
        })
    };
    let w = &*w;
    app.deliver_each(ch.watchers.values(), &Utf8Bytes::from(view("channel.deleted", w, &ch)));
    let mut note: Option<Utf8Bytes> = None;
    for uid in ch.members.keys() {
        if unwatching(w, &ch, uid).next().is_none() {
            continue;
        }
        let note = note.get_or_insert_with(|| Utf8Bytes::from(view("notification.channel_deleted", w, &ch)));
        app.deliver_each(unwatching(w, &ch, uid), note);
    }
    #[derive(Serialize)]
    struct Reply<'a> {
        channel: ChannelView<'a>,
    }
    Ok((
        200,
        Body::Raw(wire::to_string(&Reply {
            channel: w.channel_view_with_members(&ch),
        })),
    ))
}

/// `GET /messages/{id}` → `{"message": {…}}` from the kept messages of any channel (code 16 when
/// none has it; a user-token caller must be a member of its channel, code 17).
pub fn get_message(app: &App, _req: &Req, caller: &Caller, id: &str) -> Outcome {
    let w = app.world();
    for ch in w.channels.values() {
        if let Some(m) = ch.messages.iter().find(|m| m.id == id) {
            if !caller.server && !ch.members.contains_key(caller.user.as_str()) {
                return Err(not_allowed(&caller.user, "ReadChannel", &ch.kind));
            }
            return Ok((200, Body::Raw(format!("{{\"message\":{}}}", m.raw.get()))));
        }
    }
    Err(ApiError::new(
        code::DOES_NOT_EXIST,
        format!("message with id {} does not exist", clip(id)),
    ))
}
