//! DELIVERY rules (PROTOCOL.md §7.3, §10): each channel event reaches every connection that
//! watches the channel exactly once and in the order it happened, and no connection that does
//! not watch it (never watched, or stopped watching).
//!
//! One exchange serves the first three rules: user `a` watches on two connections, `b` on one;
//! `a` sends four messages with known ids and a `typing.start` between the second and the third;
//! every connection reads until the last message (the marker) or `ctx.wait`. Each rule judges the
//! same arrivals for its own property, so a server that duplicates fails only DELIVERY-ONCE.
//! Absence is checked without sleeps, as in `privacy.rs`: after the channel's events, a marker
//! event on a second channel the connection does watch must arrive first.

use std::sync::Arc;

use serde_json::{Value, json};

use super::client::{Ws, WsEvent, event_type};
use super::ctx::{CaseCtx, CaseError, CaseResult, ScriptedUser, cid_path, expect_absent_before, fail, user_of};

/// What one watching connection received of the exchange, in arrival order.
struct Arrivals {
    /// `user (connection)`.
    label: String,
    /// Event keys (`message <id>` or `typing.start`) in arrival order, repeats kept.
    keys: Vec<String>,
    /// How the read ended when the marker never came.
    cut: Option<String>,
}

impl Arrivals {
    fn describe(&self) -> String {
        let end = self.cut.as_deref().unwrap_or("the marker arrived");
        format!("{} received {:?}; then {end}", self.label, self.keys)
    }
}

/// The events of the exchange as they were sent.
struct Exchange {
    sent: Vec<String>,
    arrivals: Vec<Arrivals>,
}

fn message_key(id: &str) -> String {
    format!("message {id}")
}

/// The key of an exchange event, or `None` for anything else on the socket.
fn key_of(v: &Value, cid: &str, sender: &str) -> Option<String> {
    if v.get("cid").and_then(Value::as_str) != Some(cid) {
        return None;
    }
    match event_type(v)? {
        "message.new" => v.pointer("/message/id").and_then(Value::as_str).map(message_key),
        "typing.start" if user_of(v) == Some(sender) => Some("typing.start".to_owned()),
        _ => None,
    }
}

impl ScriptedUser {
    /// Sends a message with a known id to `cid` (§7.3).
    ///
    /// # Errors
    /// A failure when the call does not succeed.
    pub async fn send_message(&self, cid: &str, id: &str) -> CaseResult {
        let body = json!({"message": {"id": id, "text": format!("conformance {id}")}});
        self.rest_ok("POST", &format!("/channels/{}/message", cid_path(cid)), Some(body))
            .await
            .map(|_| ())
    }
}

/// Reads `ws` until `marker` arrives (or `ctx.wait` passes), keeping the exchange's events.
async fn collect(ws: &mut Ws, ctx: &CaseCtx, label: String, cid: &str, sender: &str, marker: &str) -> Arrivals {
    let deadline = tokio::time::Instant::now() + ctx.wait;
    let mut keys = Vec::new();
    let cut = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next(left).await {
            WsEvent::Json(v) => {
                if let Some(k) = key_of(&v, cid, sender) {
                    let done = k == marker;
                    keys.push(k);
                    if done {
                        break None;
                    }
                }
            }
            WsEvent::NonJson(_) | WsEvent::Binary(_) => {}
            other => break Some(other.describe()),
        }
    };
    Arrivals { label, keys, cut }
}

/// Runs the exchange (see the module docs).
async fn exchange(ctx: &Arc<CaseCtx>) -> Result<Exchange, CaseError> {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    let mut a2 = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let (aid, bid) = (a.id.clone(), b.id.clone());
    let members = [aid.as_str(), bid.as_str()];
    let (mut wsa, _) = a.connect().await?;
    a.watch(&cid, &members, false).await?;
    let (mut wsa2, _) = a2.connect().await?;
    a2.watch(&cid, &members, false).await?;
    let (mut wsb, _) = b.connect().await?;
    b.watch(&cid, &members, false).await?;
    let ids: Vec<String> = (1..=4).map(|i| format!("{}-m{i}", a.id)).collect();
    let mut sent = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if i == 2 {
            a.typing(&cid, "typing.start").await?;
            sent.push("typing.start".to_owned());
        }
        a.send_message(&cid, id).await?;
        sent.push(message_key(id));
    }
    let marker = sent.last().cloned().unwrap_or_default();
    let (ra, ra2, rb) = tokio::join!(
        collect(
            &mut wsa,
            ctx,
            format!("{aid} (sender's connection)"),
            &cid,
            &aid,
            &marker
        ),
        collect(
            &mut wsa2,
            ctx,
            format!("{aid} (second connection)"),
            &cid,
            &aid,
            &marker
        ),
        collect(&mut wsb, ctx, format!("{bid} (watcher)"), &cid, &aid, &marker),
    );
    Ok(Exchange {
        sent,
        arrivals: vec![ra, ra2, rb],
    })
}

