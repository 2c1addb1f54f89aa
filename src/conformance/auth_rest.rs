//! AUTH rules beyond the token codes of `auth.rs` (PROTOCOL.md §2, §9.2): every way a request can
//! be unauthenticated (api key, auth type, token missing, malformed, badly signed, not yet valid,
//! `alg: none`, a server or dev token where a user one belongs) or unauthorized (another user's
//! data, connection or identity; an anonymous write) is answered with its documented code and
//! never served.
//!
//! The REST probe is a harmless read (`POST /channels` filtered on one cid, as `recoverState`
//! sends it): a server that serves it answers 2xx, which is the failure's evidence.

use std::sync::Arc;

use chatstorm_protocol::Profile;
use chatstorm_protocol::connect::{AuthType, ConnectPayload, build_connect_request};
use chatstorm_protocol::token::{self, Claims};
use serde_json::{Value, json};

use super::auth::{alg_none_token, error_of, expect_error_frame};
use super::client::{Call, HttpReply, Ws, WsEvent, one_line};
use super::ctx::{CaseCtx, CaseError, CaseResult, ScriptedUser, cid_path, ensure, fail, now_unix};
use crate::target::Target;

/// The credentials of one probe; `None` leaves the part out.
#[derive(Debug, Clone, Default)]
struct Creds {
    api_key: Option<String>,
    token: Option<String>,
    auth_type: Option<String>,
    user_id: Option<String>,
}

/// Sends `method path` with exactly `creds` (query `api_key`, `user_id`; headers
/// `Authorization`, `stream-auth-type`) as `who`.
async fn send(
    ctx: &CaseCtx,
    who: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    creds: Creds,
) -> Result<HttpReply, CaseError> {
    let query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(k) = &creds.api_key {
            q.append_pair("api_key", k);
        }
        if let Some(u) = &creds.user_id {
            q.append_pair("user_id", u);
        }
        q.finish()
    };
    let url = Target::join(&ctx.target.http_base, &format!("{path}?{query}"));
    let mut headers = vec![("x-stream-client".to_owned(), Profile::Js.user_agent().to_owned())];
    if let Some(t) = creds.token {
        headers.push(("authorization".to_owned(), t));
    }
    if let Some(t) = creds.auth_type {
        headers.push(("stream-auth-type".to_owned(), t));
    }
    ctx.http
        .send(
            &ctx.log,
            who,
            Call {
                method,
                url: &url,
                headers: &headers,
                body: body.as_ref(),
            },
            ctx.wait,
        )
        .await
        .map_err(|e| fail(who, format!("an answer to {method} {path}"), e))
}

/// The probe: query channels for one cid of the case.
async fn probe(ctx: &CaseCtx, who: &str, creds: Creds) -> Result<HttpReply, CaseError> {
    let body =
        json!({"filter_conditions": {"cid": {"$in": [ctx.cid("c")]}}, "state": true, "watch": false, "limit": 1});
    send(ctx, who, "POST", "/channels", Some(body), creds).await
}

/// Requires HTTP `status` with a body code among `codes`.
fn refused(r: &HttpReply, who: &str, status: u16, codes: &[i64], why: &str) -> CaseResult {
    let list = codes.iter().map(i64::to_string).collect::<Vec<_>>().join(" or ");
    ensure(
        r.status == status && r.code().is_some_and(|c| codes.contains(&c)),
        who,
        &format!("HTTP {status} with code {list} ({why}), never served"),
        || r.summary(),
    )
}

/// A probe as user `a` with a valid token and the documented credentials, changed by `edit`.
async fn probe_as_a(ctx: &Arc<CaseCtx>, edit: impl FnOnce(&mut Creds)) -> Result<(String, HttpReply), CaseError> {
    let a = ctx.user("a").await?;
    let mut c = Creds {
        api_key: Some(ctx.target.api_key.clone()),
        token: Some(a.token.clone()),
        auth_type: Some("jwt".to_owned()),
        user_id: Some(a.id.clone()),
    };
    edit(&mut c);
    let r = probe(ctx, &a.id, c).await?;
    Ok((a.id, r))
}

/// A probe as `a` with the token `token(a's id)` in place of its own.
async fn probe_with_token(
    ctx: &Arc<CaseCtx>,
    token: impl FnOnce(&str) -> Result<String, CaseError>,
) -> Result<(String, HttpReply), CaseError> {
    let a = ctx.user("a").await?;
    let t = token(&a.id)?;
    probe_as_a_with(ctx, a, t).await
}

