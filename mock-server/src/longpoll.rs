//! Owns `/longpoll`, the JS SDK's WebSocket fallback: the connect (`json` → `{"event": health.check}`),
//! held polls (`connection_id` → `{"events": […]}` in order, as soon as any are pending), `close=true`,
//! code 46 for unknown or closed ids, and the idle reaper of abandoned long-poll connections.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::app::App;
use crate::auth::{self, ApiError};
use crate::conn::{Conn, ConnId, Kill, Transport};
use crate::exchange::{Req, Resp, error, json_response, ok};
use crate::fault::Violation;
use crate::stats::Stats;
use crate::wire::{self, code};

/// Routes a `/longpoll` request.
pub async fn handle(app: &Arc<App>, req: &Req) -> Resp {
    let q = &req.query;
    let conn_id = q.get("connection_id").filter(|s| !s.is_empty());
    if q.get("close") == Some("true") {
        return close(app, req, conn_id);
    }
    match (conn_id, q.get("json")) {
        (Some(id), _) => poll(app, req, id).await,
        (None, Some(json)) => connect(app, req, json),
        (None, None) => error(
            app,
            "LongPoll",
            &ApiError::new(code::INPUT, "json or connection_id is required"),
        ),
    }
}

fn connect(app: &Arc<App>, req: &Req, json: &str) -> Resp {
    let connecting = match auth::connect(app, &req.credentials(), Some(json)) {
        Ok(c) => c,
        Err(e) => {
            Stats::bump(&app.stats.connect_rejected);
            return error(app, "Connect", &e);
        }
    };
    if let Some(v) = app.rate.check(&connecting.user_id, "connect", wire::now_unix())
        && !v.allowed
    {
        Stats::bump(&app.stats.rate_limited);
        Stats::bump(&app.stats.connect_rejected);
        let e = ApiError::new(
            code::RATE_LIMIT,
            "Too many requests, check response headers for more information.",
        );
        return error(app, "Connect", &e);
    }
    {
        let mut w = app.world();
        let user = w.user_mut(&connecting.user_id);
        if user.deactivated_at().is_some() {
            drop(w);
            Stats::bump(&app.stats.connect_rejected);
            return error(app, "Connect", &auth::deactivated(&connecting.user_id));
        }
        user.apply_upsert(&connecting.details);
    }
    let conn = app.register(&connecting.user_id, Transport::LongPoll);
    let me = app.first_me(&conn.user);
    let event: Value =
        serde_json::from_str(&wire::health_check(&conn.id.to_string(), me.as_deref())).unwrap_or(Value::Null);
    app.tasks.spawn(reaper(app.clone(), conn));
    ok(200, serde_json::json!({ "event": event }), req.start)
}

fn lookup(app: &App, id: &str) -> Option<Arc<Conn>> {
    let id = ConnId::parse(id)?;
    app.world()
        .conns
        .get(&id)
        .filter(|c| c.transport == Transport::LongPoll)
        .cloned()
}

fn unknown(app: &App, req: &Req, id: &str) -> Resp {
    if app.violation(Violation::LongpollUnknownIdOk) {
        return ok(200, serde_json::json!({ "events": [] }), req.start);
    }
    let e = ApiError::new(
        code::CONNECTION_ID_NOT_FOUND,
        format!("connection_id \"{}\" not found", clip(id)),
    );
    error(app, "LongPoll", &e)
}

async fn poll(app: &Arc<App>, req: &Req, id: &str) -> Resp {
    let Some(conn) = lookup(app, id) else {
        return unknown(app, req, id);
    };
    match auth::rest(app, &req.credentials()) {
        Ok(c) if c.server || c.user == *conn.user => {}
        Ok(_) => {
            return error(
                app,
                "LongPoll",
                &ApiError::new(code::NOT_ALLOWED, "connection_id belongs to another user"),
            );
        }
        Err(e) => return error(app, "LongPoll", &e),
    }
    conn.poll_active.store(true, Ordering::Relaxed);
    let deadline = wire::deadline(app.cfg.longpoll_hold);
    let frames = loop {
        if let Some(k) = conn.killed() {
            conn.poll_active.store(false, Ordering::Relaxed);
            app.unregister(conn.id);
            return match k {
                Kill::TokenExpired { revoked } => error(app, "LongPoll", &auth::expired_error(app, revoked)),
                _ => unknown(app, req, id),
            };
        }
        let frames = conn.drain();
        if !frames.is_empty() {
            break frames;
        }
        tokio::select! {
            _ = conn.wait() => {}
            _ = tokio::time::sleep_until(deadline) => break Vec::new(),
            _ = app.shutdown.cancelled() => break Vec::new(),
        }
    };
    conn.poll_active.store(false, Ordering::Relaxed);
    conn.last_poll_ms.store(app.ms_since_start(), Ordering::Relaxed);
    if let Some(d) = app.faults.frame_latency() {
        tokio::time::sleep(d).await;
    }
    let mut frames = frames;
    if app.violation(Violation::LongpollUnordered) {
        frames.reverse();
    }
    // The frames are already serialized: splice them into the body instead of re-parsing.
    let mut body = String::with_capacity(frames.iter().map(|f| f.len() + 1).sum::<usize>() + 48);
    body.push_str("{\"events\":[");
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(f);
    }
    body.push_str("],\"duration\":\"");
    body.push_str(&wire::duration_since(req.start));
    body.push_str("\"}");
    json_response(200, body)
}

/// `close=true`: ends the connection. Needs no `user_id` (the JS SDK sends none there).
fn close(app: &App, req: &Req, id: Option<&str>) -> Resp {
    if let Err(e) = auth::check_key(app, &req.credentials()) {
        return error(app, "LongPoll", &e);
    }
    if let Some(conn) = id.and_then(|id| lookup(app, id)) {
        conn.kill(Kill::Close(1000));
        app.unregister(conn.id);
    }
    ok(200, serde_json::json!({}), req.start)
}

/// Closes the connection once no poll has arrived for `longpoll_idle_timeout`.
async fn reaper(app: Arc<App>, conn: Arc<Conn>) {
    let idle = app.cfg.longpoll_idle_timeout;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle / 2) => {}
        }
        if !app.world().conns.contains_key(&conn.id) {
            return;
        }
        let since = app
            .ms_since_start()
            .saturating_sub(conn.last_poll_ms.load(Ordering::Relaxed));
        if !conn.poll_active.load(Ordering::Relaxed) && u128::from(since) >= idle.as_millis() {
            conn.kill(Kill::Close(1000));
            app.unregister(conn.id);
            return;
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
