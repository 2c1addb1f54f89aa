//! PRIVACY rules (PROTOCOL.md §6): typing and read events of a user who turned them off are not
//! delivered to others, turning them on again delivers them, changes take effect mid-session,
//! the user's read state is hidden, and its own connections still get `notification.mark_read`.
//!
//! Absence is checked without sleeps: after the suppressed event, a third user `c` sends a
//! `typing.start`; the watcher must see `c`'s event without having seen the suppressed one,
//! since a server delivers one connection's events in order.

use std::sync::Arc;

use chatstorm_protocol::PrivacySettings;
use serde_json::Value;

use super::client::{Ws, event_type, one_line};
use super::ctx::{CaseCtx, CaseResult, ScriptedUser, expect_absent_before, expect_event, fail, user_of};

/// `a` (with `privacy`), watcher `b` and marker sender `c`, all members of the case's channel;
/// `a` and `b` connected and watching.
async fn three(
    ctx: &Arc<CaseCtx>,
    privacy: PrivacySettings,
) -> Result<(ScriptedUser, Ws, ScriptedUser, Ws, ScriptedUser, String), super::CaseError> {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    a.details.privacy_settings = Some(privacy);
    let mut b = ctx.user("b").await?;
    let c = ctx.user("c").await?;
    let (aid, bid) = (a.id.clone(), b.id.clone());
    let members = [aid.as_str(), bid.as_str(), c.id.as_str()];
    let (wsa, _) = a.connect().await?;
    a.watch(&cid, &members, false).await?;
    let (wsb, _) = b.connect().await?;
    b.watch(&cid, &members, false).await?;
    Ok((a, wsa, b, wsb, c, cid))
}

fn typing_from<'a>(from: &'a str) -> impl FnMut(&Value) -> bool + 'a {
    move |v| event_type(v).is_some_and(|t| t.starts_with("typing.")) && user_of(v) == Some(from)
}

/// PRIVACY-TYPING-OFF: typing events of a user with `typing_indicators.enabled=false` reach no
/// other user.
pub async fn typing_off(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, b, mut wsb, c, cid) = three(&ctx, PrivacySettings::with(false, true)).await?;
    a.typing(&cid, "typing.start").await?;
    c.typing(&cid, "typing.start").await?;
    expect_absent_before(
        &mut wsb,
        &b.id,
        "typing.start",
        &c.id,
        ctx.wait,
        "no typing event from a user whose typing indicators are off",
        typing_from(&a.id),
    )
    .await
}

/// PRIVACY-TYPING-TOGGLE: turning typing indicators off and on with `PATCH /users` takes effect
/// on the open session: delivered, suppressed, delivered again.
pub async fn typing_toggle(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, b, mut wsb, c, cid) = three(&ctx, PrivacySettings::with(true, true)).await?;
    a.typing(&cid, "typing.start").await?;
    expect_event(&mut wsb, &b.id, "typing.start", &a.id, ctx.wait, "typing indicators on").await?;
    a.set_privacy(Some(false), None).await?;
    a.typing(&cid, "typing.start").await?;
    c.typing(&cid, "typing.start").await?;
    expect_absent_before(
        &mut wsb,
        &b.id,
        "typing.start",
        &c.id,
        ctx.wait,
        "no typing event after the sender turned typing indicators off mid-session",
        typing_from(&a.id),
    )
    .await?;
    a.set_privacy(Some(true), None).await?;
    a.typing(&cid, "typing.stop").await?;
    expect_event(
        &mut wsb,
        &b.id,
        "typing.stop",
        &a.id,
        ctx.wait,
        "typing indicators turned back on",
    )
    .await?;
    Ok(())
}

/// PRIVACY-READ-OFF: `message.read` of a user with `read_receipts.enabled=false` reaches no
/// other user.
pub async fn read_off(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, b, mut wsb, c, cid) = three(&ctx, PrivacySettings::with(true, false)).await?;
    a.mark_read(&cid).await?;
    c.typing(&cid, "typing.start").await?;
    let from = a.id.clone();
    expect_absent_before(
        &mut wsb,
        &b.id,
        "typing.start",
        &c.id,
        ctx.wait,
        "no message.read from a user whose read receipts are off",
        move |v| event_type(v) == Some("message.read") && user_of(v) == Some(from.as_str()),
    )
    .await
}

/// PRIVACY-READ-STATE-HIDDEN: the channel's `read` array shown to others leaves out a user
/// whose read receipts are off.
pub async fn read_state_hidden(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, _wsa, b, _wsb, _c, cid) = three(&ctx, PrivacySettings::with(true, false)).await?;
    a.mark_read(&cid).await?;
    let r = b.watch(&cid, &[], false).await?;
    let read = r
        .json
        .as_ref()
        .and_then(|v| v.get("read").or_else(|| v.pointer("/channel/read")))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let leaked = read.iter().find(|e| user_of(e) == Some(a.id.as_str()));
    match leaked {
        None => Ok(()),
        Some(e) => Err(fail(
            &b.id,
            format!("no entry for {} in the channel's read array", a.id),
            format!("read entry {}", one_line(&e.to_string(), 400)),
        )),
    }
}

/// PRIVACY-OWN-MARK-READ: with read receipts off, the reader's own connections still get
/// `notification.mark_read`.
pub async fn own_mark_read(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, mut wsa, _b, _wsb, _c, cid) = three(&ctx, PrivacySettings::with(true, false)).await?;
    a.mark_read(&cid).await?;
    wsa.wait_type(ctx.wait, "notification.mark_read")
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(
                &a.id,
                "notification.mark_read on the reader's own connection",
                e.describe(),
            )
        })
}
