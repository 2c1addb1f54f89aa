//! Owns the channel actions that fan out: typing and custom events (`/event`), mark read (`/read`)
//! and new messages (`/message`), with the privacy rules of PROTOCOL.md's decisions table.

use std::collections::HashMap;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::channels::{MessageNew, unread_of};
use super::{Body, Outcome, clip};
use crate::app::App;
use crate::auth::{ApiError, Caller};
use crate::conn::Conn;
use crate::exchange::Req;
use crate::fault::Violation;
use crate::wire::{self, code};
use crate::world::{Channel, Msg, UserRef, World};

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

/// The user a call acts as: the caller's, or for a server-side call the one the body names
/// (`object` is where the SDKs put it: `message`, `event`, or the body itself for mark read),
/// refused with the backend's wording when absent.
fn acting_user(caller: &Caller, body: &Value, object: Option<&str>) -> Result<String, ApiError> {
    if !caller.user.is_empty() {
        return Ok(caller.user.clone());
    }
    body.get("user_id")
        .or_else(|| body.pointer("/user/id"))
        .or_else(|| body.pointer("/event/user/id"))
        .or_else(|| body.pointer("/event/user_id"))
        .or_else(|| body.pointer("/message/user/id"))
        .or_else(|| body.pointer("/message/user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            let (user, user_id) = match object {
                Some(o) => (format!("{o}.user"), format!("{o}.user_id")),
                None => ("user".to_owned(), "user_id".to_owned()),
            };
            ApiError::new(
                code::INPUT,
                format!("either {user} or {user_id} must be provided when using server side auth."),
            )
        })
}

/// The extra fields of a custom or typing event: what the client sent, less the fields the server
/// writes itself.
struct ClientFields<'a>(&'a Map<String, Value>);

impl Serialize for ClientFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "type" | "cid" | "channel_id" | "channel_type" | "user" | "created_at"
            )
        }) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `{"event": …}` around an event already serialized.
fn event_reply(ev: &str) -> Body {
    let mut out = String::with_capacity(ev.len() + 10);
    out.push_str("{\"event\":");
    out.push_str(ev);
    out.push('}');
    Body::Raw(out)
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
            code::EVENT_NOT_SUPPORTED,
            format!("event type \"{}\" is not supported", clip(&ty)),
        ));
    }
    let user = acting_user(caller, &body, Some("event"))?;
    let cid = format!("{kind}:{id}");
    let w = app.world();
    let ch = channel(&w, &cid)?;
    let ev = wire::to_string(&wire::ChannelEvent {
        kind: &ty,
        cid: &ch.cid,
        channel_id: &ch.id,
        channel_type: &ch.kind,
        user: w.user_ref(&user),
        created_at: &wire::now(),
        extra: ClientFields(input),
    });
    let suppressed = typing
        && !app.violation(Violation::TypingIgnoresPrivacy)
        && !w.users.get(user.as_str()).is_none_or(|u| u.typing_enabled());
    if !suppressed {
        let no_self = app.violation(Violation::NoSenderFanout);
        let frame = Utf8Bytes::from(ev.clone());
        app.deliver_each(ch.watchers.values().filter(|c| !no_self || *c.user != *user), &frame);
    }
    drop(w);
    Ok((201, event_reply(&ev)))
}

/// `POST /channels/{type}/{id}/read` `{}` or `{"message_id"?, "thread_id"?}`. With read receipts
/// off, other users get no `message.read` and the reader still gets `notification.mark_read`.
pub fn mark_read(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let user = acting_user(caller, &body, None)?;
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
    let latest = ch.latest_message_id().map(str::to_owned);
    let last_read_message_id = match ch.members.get_mut(user.as_str()) {
        Some(member) => {
            let was_unread = member.unread;
            member.unread = 0;
            member.last_read = wire::now();
            member.last_read_message_id = message_id.or(latest);
            let last = member.last_read_message_id.clone();
            if let Some(u) = w.users.get_mut(user.as_str()) {
                u.total_unread = u.total_unread.saturating_sub(was_unread);
                if was_unread > 0 {
                    u.unread_channels = u.unread_channels.saturating_sub(1);
                }
            }
            last
        }
        // Server-side auth skips the membership check, as it does for send message: the read
        // is announced, and a non-member has no read state to keep.
        None if caller.server => message_id.or(latest),
        None => {
            return Err(ApiError::new(
                code::NOT_ALLOWED,
                format!("user \"{user}\" is not a member of channel {}", clip(&cid)),
            ));
        }
    };
    let ch = channel(w, &cid)?;
    let now = wire::now();
    let ev = wire::to_string(&wire::ChannelEvent {
        kind: "message.read",
        cid: &ch.cid,
        channel_id: &ch.id,
        channel_type: &ch.kind,
        user: w.user_ref(&user),
        created_at: &now,
        extra: wire::ReadFields {
            last_read_message_id: last_read_message_id.as_deref(),
            thread: thread_id.as_deref().map(|t| wire::ThreadRef { parent_message_id: t }),
        },
    });
    let receipts = app.violation(Violation::ReadIgnoresPrivacy)
        || w.users.get(user.as_str()).is_none_or(|u| u.read_receipts_enabled());
    let no_self = app.violation(Violation::NoSenderFanout);
    let (unread, total, chans) = unread_of(w, ch, &user);
    #[derive(serde::Serialize)]
    struct MarkReadNote<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        created_at: &'a str,
        user: UserRef<'a>,
        cid: &'a str,
        channel_type: &'a str,
        channel_id: &'a str,
        unread_count: u32,
        total_unread_count: u32,
        unread_channels: u32,
        unread_threads: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_read_message_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thread_id: Option<&'a str>,
    }
    let note = wire::to_string(&MarkReadNote {
        kind: "notification.mark_read",
        created_at: &now,
        user: w.user_ref(&user),
        cid: &ch.cid,
        channel_type: &ch.kind,
        channel_id: &ch.id,
        unread_count: unread,
        total_unread_count: total,
        unread_channels: chans,
        unread_threads: 0,
        last_read_message_id: last_read_message_id.as_deref(),
        thread_id: thread_id.as_deref(),
    });
    let frame = Utf8Bytes::from(ev.clone());
    app.deliver_each(
        ch.watchers
            .values()
            .filter(|c| if *c.user == *user { !no_self } else { receipts }),
        &frame,
    );
    if !app.violation(Violation::NoMarkReadToSelf) {
        app.deliver_each(w.conns_of(&user), &note.into());
    }
    Ok((201, event_reply(&ev)))
}

