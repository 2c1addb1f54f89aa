//! TYPING rules (PROTOCOL.md §7.1): typing events sent over HTTP fan out to every watcher of the
//! channel, the sender's own connection included.

use std::sync::Arc;

use chatstorm_protocol::PrivacySettings;

use super::ctx::{CaseCtx, CaseResult, expect_event};

/// TYPING-FANOUT: `typing.start` and `typing.stop` from a user with typing indicators on reach
/// every watcher and the sender itself.
pub async fn fanout(ctx: Arc<CaseCtx>) -> CaseResult {
    let cid = ctx.cid("c");
    let mut a = ctx.user("a").await?;
    a.details.privacy_settings = Some(PrivacySettings::with(true, true));
    let mut b = ctx.user("b").await?;
    let (aid, bid) = (a.id.clone(), b.id.clone());
    let members = [aid.as_str(), bid.as_str()];
    let (mut wsa, _) = a.connect().await?;
    a.watch(&cid, &members, false).await?;
    let (mut wsb, _) = b.connect().await?;
    b.watch(&cid, &members, false).await?;
    for kind in ["typing.start", "typing.stop"] {
        a.typing(&cid, kind).await?;
        expect_event(&mut wsb, &b.id, kind, &a.id, ctx.wait, "watchers get typing events").await?;
        expect_event(
            &mut wsa,
            &a.id,
            kind,
            &a.id,
            ctx.wait,
            "the sender's own connection gets them too",
        )
        .await?;
    }
    Ok(())
}
