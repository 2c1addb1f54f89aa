//! DISCONNECT rules (PROTOCOL.md §5): a client close 1000 is answered and frees the connection;
//! presence subscribers see the user go offline when its last connection closes.

use std::sync::Arc;

use serde_json::Value;

use super::client::WsEvent;
use super::ctx::{CaseCtx, CaseResult, ensure, fail, user_of};

/// DISCONNECT-CLOSE-1000: a client close with 1000 is answered with a close frame (RFC 6455
/// §5.5.1) and the TCP connection ends.
pub async fn close_1000(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (mut ws, _) = u.connect().await?;
    ws.send_close(1000, "Manually closed connection by calling client.disconnect()")
        .await
        .map_err(|e| fail(&u.id, "an open socket", e))?;
    let mut answer = ws.next(ctx.wait).await;
    // Frames already in flight before the close may still arrive.
    while matches!(answer, WsEvent::Json(_)) {
        answer = ws.next(ctx.wait).await;
    }
    ensure(
        matches!(answer, WsEvent::Close(_)),
        &u.id,
        "a close frame answering the client's close 1000",
        || answer.describe(),
    )
}

/// DISCONNECT-PRESENCE-OFFLINE: when a user's last connection closes, presence subscribers get
/// `user.presence.changed` with `online:false`.
pub async fn presence_offline(ctx: Arc<CaseCtx>) -> CaseResult {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let (aid, bid) = (a.id.clone(), b.id.clone());
    let members = [aid.as_str(), bid.as_str()];
    let (mut wsb, _) = b.connect().await?;
    b.watch(&cid, &members, true).await?;
    let (mut wsa, _) = a.connect().await?;
    a.watch(&cid, &members, true).await?;
    wsa.send_close(1000, "bye")
        .await
        .map_err(|e| fail(&a.id, "an open socket", e))?;
    let _ = wsa.next(ctx.wait).await;
    let aid = a.id.clone();
    wsb.wait_for(ctx.wait, |v| {
        v.get("type").and_then(Value::as_str) == Some("user.presence.changed")
            && user_of(v) == Some(aid.as_str())
            && v.pointer("/user/online").and_then(Value::as_bool) == Some(false)
    })
    .await
    .map(|_| ())
    .map_err(|e| {
        fail(
            &b.id,
            format!("user.presence.changed {{user:{{id:{}, online:false}}}}", a.id),
            e.describe(),
        )
    })
}
