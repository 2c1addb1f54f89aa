//! Before any user starts: the run's channels are created with their member lists through
//! server-side calls (a server token minted with the app secret), as a real app's backend
//! would, so every user is a member of the channels it watches, reads and writes to. Without
//! the secret (a target reached only through a token endpoint) this step is skipped and users
//! work with the channels as the target has them. Plain WebSocket users have no channels.

use super::users::channels_of;
use crate::http::HttpClient;
use crate::scenario::Scenario;
use crate::target::Target;
use chatstorm_protocol::token::{Claims, sign};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests in flight at once while creating channels.
const CONCURRENCY: usize = 16;

/// Creates every channel of the run with its members; returns how many were created.
///
/// # Errors
/// The first failure, as one line (the run then does not start: users could not act).
pub async fn create_channels(scenario: &Scenario, target: &Target) -> Result<usize, String> {
    let Some(secret) = &target.secret else {
        return Ok(0);
    };
    if scenario.users.kind == crate::scenario::UserKind::PlainWebsocket {
        return Ok(0);
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for index in 0..scenario.users.count {
        let id = scenario.users.id.id(index);
        for cid in channels_of(scenario, index) {
            members.entry(cid).or_default().push(id.clone());
        }
    }
    let token = sign(&Claims::server(), secret);
    let http = HttpClient::default();
    let key = form_urlencoded::byte_serialize(target.api_key.as_bytes()).collect::<String>();
    let results: Vec<Result<(), String>> = futures_util::stream::iter(members.into_iter().map(|(cid, ids)| {
        let (http, token) = (http.clone(), token.clone());
        let (kind, id) = cid
            .split_once(':')
            .map_or((cid.clone(), String::new()), |(k, i)| (k.to_owned(), i.to_owned()));
        let url = Target::join(&target.http_base, &format!("/channels/{kind}/{id}/query?api_key={key}"));
        async move {
            let body = serde_json::json!({"data": {"members": ids, "created_by_id": ids.first()}, "state": false});
            let headers = [
                ("authorization", token.as_str()),
                ("stream-auth-type", "jwt"),
                ("x-stream-client", "chatstorm-setup"),
            ];
            let resp = http
                .send(http::Method::POST, &url, &headers, Some(&body), Duration::from_secs(30))
                .await?;
            if resp.status >= 300 {
                return Err(format!(
                    "creating {cid}: HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
            Ok(())
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(created)
}
