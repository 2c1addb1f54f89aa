//! Owns the channel actions that fan out: typing and custom events (`/event`), mark read (`/read`)
//! and new messages (`/message`), with the privacy rules of PROTOCOL.md's decisions table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::channels::{message_new, unread_of};
use super::{Outcome, clip};
use crate::app::App;
use crate::auth::{ApiError, Caller};
use crate::conn::Conn;
use crate::fault::Violation;
use crate::http::Req;
use crate::wire::{self, code};
use crate::world::{Channel, MESSAGES_KEPT, World};

/// Event type prefixes only the server may emit.
const RESERVED_PREFIXES: &[&str] = &[
    "message.",
    "health.",
    "connection.",
    "user.",
    "channel.",
    "member.",
    "notification.",
    "reaction.",
    "poll.",
    "thread.",
];

fn channel<'a>(w: &'a World, cid: &str) -> Result<&'a Channel, ApiError> {
    w.channels
        .get(cid)
        .ok_or_else(|| ApiError::new(code::DOES_NOT_EXIST, format!("channel {} does not exist", clip(cid))))
}

fn acting_user(caller: &Caller, body: &Value) -> Result<String, ApiError> {
    if !caller.user.is_empty() {
        return Ok(caller.user.clone());
    }
    body.get("user_id")
        .or_else(|| body.pointer("/user/id"))
        .or_else(|| body.pointer("/event/user/id"))
        .or_else(|| body.pointer("/message/user/id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::new(code::INPUT, "a server-side call needs user_id"))
}

fn watcher_conns(w: &World, ch: &Channel) -> Vec<Arc<Conn>> {
    ch.watchers.iter().filter_map(|id| w.conns.get(id).cloned()).collect()
}

/// `POST /channels/{type}/{id}/event` `{"event": {"type": …}}`. Typing from a user whose typing
/// indicators are off is echoed (201) but fanned out to no one.
pub fn send_event(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let Some(input) = body.get("event").and_then(Value::as_object) else {
        return Err(ApiError::new(code::INPUT, "event is a required object field"));
    };
    let ty = match input.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => return Err(ApiError::new(code::INPUT, "event.type is a required field")),
    };
    let typing = ty == "typing.start" || ty == "typing.stop";
    if !typing && RESERVED_PREFIXES.iter().any(|p| ty.starts_with(p)) {
        return Err(ApiError::new(
            18,
            format!("event type \"{}\" is not supported", clip(&ty)),
        ));
    }
    let user = acting_user(caller, &body)?;
    let cid = format!("{kind}:{id}");
    let w = app.world();
    let ch = channel(&w, &cid)?;
    let mut ev = wire::channel_event(&ty, &ch.cid, &ch.kind, &ch.id, w.user_json(&user));
    for (k, v) in input {
        if !matches!(
            k.as_str(),
            "type" | "cid" | "channel_id" | "channel_type" | "user" | "created_at"
        ) {
            ev.insert(k.clone(), v.clone());
        }
    }
    let ev = Value::Object(ev);
    let suppressed = typing
        && !app.violation(Violation::TypingIgnoresPrivacy)
        && !w.users.get(user.as_str()).is_none_or(|u| u.typing_enabled());
    let mut to = if suppressed { Vec::new() } else { watcher_conns(&w, ch) };
    if app.violation(Violation::NoSenderFanout) {
        to.retain(|c| *c.user != *user);
    }
    drop(w);
    app.deliver(&to, &ev.to_string().into());
    Ok((201, json!({ "event": ev })))
}

/// `POST /channels/{type}/{id}/read` `{}` or `{"message_id"?, "thread_id"?}`. With read receipts
/// off, other users get no `message.read` and the reader still gets `notification.mark_read`.
pub fn mark_read(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let user = acting_user(caller, &body)?;
    let cid = format!("{kind}:{id}");
    let message_id = body.get("message_id").and_then(Value::as_str).map(str::to_owned);
    let thread_id = body.get("thread_id").and_then(Value::as_str).map(str::to_owned);
    let mut w = app.world();
    let w = &mut *w;
    let Some(ch) = w.channels.get_mut(cid.as_str()) else {
        return Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("channel {} does not exist", clip(&cid)),
        ));
    };
    let latest = ch
        .messages
        .back()
        .and_then(|(_, m)| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(member) = ch.members.get_mut(user.as_str()) else {
        return Err(ApiError::new(
            code::NOT_ALLOWED,
            format!("user \"{user}\" is not a member of channel {}", clip(&cid)),
        ));
    };
    let was_unread = member.unread;
    member.unread = 0;
    member.last_read = wire::now();
    member.last_read_message_id = message_id.or(latest);
    let last_read_message_id = member.last_read_message_id.clone();
    if let Some(u) = w.users.get_mut(user.as_str()) {
        u.total_unread = u.total_unread.saturating_sub(was_unread);
        if was_unread > 0 {
            u.unread_channels = u.unread_channels.saturating_sub(1);
        }
    }
    let ch = channel(w, &cid)?;
    let mut ev = wire::channel_event("message.read", &ch.cid, &ch.kind, &ch.id, w.user_json(&user));
    if let Some(m) = &last_read_message_id {
        ev.insert("last_read_message_id".into(), m.clone().into());
    }
    if let Some(t) = &thread_id {
        ev.insert("thread".into(), json!({"parent_message_id": t}));
    }
    let ev = Value::Object(ev);
    let receipts = app.violation(Violation::ReadIgnoresPrivacy)
        || w.users.get(user.as_str()).is_none_or(|u| u.read_receipts_enabled());
    let no_self = app.violation(Violation::NoSenderFanout);
    let watchers: Vec<Arc<Conn>> = watcher_conns(w, ch)
        .into_iter()
        .filter(|c| if *c.user == *user { !no_self } else { receipts })
        .collect();
    let own: Vec<Arc<Conn>> = if app.violation(Violation::NoMarkReadToSelf) {
        Vec::new()
    } else {
        w.conns_of(&user).cloned().collect()
    };
    let (unread, total, chans) = unread_of(w, ch, &user);
    let mut note = json!({
        "type": "notification.mark_read",
        "created_at": wire::now(),
        "user": w.user_json(&user),
        "cid": &*ch.cid,
        "channel_type": &*ch.kind,
        "channel_id": &*ch.id,
        "unread_count": unread,
        "total_unread_count": total,
        "unread_channels": chans,
        "unread_threads": 0,
    });
    if let Some(o) = note.as_object_mut() {
        if let Some(m) = &last_read_message_id {
            o.insert("last_read_message_id".into(), m.clone().into());
        }
        if let Some(t) = &thread_id {
            o.insert("thread_id".into(), t.clone().into());
        }
    }
    app.deliver(&watchers, &ev.to_string().into());
    app.deliver(&own, &note.to_string().into());
    Ok((201, json!({ "event": ev })))
}

