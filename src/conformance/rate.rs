//! RATE rules (PROTOCOL.md §9.1): when the target rate-limits, the refusal is HTTP 429 with code 9
//! and a full error body, and responses carry integer `X-RateLimit-*` headers. A bounded probe
//! decides whether the target rate-limits at all; if not, the rules are skipped.

use std::sync::Arc;

use chatstorm_protocol::ErrorBody;
use serde_json::Value;

use super::client::{HttpReply, one_line};
use super::ctx::{CaseCtx, CaseError, ensure};

/// Sends `typing.stop` events until one is refused with 429 or the probe budget is spent.
/// Returns the last accepted answer (if any) and the 429.
async fn probe(ctx: &Arc<CaseCtx>) -> Result<(String, Option<HttpReply>, HttpReply), CaseError> {
    let u = ctx.user("a").await?;
    let cid = ctx.cid("c");
    let path = format!("/channels/{}/event", super::ctx::cid_path(&cid));
    u.create_channel(&cid, &[&u.id]).await?;
    let mut last_ok = None;
    for _ in 0..ctx.rate_probe {
        let r = u
            .rest(
                "POST",
                &path,
                Some(serde_json::json!({"event": {"type": "typing.stop"}})),
            )
            .await?;
        if r.status == 429 {
            return Ok((u.id.clone(), last_ok, r));
        }
        last_ok = Some(r);
    }
    Err(CaseError::Skip(format!(
        "the target did not rate-limit within {} requests to one endpoint",
        ctx.rate_probe
    )))
}

/// RATE-429-CODE-9: a rate-limited request gets HTTP 429 with code 9 and a full error body.
pub async fn code_9(ctx: Arc<CaseCtx>) -> Result<(), CaseError> {
    let (who, _, r) = probe(&ctx).await?;
    let body = r.json.clone().unwrap_or(Value::Null);
    let missing = ErrorBody::missing_fields(&body);
    ensure(
        r.code() == Some(9) && missing.is_empty(),
        &who,
        "HTTP 429 with a full error body, code 9",
        || format!("HTTP {} {} (missing: {missing:?})", r.status, one_line(&r.text, 300)),
    )
}

/// RATE-HEADERS: responses carry integer `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
pub async fn headers(ctx: Arc<CaseCtx>) -> Result<(), CaseError> {
    let (who, last_ok, limited) = probe(&ctx).await?;
    for r in last_ok.iter().chain(std::iter::once(&limited)) {
        let bad: Vec<&str> = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]
            .into_iter()
            .filter(|h| {
                r.header(h)
                    .is_none_or(|v| v.split(',').next().is_none_or(|x| x.trim().parse::<i64>().is_err()))
            })
            .collect();
        ensure(
            bad.is_empty(),
            &who,
            "integer X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset on every response",
            || {
                format!(
                    "HTTP {} missing or non-integer {bad:?}; headers {:?}",
                    r.status, r.headers
                )
            },
        )?;
    }
    Ok(())
}