async fn probe_as_a_with(ctx: &Arc<CaseCtx>, a: ScriptedUser, token: String) -> Result<(String, HttpReply), CaseError> {
    let c = Creds {
        api_key: Some(ctx.target.api_key.clone()),
        token: Some(token),
        auth_type: Some("jwt".to_owned()),
        user_id: Some(a.id.clone()),
    };
    let r = probe(ctx, &a.id, c).await?;
    Ok((a.id, r))
}

/// AUTH-REST-API-KEY-MISSING-2: a REST call without `api_key` gets HTTP 401 with code 2.
pub async fn rest_api_key_missing_2(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_as_a(&ctx, |c| c.api_key = None).await?;
    refused(&r, &who, 401, &[2], "access key missing")
}

/// AUTH-REST-API-KEY-WRONG-2: a REST call with an unknown `api_key` gets HTTP 401 with code 2.
pub async fn rest_api_key_wrong_2(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_as_a(&ctx, |c| c.api_key = Some("not-the-api-key-chatstorm".to_owned())).await?;
    refused(&r, &who, 401, &[2], "access key unknown")
}

/// AUTH-REST-AUTH-TYPE-5: a REST call without `stream-auth-type` gets HTTP 401 with code 5.
pub async fn rest_auth_type_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_as_a(&ctx, |c| c.auth_type = None).await?;
    refused(&r, &who, 401, &[5], "stream-auth-type missing")
}

/// AUTH-REST-NO-TOKEN-5: a `jwt` REST call without `Authorization` gets HTTP 401 with code 5.
pub async fn rest_no_token_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_as_a(&ctx, |c| c.token = None).await?;
    refused(&r, &who, 401, &[5], "token missing")
}

/// AUTH-REST-MALFORMED-5: a REST call with a token that is not a JWT gets HTTP 401 with code 5.
pub async fn rest_malformed_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_with_token(&ctx, |_| Ok("not-a-jwt".to_owned())).await?;
    refused(&r, &who, 401, &[5], "malformed token")
}

/// AUTH-REST-BAD-SIGNATURE: a REST call with a token signed with another secret gets HTTP 401
/// with code 43 (or 5 on newer backends).
pub async fn rest_bad_signature(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_with_token(&ctx, |id| {
        Ok(token::sign(&Claims::user(id, None), b"not-the-app-secret-chatstorm"))
    })
    .await?;
    refused(&r, &who, 401, &[43, 5], "signature invalid")
}

/// AUTH-REST-NOT-YET-VALID-41: a REST call with a token whose `nbf` is in the future gets HTTP
/// 401 with code 41.
pub async fn rest_not_yet_valid_41(ctx: Arc<CaseCtx>) -> CaseResult {
    let c = Arc::clone(&ctx);
    let (who, r) = probe_with_token(&ctx, move |id| {
        c.forge(&Claims {
            nbf: Some(now_unix() + 3600),
            ..Claims::user(id, None)
        })
    })
    .await?;
    refused(&r, &who, 401, &[41], "token not valid yet")
}

/// AUTH-REST-IAT-FUTURE-42: a REST call with a token issued in the future gets HTTP 401 with
/// code 42.
pub async fn rest_iat_future_42(ctx: Arc<CaseCtx>) -> CaseResult {
    let c = Arc::clone(&ctx);
    let (who, r) = probe_with_token(&ctx, move |id| {
        c.forge(&Claims {
            iat: Some(now_unix() + 3600),
            ..Claims::user(id, None)
        })
    })
    .await?;
    refused(&r, &who, 401, &[42], "token used before issued-at")
}

/// AUTH-REST-NO-USER-CLAIM-5: a REST call with a correctly signed token that is neither a user
/// token (no `user_id`) nor a server token gets HTTP 401 with code 5.
pub async fn rest_no_user_claim_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let c = Arc::clone(&ctx);
    let (who, r) = probe_with_token(&ctx, move |_| {
        c.forge(&Claims {
            exp: Some(now_unix() + 3600),
            ..Claims::default()
        })
    })
    .await?;
    refused(&r, &who, 401, &[5], "a token without user_id is no user's token")
}