/// `POST /channels/{type}/{id}/message` `{"message": {"id"?, "text", "parent_id"?, …}}`:
/// `message.new` to watchers (the sender included), `notification.message_new` to members who
/// have connections but do not watch.
pub fn send_message(app: &App, req: &Req, caller: &Caller, kind: &str, id: &str) -> Outcome {
    let body = req.json()?;
    let Some(input) = body.get("message").and_then(Value::as_object) else {
        return Err(ApiError::new(code::INPUT, "message is a required object field"));
    };
    let user = acting_user(caller, &body, Some("message"))?;
    let text = match input.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= 5000 => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::new(
                code::MESSAGE_TOO_LONG,
                "message text is longer than 5000 characters",
            ));
        }
        Some(_) => return Err(ApiError::new(code::INPUT, "message.text must be a string")),
    };
    let cid = format!("{kind}:{id}");
    let mut w = app.world();
    let w = &mut *w;
    // The author's JSON, from the one lookup that also refuses a deactivated author.
    let author = match w.users.get(user.as_str()) {
        Some(u) if u.deactivated_at().is_some() => return Err(super::deactivated(&user)),
        Some(u) => u.to_json(),
        None => json!({ "id": user }),
    };
    let msg_id = match input.get("id").and_then(Value::as_str) {
        Some(m) if !m.is_empty() && m.len() <= 255 => m.to_owned(),
        Some(_) => {
            return Err(ApiError::new(code::INPUT, "message.id must be 1 to 255 characters"));
        }
        None => app.ids.next().to_string(),
    };
    let ch = channel(w, &cid)?;
    if ch.messages.iter().any(|m| m.id == msg_id) {
        return Err(ApiError::new(
            code::INPUT,
            format!("a message with id {} already exists", clip(&msg_id)),
        ));
    }
    let now_n = wire::now_nanos();
    let now = wire::rfc3339(now_n);
    let mut m: Map<String, Value> = input.clone();
    // The author is `user`; a server SDK's `user_id` is a request field, not message data.
    m.remove("user_id");
    for (k, v) in [
        ("id", Value::from(msg_id.clone())),
        ("text", text.clone().into()),
        ("html", format!("<p>{}</p>\n", escape(&text)).into()),
        ("type", "regular".into()),
        ("user", author),
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
    let msg = Msg::new(now_n, Value::Object(m));
    let reply = format!("{{\"message\":{}}}", msg.raw.get());
    let Some(ch) = w.channels.get_mut(cid.as_str()) else {
        return Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("channel {} does not exist", clip(&cid)),
        ));
    };
    ch.messages.push_back(msg);
    while ch.messages.len() > app.cfg.messages_kept {
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
    let Some(msg) = ch.messages.back() else {
        return Err(ApiError::new(code::INTERNAL, "the message just stored is missing"));
    };
    // The common part is serialized once; each recipient user adds only its unread counters.
    let ev = MessageNew::new(w, ch, msg);
    let mut by_user: HashMap<&str, Vec<&Arc<Conn>>> = HashMap::new();
    for c in ch.watchers.values() {
        by_user.entry(&c.user).or_default().push(c);
    }
    for (uid, conns) in &by_user {
        let frame = Utf8Bytes::from(ev.for_viewer(w, ch, uid));
        app.deliver_each(conns.iter().copied(), &frame);
    }
    let mut note: Option<MessageNew> = None;
    for uid in ch.members.keys().filter(|u| !by_user.contains_key(&***u)) {
        if w.conns_of(uid).next().is_none() {
            continue;
        }
        let note = note.get_or_insert_with(|| MessageNew::notification(w, ch, msg));
        let frame = Utf8Bytes::from(note.for_viewer(w, ch, uid));
        app.deliver_each(w.conns_of(uid), &frame);
    }
    Ok((201, Body::Raw(reply)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
