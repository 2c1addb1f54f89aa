//! CONN rules (PROTOCOL.md §1): the upgrade completes, the first frame is a `health.check` with a
//! `connection_id`, `cid:"*"` and an own-user `me` reflecting `user_details` and privacy settings,
//! and header-based auth (Swift) works like query auth.

use std::sync::Arc;

use chatstorm_protocol::{PrivacySettings, Profile};
use serde_json::{Value, json};

use super::client::{WsEvent, event_type, one_line};
use super::ctx::{CaseCtx, CaseResult, ensure, fail};

/// CONN-UPGRADE: `/connect` with a valid token completes the WebSocket upgrade.
pub async fn upgrade(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open(Profile::Js).await?;
    let _ = ws.send_close(1000, "conformance").await;
    Ok(())
}

/// CONN-FIRST-FRAME: the first text frame is a `health.check` with a non-empty `connection_id`,
/// `cid` `"*"` and `created_at`.
pub async fn first_frame(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open(Profile::Js).await?;
    let first = ws.next(ctx.wait).await;
    let expected = "first frame: JSON text {\"type\":\"health.check\",\"connection_id\":<non-empty>,\"cid\":\"*\",\"created_at\":...}";
    let WsEvent::Json(v) = &first else {
        return Err(fail(&u.id, expected, first.describe()));
    };
    let ok = event_type(v) == Some("health.check")
        && v.get("connection_id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        && v.get("cid").and_then(Value::as_str) == Some("*")
        && v.get("created_at").and_then(Value::as_str).is_some();
    ensure(ok, &u.id, expected, || one_line(&v.to_string(), 600))
}

/// CONN-ME: the first `health.check` carries `me`, an own user with this id and the own-user
/// fields SDKs copy without defaults (`total_unread_count`, `mutes`, `channel_mutes`, `devices`).
pub async fn me(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let (_ws, first) = u.connect().await?;
    let me = first.get("me");
    let ok = me.is_some_and(|m| {
        m.get("id").and_then(Value::as_str) == Some(u.id.as_str())
            && m.get("total_unread_count").is_some_and(Value::is_u64)
            && ["mutes", "channel_mutes", "devices"]
                .iter()
                .all(|k| m.get(*k).is_some_and(Value::is_array))
    });
    ensure(
        ok,
        &u.id,
        "me = own user {id:<the user>, total_unread_count:<int>, mutes:[], channel_mutes:[], devices:[] ...}",
        || {
            format!(
                "me = {}",
                me.map_or("absent".to_owned(), |m| one_line(&m.to_string(), 600))
            )
        },
    )
}

/// CONN-ME-DETAILS: `me` reflects `user_details` (name and a custom field, flattened).
pub async fn me_details(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.details.name = Some("Conformance Name".to_owned());
    u.details.custom.insert("favourite_colour".into(), json!("teal"));
    let (_ws, first) = u.connect().await?;
    let me = first.get("me");
    let ok = me.is_some_and(|m| {
        m.get("name").and_then(Value::as_str) == Some("Conformance Name")
            && m.get("favourite_colour").and_then(Value::as_str) == Some("teal")
    });
    ensure(
        ok,
        &u.id,
        "me.name = \"Conformance Name\" and me.favourite_colour = \"teal\" (from user_details)",
        || {
            format!(
                "me = {}",
                me.map_or("absent".to_owned(), |m| one_line(&m.to_string(), 600))
            )
        },
    )
}

/// CONN-ME-PRIVACY: `me.privacy_settings` reflects the privacy settings sent in `user_details`.
pub async fn me_privacy(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.details.privacy_settings = Some(PrivacySettings::with(false, true));
    let (_ws, first) = u.connect().await?;
    let ps = first.get("me").and_then(|m| m.get("privacy_settings"));
    let typing = ps
        .and_then(|p| p.pointer("/typing_indicators/enabled"))
        .and_then(Value::as_bool);
    let read = ps
        .and_then(|p| p.pointer("/read_receipts/enabled"))
        .and_then(Value::as_bool);
    ensure(
        typing == Some(false) && read == Some(true),
        &u.id,
        "me.privacy_settings = {typing_indicators:{enabled:false}, read_receipts:{enabled:true}}",
        || {
            format!(
                "me.privacy_settings = {}",
                ps.map_or("absent".to_owned(), |p| p.to_string())
            )
        },
    )
}

/// CONN-HEADER-AUTH: auth in the `Authorization`/`Stream-Auth-Type` upgrade headers (Swift) is
/// accepted like query auth.
pub async fn header_auth(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.connect_as(Profile::Swift).await.map(|_| ())
}