/// AUTH-REST-CLAIM-TYPE-5: a REST call with a correctly signed token whose `user_id` is a number
/// gets HTTP 401 with code 5 (claim types are strict).
pub async fn rest_claim_type_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let Some(secret) = ctx.secret().map(<[u8]>::to_vec) else {
        return Err(CaseError::Skip(
            "needs tokens forged with the app secret; the target was given only a token endpoint".to_owned(),
        ));
    };
    let (who, r) = probe_with_token(&ctx, move |_| {
        Ok(token::sign_json(
            &json!({"user_id": 12345, "exp": now_unix() + 3600}),
            &secret,
        ))
    })
    .await?;
    refused(&r, &who, 401, &[5], "user_id must be a string")
}

/// AUTH-REST-ALG-NONE: a REST call with an unsigned `alg: none` token gets HTTP 401 (code 5 or
/// 43).
pub async fn rest_alg_none(ctx: Arc<CaseCtx>) -> CaseResult {
    let (who, r) = probe_with_token(&ctx, |id| Ok(alg_none_token(id))).await?;
    refused(&r, &who, 401, &[5, 43], "alg none must not be accepted")
}

/// AUTH-REST-USER-MISMATCH: a REST call whose `user_id` parameter names another user than the
/// token is refused (401 or 403), never served.
pub async fn rest_user_mismatch(ctx: Arc<CaseCtx>) -> CaseResult {
    let other = ctx.user_id("b");
    let (who, r) = probe_as_a(&ctx, |c| c.user_id = Some(other)).await?;
    ensure(
        matches!(r.status, 401 | 403),
        &who,
        "a refusal (HTTP 401 or 403) when user_id differs from the token's user_id, never served",
        || r.summary(),
    )
}

/// Opens `/connect` as `u` with `api_key` and `token` (JS profile).
async fn open_with_key(u: &ScriptedUser, api_key: &str, token: &str) -> Result<Ws, CaseError> {
    let ctx = u.ctx();
    let payload = ConnectPayload {
        user_id: u.id.clone(),
        user_details: serde_json::to_value(&u.details).unwrap_or(Value::Null),
        device: None,
        client_request_id: Some(uuid::Uuid::new_v4().to_string()),
        server_determines_connection_id: None,
        user_token: None,
        x_stream_client: None,
    };
    let req = build_connect_request(Profile::Js, api_key, token, AuthType::Jwt, &payload);
    let url = Target::join(&ctx.target.ws_base, &req.path_and_query);
    Ws::open(&ctx.log, &u.id, &url, &req.headers, ctx.wait, ctx.target.tls.as_ref())
        .await
        .map_err(|e| {
            fail(
                &u.id,
                "the /connect upgrade completes (HTTP 101); errors come as a frame after it (§1.4, §2.5)",
                e.detail,
            )
        })
}

/// AUTH-WS-API-KEY-2: `/connect` with an unknown `api_key` gets an error frame with code 2.
pub async fn ws_api_key_2(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = open_with_key(&u, "not-the-api-key-chatstorm", &u.token).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[2], "access key unknown")
        .await
        .map(|_| ())
}

/// AUTH-WS-NO-TOKEN-5: `/connect` with an empty `authorization` and `stream-auth-type=jwt` gets
/// an error frame with code 5.
pub async fn ws_no_token_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, "").await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[5], "token missing")
        .await
        .map(|_| ())
}

/// AUTH-WS-DEV-TOKEN-5: with auth checks on, a developer token (`.devtoken` signature) gets an
/// error frame with code 5 (or 43).
pub async fn ws_dev_token_5(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let mut ws = u.open_with(Profile::Js, &token::dev_token(&u.id)).await?;
    expect_error_frame(&mut ws, &ctx, &u.id, &[5, 43], "developer tokens need auth checks off")
        .await
        .map(|_| ())
}

/// AUTH-NO-EXP-VALID: a user token without `exp` and `iat` (what JS `createToken(id)` makes)
/// connects.
pub async fn no_exp_valid(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut u = ctx.user("a").await?;
    u.token = ctx.forge(&Claims::user(&u.id, None))?;
    u.connect().await.map(|_| ())
}

/// AUTH-WS-SERVER-TOKEN: a server token (`{"server": true}`, no `user_id`) does not open a user
/// connection.
pub async fn ws_server_token(ctx: Arc<CaseCtx>) -> CaseResult {
    let u = ctx.user("a").await?;
    let server = ctx.forge(&Claims::server())?;
    let mut ws = u.open_with(Profile::Js, &server).await?;
    let first = ws.next(ctx.wait).await;
    let refused = first.json().and_then(error_of).is_some() || matches!(first, WsEvent::Close(_) | WsEvent::Ended(_));
    ensure(
        refused,
        &u.id,
        "a refusal (error frame, then close) of a server token on /connect",
        || first.describe(),
    )
}

