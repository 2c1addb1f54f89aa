//! READ rules (PROTOCOL.md §7.2): mark read fans out `message.read` to the channel's watchers and
//! `notification.mark_read` to the reader's own connections.

use std::sync::Arc;

use super::ctx::{CaseCtx, CaseResult, expect_event};

/// READ-FANOUT: `POST …/read` sends `message.read` to watchers and `notification.mark_read` to the
/// reader's own connection.
pub async fn fanout(ctx: Arc<CaseCtx>) -> CaseResult {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    let mut b = ctx.user("b").await?;
    let (aid, bid) = (a.id.clone(), b.id.clone());
    let members = [aid.as_str(), bid.as_str()];
    let (mut wsa, _) = a.connect().await?;
    a.watch(&cid, &members, false).await?;
    let (mut wsb, _) = b.connect().await?;
    b.watch(&cid, &members, false).await?;
    a.mark_read(&cid).await?;
    expect_event(
        &mut wsb,
        &b.id,
        "message.read",
        &a.id,
        ctx.wait,
        "watchers get message.read",
    )
    .await?;
    expect_event(
        &mut wsa,
        &a.id,
        "notification.mark_read",
        &a.id,
        ctx.wait,
        "the reader's own connection",
    )
    .await?;
    Ok(())
}
