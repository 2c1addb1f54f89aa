//! USER rules (PROTOCOL.md §8, §6.2): ids outside the documented character set and user objects
//! over 5 KB are refused at connect; connecting upserts the user.

use std::sync::Arc;

use chatstorm_protocol::Profile;
use chatstorm_protocol::limits::MAX_USER_BYTES;
use serde_json::{Value, json};

use super::auth::error_of;
use super::client::{WsEvent, one_line};
use super::ctx::{CaseCtx, CaseError, CaseResult, ensure};

fn refused(first: &WsEvent) -> bool {
    first.json().and_then(error_of).is_some() || matches!(first, WsEvent::Close(_) | WsEvent::Ended(_))
}

/// USER-ID-CHARS: a user id with characters outside `a-z 0-9 @ _ -` is refused.
pub async fn id_chars(ctx: Arc<CaseCtx>) -> CaseResult {
    let base = ctx.user_id("a");
    // `|` is reserved (§8) and a space is outside the documented set.
    let bad_id = format!("{base}|Bad Id");
    let token = match ctx.secret() {
        Some(s) => chatstorm_protocol::token::sign(&chatstorm_protocol::token::Claims::user(&bad_id, None), s),
        // A token endpoint may rightly refuse to issue a token for an invalid id.
        None => ctx.valid_token(&bad_id).await.map_err(|_| {
            CaseError::Skip(
                "the token endpoint issues no token for an invalid user id, and no secret was given".to_owned(),
            )
        })?,
    };
    let u = ctx.user("a").await?;
    let mut ws = u.open_raw(Profile::Js, &token, &bad_id, json!({"id": bad_id})).await?;
    let first = ws.next(ctx.wait).await;
    ensure(
        refused(&first),
        &bad_id,
        "an error frame (code 4) refusing the user id, then close",
        || first.describe(),
    )
}

/// USER-SIZE-5KB: `user_details` over 5 KB is refused.
pub async fn size_5kb(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.details
        .custom
        .insert("blob".into(), json!("x".repeat(MAX_USER_BYTES + 512)));
    let mut ws = u.open(Profile::Js).await?;
    let first = ws.next(ctx.wait).await;
    ensure(
        refused(&first),
        &u.id,
        "an error frame (code 4) refusing a user object over 5 KB, then close",
        || first.describe(),
    )
}

/// USER-CONNECT-UPSERTS: connecting stores `user_details`: another user creating a channel with
/// this user as a member sees the name and custom field it connected with.
pub async fn connect_upserts(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut a = ctx.user("a").await?;
    a.details.name = Some("Stored Name".to_owned());
    a.details.custom.insert("favourite_colour".into(), json!("teal"));
    let (mut wsa, _) = a.connect().await?;
    let _ = wsa.send_close(1000, "done").await;
    let mut b = ctx.user("b").await?;
    let (_wsb, _) = b.connect().await?;
    let cid = ctx.cid("c");
    let r = b.create_channel(&cid, &[&a.id, &b.id]).await?;
    let members = r.json.as_ref().and_then(|v| v.get("members")).and_then(Value::as_array);
    let stored = members
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("user"))
        .find(|u| u.get("id").and_then(Value::as_str) == Some(a.id.as_str()));
    let ok = stored.is_some_and(|u| {
        u.get("name").and_then(Value::as_str) == Some("Stored Name")
            && u.get("favourite_colour").and_then(Value::as_str) == Some("teal")
    });
    ensure(
        ok,
        &b.id,
        &format!(
            "members[].user {{id:{}, name:\"Stored Name\", favourite_colour:\"teal\"}} (upserted at connect)",
            a.id
        ),
        || {
            stored.map_or_else(
                || format!("no member {} in {}", a.id, r.summary()),
                |u| one_line(&u.to_string(), 600),
            )
        },
    )
}