/// `a` and `b` with valid tokens; `b` is upserted server-side or by connecting once, so the
/// permission cases act on an existing user.
async fn two(ctx: &Arc<CaseCtx>) -> Result<(ScriptedUser, ScriptedUser), CaseError> {
    let a = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let (ws, _) = b.connect().await?;
    drop(ws);
    Ok((a, b))
}

/// AUTH-PERM-UPSERT-OTHER-17: a user token upserting another user (`POST /users`) gets HTTP 403
/// with code 17.
pub async fn perm_upsert_other_17(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, b) = two(&ctx).await?;
    let body = json!({"users": {b.id.clone(): {"id": b.id, "name": "renamed by another user"}}});
    let r = a.rest("POST", "/users", Some(body)).await?;
    refused(&r, &a.id, 403, &[17], "a user may change only itself")
}

/// AUTH-PERM-PARTIAL-OTHER-17: a user token partially updating another user (`PATCH /users`)
/// gets HTTP 403 with code 17.
pub async fn perm_partial_other_17(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, b) = two(&ctx).await?;
    let body = json!({"users": [{"id": b.id, "set": {"privacy_settings": {"read_receipts": {"enabled": false}}}}]});
    let r = a.rest("PATCH", "/users", Some(body)).await?;
    refused(&r, &a.id, 403, &[17], "a user may change only itself")
}

/// AUTH-PERM-CONNECTION-OTHER: watching with another user's `connection_id` is refused (HTTP 403
/// code 17), so no one binds channels to someone else's socket.
pub async fn perm_connection_other(ctx: Arc<CaseCtx>) -> CaseResult {
    let mut a = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let cid = ctx.cid("c");
    let members = [a.id.clone(), b.id.clone()];
    let (_wsb, _) = b.connect().await?;
    let (_wsa, _) = a.connect().await?;
    a.connection_id = b.connection_id.clone();
    let body = json!({"data": {"members": members}, "state": true, "watch": true, "presence": false});
    let r = a
        .rest("POST", &format!("/channels/{}/query", cid_path(&cid)), Some(body))
        .await?;
    refused(&r, &a.id, 403, &[17], "the connection_id belongs to another user")
}

/// AUTH-PERM-ACT-AS-OTHER: a user token naming another user in the body (`user_id`, the
/// server-side form of mark read) is refused or acts as the token's user, never as the named one.
pub async fn perm_act_as_other(ctx: Arc<CaseCtx>) -> CaseResult {
    let (a, b) = two(&ctx).await?;
    let cid = ctx.cid("c");
    a.create_channel(&cid, &[a.id.as_str(), b.id.as_str()]).await?;
    let r = a
        .rest(
            "POST",
            &format!("/channels/{}/read", cid_path(&cid)),
            Some(json!({"user_id": b.id})),
        )
        .await?;
    let actor = r
        .json
        .as_ref()
        .and_then(|v| v.pointer("/event/user/id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ok = !(200..300).contains(&r.status) || actor.as_deref() != Some(b.id.as_str());
    ensure(
        ok,
        &a.id,
        "a refusal, or the read marked as the token's user; never as the user named in the body",
        || format!("{} (acted as {actor:?})", r.summary()),
    )
}

/// AUTH-ANON-WRITE: an anonymous request (`stream-auth-type: anonymous`, no token) cannot write:
/// sending a message is refused (HTTP 401 or 403).
pub async fn anon_write(ctx: Arc<CaseCtx>) -> CaseResult {
    let a = ctx.user("a").await?;
    let cid = ctx.cid("c");
    a.create_channel(&cid, &[a.id.as_str()]).await?;
    let body = json!({"message": {"text": "anonymous write"}});
    let who = "anonymous";
    let r = send(
        &ctx,
        who,
        "POST",
        &format!("/channels/{}/message", cid_path(&cid)),
        Some(body),
        Creds {
            api_key: Some(ctx.target.api_key.clone()),
            token: None,
            auth_type: Some("anonymous".to_owned()),
            user_id: None,
        },
    )
    .await?;
    ensure(
        matches!(r.status, 401 | 403),
        who,
        "a refusal (HTTP 401 or 403): anonymous users cannot write",
        || one_line(&r.summary(), 600),
    )
}