/// `POST /channels/{type}/{id}/message` `{"message": {"id"?, "text", "parent_id"?, …}}`:
/// `message.new` to watchers (the sender included), `notification.message_new` to members who
/// have connections but do not watch.
pub fn send_message(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let Some(input) = body.get("message").and_then(Value::as_object) else {
        return Err(ApiError::new(code::INPUT, "message is a required object field"));
    };
    let user = acting_user(caller, &body)?;
    let text = match input.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= 5000 => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::new(20, "message text is longer than 5000 characters"));
        }
        Some(_) => return Err(ApiError::new(code::INPUT, "message.text must be a string")),
    };
    let cid = format!("{kind}:{id}");
    let mut w = app.world();
    let w = &mut *w;
    let msg_id = match input.get("id").and_then(Value::as_str) {
        Some(m) if !m.is_empty() && m.len() <= 255 => m.to_owned(),
        Some(_) => {
            return Err(ApiError::new(code::INPUT, "message.id must be 1 to 255 characters"));
        }
        None => app.ids.next().to_string(),
    };
    let ch = channel(w, &cid)?;
    if ch
        .messages
        .iter()
        .any(|(_, m)| m.get("id").and_then(Value::as_str) == Some(msg_id.as_str()))
    {
        return Err(ApiError::new(
            code::INPUT,
            format!("a message with id {} already exists", clip(&msg_id)),
        ));
    }
    let now_n = wire::now_nanos();
    let now = wire::rfc3339(now_n);
    let mut m: Map<String, Value> = input.clone();
    for (k, v) in [
        ("id", Value::from(msg_id.clone())),
        ("text", text.clone().into()),
        ("html", format!("<p>{}</p>\n", escape(&text)).into()),
        ("type", "regular".into()),
        ("user", w.user_json(&user)),
        ("cid", cid.clone().into()),
        ("created_at", now.clone().into()),
        ("updated_at", now.clone().into()),
        ("reply_count", 0.into()),
        ("deleted_reply_count", 0.into()),
        ("latest_reactions", json!([])),
        ("own_reactions", json!([])),
        ("reaction_counts", json!({})),
        ("reaction_scores", json!({})),
        ("shadowed", false.into()),
        ("silent", input.get("silent").cloned().unwrap_or(false.into())),
        ("pinned", false.into()),
    ] {
        m.insert(k.to_owned(), v);
    }
    for k in ["attachments", "mentioned_users"] {
        m.entry(k).or_insert_with(|| json!([]));
    }
    let message = Value::Object(m);
    let Some(ch) = w.channels.get_mut(cid.as_str()) else {
        return Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("channel {} does not exist", clip(&cid)),
        ));
    };
    ch.messages.push_back((now_n, message.clone()));
    while ch.messages.len() > MESSAGES_KEPT {
        ch.messages.pop_front();
    }
    ch.message_count += 1;
    ch.last_message_at = Some(now);
    let mut newly_unread = Vec::new();
    for (uid, mem) in ch.members.iter_mut().filter(|(uid, _)| ***uid != *user) {
        if mem.unread == 0 {
            newly_unread.push(uid.clone());
        }
        mem.unread += 1;
    }
    let others: Vec<Arc<str>> = ch.members.keys().filter(|uid| ***uid != *user).cloned().collect();
    for uid in &others {
        if let Some(u) = w.users.get_mut(uid) {
            u.total_unread += 1;
            if newly_unread.contains(uid) {
                u.unread_channels += 1;
            }
        }
    }
    let ch = channel(w, &cid)?;
    // One serialization per recipient user: the unread counters differ per user.
    let mut by_user: BTreeMap<Arc<str>, Vec<Arc<Conn>>> = BTreeMap::new();
    for c in watcher_conns(w, ch) {
        by_user.entry(c.user.clone()).or_default().push(c);
    }
    let mut out: Vec<(Vec<Arc<Conn>>, String)> = Vec::new();
    for (uid, conns) in &by_user {
        out.push((conns.clone(), message_new(w, ch, &message, uid).to_string()));
    }
    let channel_obj = w
        .channel_state(ch, "", false, 0)
        .get("channel")
        .cloned()
        .unwrap_or(Value::Null);
    for uid in ch.members.keys().filter(|u| !by_user.contains_key(*u)) {
        let conns: Vec<Arc<Conn>> = w.conns_of(uid).cloned().collect();
        if conns.is_empty() {
            continue;
        }
        let mut ev = message_new(w, ch, &message, uid);
        if let Some(o) = ev.as_object_mut() {
            o.insert("type".into(), "notification.message_new".into());
            o.insert("channel".into(), channel_obj.clone());
        }
        out.push((conns, ev.to_string()));
    }
    for (to, frame) in out {
        app.deliver(&to, &frame.into());
    }
    Ok((201, json!({ "message": message })))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