/// DELIVERY-EVERY-WATCHER: every watching connection, the sender's own and a user's second
/// connection included, gets every message.new (and the typing.start) of the channel.
pub async fn every_watcher(ctx: Arc<CaseCtx>) -> CaseResult {
    let ex = exchange(&ctx).await?;
    for a in &ex.arrivals {
        let missing: Vec<&String> = ex.sent.iter().filter(|k| !a.keys.contains(k)).collect();
        if !missing.is_empty() {
            return Err(fail(
                &a.label,
                format!(
                    "every event of {:?} at every watching connection (missing {missing:?})",
                    ex.sent
                ),
                a.describe(),
            ));
        }
    }
    Ok(())
}

/// DELIVERY-ONCE: no watching connection gets the same event twice.
pub async fn once(ctx: Arc<CaseCtx>) -> CaseResult {
    let ex = exchange(&ctx).await?;
    for a in &ex.arrivals {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = a.keys.iter().find(|k| !seen.insert(*k)) {
            return Err(fail(
                &a.label,
                format!("each event exactly once per connection ({dup} arrived twice)"),
                a.describe(),
            ));
        }
    }
    Ok(())
}

/// DELIVERY-ORDER: every watching connection gets the channel's events in the order they were
/// sent (judged on what arrived, so a loss alone does not fail it).
pub async fn order(ctx: Arc<CaseCtx>) -> CaseResult {
    let ex = exchange(&ctx).await?;
    for a in &ex.arrivals {
        let mut firsts: Vec<usize> = Vec::new();
        for k in &a.keys {
            if let Some(i) = ex.sent.iter().position(|s| s == k)
                && !firsts.contains(&i)
            {
                firsts.push(i);
            }
        }
        if firsts.windows(2).any(|w| w[0] > w[1]) {
            return Err(fail(
                &a.label,
                format!("events in the order they were sent: {:?}", ex.sent),
                a.describe(),
            ));
        }
    }
    Ok(())
}

/// `a` watching `cid` and sending, `c` a member of `cid` connected and watching only `cid2`
/// (where the absence marker is sent); both channels have `a` and `c` as members.
async fn member_elsewhere(ctx: &Arc<CaseCtx>) -> Result<(ScriptedUser, Ws, ScriptedUser, String, String), CaseError> {
    let (cid, cid2) = (ctx.cid("c"), ctx.cid("d"));
    let mut a = ctx.user("a").await?;
    let c = ctx.user("c").await?;
    let (aid, cuid) = (a.id.clone(), c.id.clone());
    let members = [aid.as_str(), cuid.as_str()];
    // Both channels exist with both members before `c` connects.
    a.create_channel(&cid, &members).await?;
    a.create_channel(&cid2, &members).await?;
    let (wsa, _) = a.connect().await?;
    a.watch(&cid, &members, false).await?;
    Ok((a, wsa, c, cid, cid2))
}

fn message_new_in(cid: &str) -> impl FnMut(&Value) -> bool + '_ {
    move |v| event_type(v) == Some("message.new") && v.get("cid").and_then(Value::as_str) == Some(cid)
}

/// DELIVERY-NOT-WATCHING: a member's connection that never watched the channel gets none of its
/// `message.new` (members not watching may get `notification.message_new`).
pub async fn not_watching(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, mut c, cid, cid2) = member_elsewhere(&ctx).await?;
    let (mut wsc, _) = c.connect().await?;
    let members = [a.id.as_str(), c.id.as_str()];
    c.watch(&cid2, &members, false).await?;
    a.send_message(&cid, &format!("{}-m1", a.id)).await?;
    a.typing(&cid2, "typing.start").await?;
    expect_absent_before(
        &mut wsc,
        &c.id,
        "typing.start",
        &a.id,
        ctx.wait,
        "no message.new of a channel this connection does not watch",
        message_new_in(&cid),
    )
    .await
}

/// DELIVERY-STOP-WATCHING: after `stop-watching`, the connection gets no more `message.new` of
/// the channel.
pub async fn stop_watching(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, mut c, cid, cid2) = member_elsewhere(&ctx).await?;
    let (mut wsc, _) = c.connect().await?;
    let members = [a.id.as_str(), c.id.as_str()];
    c.watch(&cid, &members, false).await?;
    c.watch(&cid2, &members, false).await?;
    let first = format!("{}-m1", a.id);
    a.send_message(&cid, &first).await?;
    wsc.wait_for(ctx.wait, |v| {
        v.pointer("/message/id").and_then(Value::as_str) == Some(first.as_str())
    })
    .await
    .map_err(|e| fail(&c.id, "message.new while watching", e.describe()))?;
    c.rest_ok(
        "POST",
        &format!("/channels/{}/stop-watching", cid_path(&cid)),
        Some(json!({})),
    )
    .await?;
    // Only the message sent after stop-watching is forbidden: a copy of the first one arriving
    // late is DELIVERY-ONCE's business.
    let second = format!("{}-m2", a.id);
    a.send_message(&cid, &second).await?;
    a.typing(&cid2, "typing.start").await?;
    expect_absent_before(
        &mut wsc,
        &c.id,
        "typing.start",
        &a.id,
        ctx.wait,
        "no message.new of a channel after stop-watching it",
        |v: &Value| {
            message_new_in(&cid)(v) && v.pointer("/message/id").and_then(Value::as_str) == Some(second.as_str())
        },
    )
    .await
}
