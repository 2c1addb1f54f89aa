//! HEALTH rules (PROTOCOL.md §3.1–3.2): the server sends `health.check` at its interval, answers
//! a client health check (object and array form) with one, and answers a ping control frame
//! with a `health.check` within 3 s.

use std::sync::Arc;
use std::time::Duration;

use chatstorm_protocol::event::{client_health_check_js, client_health_check_object};
use tokio::time::Instant;

use super::client::event_type;
use super::ctx::{CaseCtx, CaseResult, fail};

/// HEALTH-INTERVAL: after the first frame, a `health.check` arrives within 1.5 × the interval.
pub async fn interval(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (mut ws, _) = u.connect().await?;
    let start = Instant::now();
    let limit = ctx.health_interval.mul_f64(1.5);
    let r = ws.wait_type(limit, "health.check").await;
    r.map(|_| ()).map_err(|e| {
        fail(
            &u.id,
            format!(
                "a periodic health.check within {:?} (1.5 × the {:?} interval)",
                limit, ctx.health_interval
            ),
            format!("{} after {:?}", e.describe(), start.elapsed()),
        )
    })
}

/// How long a reply may take: 3 s, but well under the periodic interval so that a periodic
/// `health.check` is not mistaken for the reply.
fn reply_window(ctx: &CaseCtx) -> Duration {
    Duration::from_secs(3).min(ctx.health_interval / 2)
}

async fn reply_to(ctx: Arc<CaseCtx>, frame: impl FnOnce(&str) -> String, what: &str) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (mut ws, first) = u.connect().await?;
    let conn = first
        .get("connection_id")
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .to_owned();
    // Sending right after a health.check (the first frame) leaves a whole interval before the
    // next periodic one, so a health.check inside the window is the reply.
    let window = reply_window(&ctx);
    let text = frame(&conn);
    ws.send_text(&text)
        .await
        .map_err(|e| fail(&u.id, "an open socket", e))?;
    ws.wait_for(window, |v| event_type(v) == Some("health.check"))
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(
                &u.id,
                format!("a health.check answering the client's {what} within {window:?}"),
                e.describe(),
            )
        })
}

/// HEALTH-REPLY-OBJECT: an inbound health check as a JSON object gets a `health.check`.
pub async fn reply_object(ctx: Arc<CaseCtx>) -> CaseResult {
    reply_to(ctx, client_health_check_object, "health check object (Android/Flutter)").await
}

/// HEALTH-REPLY-ARRAY: an inbound health check as a JSON array (JS) gets a `health.check`.
pub async fn reply_array(ctx: Arc<CaseCtx>) -> CaseResult {
    reply_to(
        ctx,
        |_| client_health_check_js("conformance--client"),
        "health check array (JS)",
    )
    .await
}

/// HEALTH-PING-REPLY: a WebSocket ping control frame gets a `health.check` within 3 s (Swift).
pub async fn ping_reply(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (mut ws, _) = u.connect().await?;
    let window = reply_window(&ctx);
    ws.send_ping().await.map_err(|e| fail(&u.id, "an open socket", e))?;
    ws.wait_for(window, |v| event_type(v) == Some("health.check"))
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(
                &u.id,
                format!("a health.check answering a ping frame within {window:?}"),
                e.describe(),
            )
        })
}
