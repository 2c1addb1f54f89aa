//! RECONNECT rules (PROTOCOL.md §3.4–3.5, §2.5): a reconnect made at the back-off delay after a
//! drop gets a new `connection_id`, re-watching channels (`recoverState`) binds them to the new
//! connection, and a close after an error frame is 1000, the "do not reconnect" code.

use std::sync::Arc;
use std::time::Duration;

use chatstorm_protocol::Profile;
use chatstorm_protocol::backoff::retry_interval_ms;
use serde_json::json;

use super::auth::{expect_close_1000, expect_error_frame};
use super::ctx::{CaseCtx, CaseResult, ensure, expect_event};

/// The back-off before the first reconnect attempt, drawn from the JS formula (§3.4) with a fixed
/// unit so runs are reproducible.
fn first_retry_delay() -> Duration {
    Duration::from_millis(retry_interval_ms(1, 0.25))
}

/// RECONNECT-NEW-CONNECTION-ID: after the socket drops, a reconnect at the back-off delay is
/// accepted and gets a new `connection_id`.
pub async fn new_connection_id(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (ws, _) = u.connect().await?;
    let old = u.connection_id.clone().unwrap_or_default();
    ws.drop_abruptly();
    // The delay is part of the protocol under test (SDK back-off), not synchronisation.
    tokio::time::sleep(first_retry_delay()).await;
    let (_ws2, _) = u.connect().await?;
    let new = u.connection_id.clone().unwrap_or_default();
    ensure(
        new != old,
        &u.id,
        "a connection_id different from the dropped connection's",
        || format!("connection_id {new} again"),
    )
}

/// RECONNECT-REWATCH: after a reconnect, `POST /channels` with the watched cids and `watch:true`
/// (JS `recoverState`) makes channel events reach the new connection, the user's own included.
pub async fn rewatch(ctx: Arc<CaseCtx>) -> CaseResult {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let (ws, _) = a.connect().await?;
    a.watch(&cid, &[&a.id, &b.id], false).await?;
    let (_wsb, _) = b.connect().await?;
    b.watch(&cid, &[&a.id, &b.id], false).await?;
    ws.drop_abruptly();
    tokio::time::sleep(first_retry_delay()).await;
    let (mut ws2, _) = a.connect_as(Profile::Js).await?;
    let body = json!({
        "filter_conditions": {"cid": {"$in": [cid]}},
        "sort": [{"field": "last_message_at", "direction": -1}],
        "limit": 30, "state": true, "watch": true, "presence": false,
    });
    a.rest_ok("POST", "/channels", Some(body)).await?;
    b.typing(&cid, "typing.start").await?;
    expect_event(
        &mut ws2,
        &a.id,
        "typing.start",
        &b.id,
        ctx.wait,
        "another watcher's event on the re-watched channel",
    )
    .await?;
    a.typing(&cid, "typing.start").await?;
    expect_event(
        &mut ws2,
        &a.id,
        "typing.start",
        &a.id,
        ctx.wait,
        "its own event on the re-watched channel",
    )
    .await?;
    Ok(())
}

/// RECONNECT-ERROR-CLOSE-1000: after an error frame (here a malformed token) the server closes
/// with 1000, the code that stops JS and Swift from reconnecting.
pub async fn error_close_1000(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, "not-a-jwt").await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[5, 43], "malformed token").await?;
    expect_close_1000(&mut ws, &ctx, &u.id).await
}
