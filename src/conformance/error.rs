//! ERROR rules (PROTOCOL.md §2.5–2.6, decisions table): every error body, over HTTP and in error
//! frames, carries `code`, `message`, `StatusCode`, `duration`, `more_info` and `details`, and an
//! HTTP error's status equals its `StatusCode`.

use std::sync::Arc;

use chatstorm_protocol::{ErrorBody, Profile};
use serde_json::Value;

use super::auth::{error_of, expect_error_frame};
use super::client::one_line;
use super::ctx::{CaseCtx, CaseResult, ensure};

const FIELDS: &str = "{code, message, StatusCode, duration, more_info, details}";

/// ERROR-HTTP-BODY: HTTP error bodies (a malformed token, an unknown long-poll id) have every
/// field and a `StatusCode` equal to the HTTP status.
pub async fn http_body(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let bad = u
        .rest_with_token(
            "POST",
            "/channels",
            Some(serde_json::json!({"filter_conditions": {}})),
            "not-a-jwt",
        )
        .await?;
    u.connection_id = Some(uuid::Uuid::new_v4().to_string());
    let unknown = u.rest("GET", "/longpoll", None).await?;
    for r in [bad, unknown] {
        let body = r.json.clone().unwrap_or(Value::Null);
        let missing = ErrorBody::missing_fields(&body);
        let status = body.get("StatusCode").and_then(Value::as_u64);
        ensure(
            r.status >= 400 && missing.is_empty() && status == Some(u64::from(r.status)),
            &u.id,
            &format!("an error body {FIELDS} with StatusCode = the HTTP status"),
            || format!("HTTP {} {} (missing: {missing:?})", r.status, one_line(&r.text, 300)),
        )?;
    }
    Ok(())
}

/// ERROR-FRAME-BODY: the `error` of an error frame has every field.
pub async fn frame_body(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, "not-a-jwt").await?;
    let frame = expect_error_frame(&mut ws, &ctx, &u.id, &[5, 43], "malformed token").await?;
    let err = error_of(&frame).cloned().unwrap_or(Value::Null);
    let missing = ErrorBody::missing_fields(&err);
    ensure(
        missing.is_empty(),
        &u.id,
        &format!("error frame with error = {FIELDS}"),
        || format!("missing {missing:?} in {}", one_line(&frame.to_string(), 400)),
    )
}
