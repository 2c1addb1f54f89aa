//! AUTH rules (PROTOCOL.md §2): each token failure gets its documented code in an error frame,
//! `alg: none` and user mismatches are refused, a provider recovers from code 40, a static token
//! is told to stop (close 1000), and REST answers an expired token with HTTP 401 code 40.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatstorm_protocol::Profile;
use chatstorm_protocol::token::Claims;
use serde_json::Value;

use super::client::{Ws, WsEvent, one_line};
use super::ctx::{CaseCtx, CaseError, CaseResult, ScriptedUser, ensure, fail, now_unix};

/// The error object of an error frame (`connection.error` or the legacy bare `{"error":…}`).
pub fn error_of(v: &Value) -> Option<&Value> {
    v.get("error").filter(|e| e.is_object())
}

/// Reads the first frame and requires an error frame whose code is one of `codes`.
///
/// # Errors
/// A failure naming what arrived.
pub async fn expect_error_frame(
    ws: &mut Ws,
    ctx: &CaseCtx,
    who: &str,
    codes: &[i64],
    why: &str,
) -> Result<Value, CaseError> {
    let first = ws.next(ctx.wait).await;
    let code = first
        .json()
        .and_then(error_of)
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64);
    let list = codes.iter().map(i64::to_string).collect::<Vec<_>>().join(" or ");
    match code {
        Some(c) if codes.contains(&c) => Ok(first.json().cloned().unwrap_or(Value::Null)),
        _ => Err(fail(
            who,
            format!("first frame: an error frame with code {list} ({why})"),
            first.describe(),
        )),
    }
}

async fn refused_with(ctx: Arc<CaseCtx>, claims: impl FnOnce(&str) -> Claims, codes: &[i64], why: &str) -> CaseResult {
    let u = ctx.user("a").await?;
    let token = ctx.forge(&claims(&u.id))?;
    let mut ws = u.open_with(Profile::Js, &token).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, codes, why).await.map(|_| ())
}

impl ScriptedUser {
    /// Opens `/connect` with another token and this user's details.
    ///
    /// # Errors
    /// As [`ScriptedUser::open_raw`].
    pub async fn open_with(&self, profile: Profile, token: &str) -> Result<Ws, CaseError> {
        let details = serde_json::to_value(&self.details).unwrap_or(Value::Null);
        self.open_raw(profile, token, &self.id, details).await
    }
}

/// AUTH-EXPIRED-40: an expired token gets an error frame with code 40.
pub async fn expired_40(ctx: Arc<CaseCtx>) -> CaseResult {
    refused_with(
        ctx,
        |id| Claims::user(id, Some(now_unix() - 600)),
        &[40],
        "token expired",
    )
    .await
}

/// AUTH-NOT-YET-VALID-41: a token whose `nbf` is in the future gets code 41.
pub async fn not_yet_valid_41(ctx: Arc<CaseCtx>) -> CaseResult {
    let nbf = now_unix() + 3600;
    refused_with(
        ctx,
        |id| Claims {
            nbf: Some(nbf),
            ..Claims::user(id, None)
        },
        &[41],
        "token not valid yet (nbf)",
    )
    .await
}

/// AUTH-IAT-FUTURE-42: a token issued in the future gets code 42.
pub async fn iat_future_42(ctx: Arc<CaseCtx>) -> CaseResult {
    let iat = now_unix() + 3600;
    refused_with(
        ctx,
        |id| Claims {
            iat: Some(iat),
            ..Claims::user(id, None)
        },
        &[42],
        "token used before issued-at",
    )
    .await
}

/// AUTH-BAD-SIGNATURE: a token signed with another secret gets code 43 (or 5 on newer backends).
pub async fn bad_signature(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let token = chatstorm_protocol::token::sign(&Claims::user(&u.id, None), b"not-the-app-secret-chatstorm");
    let mut ws = u.open_with(Profile::Js, &token).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[43, 5], "signature invalid")
        .await
        .map(|_| ())
}

/// AUTH-MALFORMED-5: a token that is not three segments gets code 5.
pub async fn malformed_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, "not-a-jwt").await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[5], "malformed token")
        .await
        .map(|_| ())
}

/// An unsigned `alg: none` token for `user_id`.
pub fn alg_none_token(user_id: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::json!({"user_id": user_id}).to_string());
    format!("{header}.{payload}.")
}

/// AUTH-ALG-NONE: an unsigned `alg: none` token is refused with an error frame.
pub async fn alg_none(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, &alg_none_token(&u.id)).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[5, 43], "alg none must not be accepted")
        .await
        .map(|_| ())
}

/// AUTH-USER-MISMATCH: a valid token of user A used to connect as user B is refused.
pub async fn user_mismatch(ctx: Arc<CaseCtx>) -> CaseResult {
    let a = ctx.user("a").await?;
    let b_id = ctx.user_id("b");
    let details = serde_json::json!({"id": b_id});
    let mut ws = a.open_raw(Profile::Js, &a.token, &b_id, details).await?;
    let first = ws.next(ctx.wait).await;
    let refused = first.json().and_then(error_of).is_some() || matches!(first, WsEvent::Close(_) | WsEvent::Ended(_));
    ensure(
        refused,
        &b_id,
        "a refusal (error frame, then close) when the token's user_id differs from json.user_id",
        || first.describe(),
    )
}

/// AUTH-REFRESH-40: after code 40, a fresh token from the provider connects.
pub async fn refresh_40(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    let expired = ctx.forge(&Claims::user(&u.id, Some(now_unix() - 600)))?;
    let mut ws = u.open_with(Profile::Js, &expired).await?;
    expect_error_frame(
        &mut ws,
        &ctx,
        &u.id,
        &[40],
        "only code 40 makes SDKs call the token provider",
    )
    .await?;
    drop(ws);
    u.token = ctx.valid_token(&u.id).await?;
    u.connect().await.map(|_| ())
}

/// AUTH-STATIC-40-FATAL: after the code 40 frame the server closes with 1000, which tells a
/// client holding a static token to stop.
pub async fn static_40_fatal(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let expired = ctx.forge(&Claims::user(&u.id, Some(now_unix() - 600)))?;
    let mut ws = u.open_with(Profile::Js, &expired).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[40], "token expired").await?;
    expect_close_1000(&mut ws, &ctx, &u.id).await
}

/// Requires the next event on `ws` to be a close frame with code 1000.
///
/// # Errors
/// A failure naming what came instead.
pub async fn expect_close_1000(ws: &mut Ws, ctx: &CaseCtx, who: &str) -> CaseResult {
    let next = ws.next(ctx.wait).await;
    ensure(
        next == WsEvent::Close(Some(1000)),
        who,
        "a close frame with code 1000 right after the error frame (otherwise SDKs loop reconnecting)",
        || next.describe(),
    )
}

/// AUTH-REST-401-40: a REST call with an expired token gets HTTP 401 with code 40.
pub async fn rest_401_40(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let expired = ctx.forge(&Claims::user(&u.id, Some(now_unix() - 600)))?;
    let body = serde_json::json!({"filter_conditions": {"cid": {"$in": [ctx.cid("c")]}}, "state": true, "watch": false, "limit": 1});
    let r = u.rest_with_token("POST", "/channels", Some(body), &expired).await?;
    ensure(
        r.status == 401 && r.code() == Some(40),
        &u.id,
        "HTTP 401 with body code 40",
        || format!("HTTP {} {}", r.status, one_line(&r.text, 400)),
    )
}
