//! LONGPOLL rules (PROTOCOL.md §4): the long-poll connect returns a `health.check`, polls return
//! events in order, `close=true` ends the connection, and an unknown id gets code 46.

use std::sync::Arc;

use chatstorm_protocol::connect::ConnectPayload;
use serde_json::Value;

use super::client::{HttpReply, event_type, one_line};
use super::ctx::{CaseCtx, CaseError, CaseResult, ScriptedUser, ensure, fail, user_of};

impl ScriptedUser {
    /// `GET /longpoll?json=…`: the long-poll connect; remembers the connection id.
    ///
    /// # Errors
    /// A failure when no answer comes.
    pub async fn longpoll_connect(&mut self) -> Result<HttpReply, CaseError> {
        let payload = ConnectPayload {
            user_id: self.id.clone(),
            user_details: serde_json::to_value(&self.details).unwrap_or(Value::Null),
            device: None,
            client_request_id: None,
            server_determines_connection_id: None,
            user_token: None,
            x_stream_client: None,
        };
        let json = serde_json::to_string(&payload).unwrap_or_default();
        let q: String = form_urlencoded::byte_serialize(json.as_bytes()).collect();
        self.connection_id = None;
        let r = not_served(self.rest("GET", &format!("/longpoll?json={q}"), None).await?)?;
        self.connection_id = r
            .json
            .as_ref()
            .and_then(|v| v.pointer("/event/connection_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(r)
    }

    /// One poll on the current long-poll connection.
    ///
    /// # Errors
    /// A failure when no answer comes.
    pub async fn poll(&self) -> Result<HttpReply, CaseError> {
        self.rest("GET", "/longpoll", None).await
    }
}

/// The long-poll fallback is opt-in per app (§4): a target answering 404 does not serve it, and
/// the LONGPOLL rules are skipped rather than failed.
fn not_served(r: HttpReply) -> Result<HttpReply, CaseError> {
    if r.status == 404 {
        return Err(CaseError::Skip(format!(
            "the target does not serve /longpoll (the fallback is opt-in, PROTOCOL.md §4): {}",
            r.summary()
        )));
    }
    Ok(r)
}

/// LONGPOLL-CONNECT: `GET /longpoll?json=…` answers `{"event": <health.check with
/// connection_id and me>}`.
pub async fn connect(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let r = u.longpoll_connect().await?;
    let ev = r.json.as_ref().and_then(|v| v.get("event"));
    let ok = r.status == 200
        && ev.is_some_and(|e| {
            event_type(e) == Some("health.check")
                && e.get("connection_id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                && e.get("me").and_then(|m| m.get("id")).and_then(Value::as_str) == Some(u.id.as_str())
        });
    ensure(
        ok,
        &u.id,
        "HTTP 200 {\"event\": {\"type\":\"health.check\",\"connection_id\":…,\"me\":{\"id\":<the user>…}}}",
        || r.summary(),
    )
}

/// LONGPOLL-ORDER: events buffered between polls come back in the order they happened.
pub async fn order(ctx: Arc<CaseCtx>) -> CaseResult {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    let b = ctx.user("b").await?;
    a.longpoll_connect().await?;
    a.watch(&cid, &[&a.id, &b.id], false).await?;
    let sent = ["typing.start", "typing.stop", "typing.start", "typing.stop"];
    for kind in sent {
        b.typing(&cid, kind).await?;
    }
    let mut got: Vec<String> = Vec::new();
    // A few polls at most: the events are already buffered, so each poll returns at once.
    for _ in 0..4 {
        let r = a.poll().await?;
        let Some(events) = r.json.as_ref().and_then(|v| v.get("events")).and_then(Value::as_array) else {
            return Err(fail(&a.id, "HTTP 200 {\"events\":[…]}", r.summary()));
        };
        got.extend(
            events
                .iter()
                .filter(|e| user_of(e) == Some(b.id.as_str()))
                .filter_map(|e| event_type(e).map(str::to_owned))
                .filter(|t| t.starts_with("typing.")),
        );
        if got.len() >= sent.len() {
            break;
        }
    }
    ensure(got == sent, &a.id, &format!("b's events in order: {sent:?}"), || {
        format!("{got:?}")
    })
}

/// LONGPOLL-CLOSE: `close=true` ends the connection; a poll on it afterwards gets code 46.
pub async fn close(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.longpoll_connect().await?;
    if u.connection_id.is_none() {
        return Err(fail(&u.id, "a connection_id from the long-poll connect", "none"));
    }
    u.rest("GET", "/longpoll?close=true", None).await?;
    let r = u.poll().await?;
    ensure(
        r.status == 400 && r.code() == Some(46),
        &u.id,
        "after close=true, a poll on that connection_id gets HTTP 400 code 46",
        || format!("HTTP {} {}", r.status, one_line(&r.text, 300)),
    )
}

/// LONGPOLL-UNKNOWN-46: a poll with an unknown `connection_id` gets HTTP 400 with code 46.
pub async fn unknown_46(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    // A connect first, so a target without long-poll is skipped rather than failed.
    u.longpoll_connect().await?;
    u.rest("GET", "/longpoll?close=true", None).await?;
    u.connection_id = Some(uuid::Uuid::new_v4().to_string());
    let r = u.poll().await?;
    ensure(
        r.status == 400 && r.code() == Some(46),
        &u.id,
        "HTTP 400 with code 46 (ConnectionIDNotFound)",
        || format!("HTTP {} {}", r.status, one_line(&r.text, 300)),
    )
}
