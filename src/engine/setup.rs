//! Before any user starts: the run's channels are created with their member lists through
//! server-side calls (a server token minted with the app secret), as a real app's backend
//! would, so every user is a member of the channels it watches, reads and writes to. Without
//! the secret (a target reached only through a token endpoint) this step is skipped and users
//! work with the channels as the target has them. Plain WebSocket users have no channels.
//!
//! After the run, [`verify`] asks the target (`POST /channels` with a `cid` filter, which reads
//! and never creates) whether those channels and memberships are still there: a target that
//! restarted empty mid-run must not pass because its users reconnected to a blank server.

use super::figures::StateFigures;
use super::users::channels_of;
use crate::net::{self, snippet};
use crate::scenario::Scenario;
use crate::target::Target;
use chatstorm_protocol::token::{Claims, sign};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Requests in flight at once while creating or verifying channels.
const CONCURRENCY: usize = 16;
/// Channels one verifying query asks for (the mock's and Stream's page size).
const PAGE: usize = 30;
/// Channels verified at most (an even sample of the run's channels beyond).
pub const MAX_VERIFIED: usize = 3000;

/// Why one page of the end-of-run check got no answer (it goes into `StateFigures::error`).
#[derive(Debug, thiserror::Error)]
enum VerifyError {
    /// No usable HTTP answer.
    #[error(transparent)]
    Http(#[from] net::Error),
    /// An error status (with the start of the body).
    #[error("POST /channels: HTTP {0}: {1}")]
    Status(u16, String),
    /// A 2xx answer that is not a channel list.
    #[error("POST /channels: not a channel list: {0}")]
    NotAList(String),
}

/// Why the channels could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No usable HTTP answer (refused, reset, timeout, a body over the limit): the target's fault.
    #[error("creating {cid}: {source}")]
    Unanswered {
        /// The channel.
        cid: String,
        /// What failed.
        source: net::Error,
    },
    /// An HTTP error status.
    #[error("creating {cid}: HTTP {status}: {body}")]
    Status {
        /// The channel.
        cid: String,
        /// The status.
        status: u16,
        /// The first 200 bytes of the body.
        body: String,
    },
    /// A success status with a body that is not a JSON object.
    #[error("creating {cid}: HTTP {status} with a body that is not JSON: {body}")]
    NotJson {
        /// The channel.
        cid: String,
        /// The status.
        status: u16,
        /// The first 200 bytes of the body.
        body: String,
    },
}

impl SetupError {
    /// True when the target refused the request as unauthorised or malformed (4xx): the key or
    /// secret is wrong, a configuration problem (exit 2); everything else is the target failing
    /// (exit 5).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Status { status, .. } if (400..500).contains(status))
    }
}

/// The channels setup created, with their members, for [`verify`].
#[derive(Debug, Default, Clone)]
pub struct Created {
    /// Members by channel id (`type:id`).
    pub members: BTreeMap<String, Vec<String>>,
}

fn server_headers(token: &str) -> [(&'static str, &str); 3] {
    [
        ("authorization", token),
        ("stream-auth-type", "jwt"),
        ("x-stream-client", "chatstorm-setup"),
    ]
}

/// Creates every channel of the run with its members; returns what was created (empty when
/// setup is skipped).
///
/// # Errors
/// The first failure (the run then does not start: users could not act).
pub async fn create_channels(scenario: &Scenario, target: &Target) -> Result<Created, SetupError> {
    let Some(secret) = &target.secret else {
        return Ok(Created::default());
    };
    if scenario.users.kind == crate::scenario::UserKind::PlainWebsocket {
        return Ok(Created::default());
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for index in 0..scenario.users.count {
        let id = scenario.users.id.id(index);
        for cid in channels_of(scenario, index) {
            members.entry(cid).or_default().push(id.clone());
        }
    }
    let token = sign(&Claims::server(), secret);
    let http = net::Client::with_tls(target.tls.clone());
    let key = form_urlencoded::byte_serialize(target.api_key.as_bytes()).collect::<String>();
    let results: Vec<Result<(), SetupError>> = futures_util::stream::iter(members.iter().map(|(cid, ids)| {
        let (http, token) = (http.clone(), token.clone());
        let (kind, id) = cid
            .split_once(':')
            .map_or((cid.clone(), String::new()), |(k, i)| (k.to_owned(), i.to_owned()));
        let url = Target::join(&target.http_base, &format!("/channels/{kind}/{id}/query?api_key={key}"));
        async move {
            let body = serde_json::json!({"data": {"members": ids, "created_by_id": ids.first()}, "state": false});
            let resp = post_as_server(&http, &url, &token, &body)
                .await
                .map_err(|source| SetupError::Unanswered {
                    cid: cid.clone(),
                    source,
                })?;
            if resp.status >= 300 {
                return Err(SetupError::Status {
                    cid: cid.clone(),
                    status: resp.status,
                    body: snippet(&resp.body),
                });
            }
            // Any JSON object (its values skipped unbuilt): setup only needs to know it is one.
            if serde_json::from_slice::<std::collections::HashMap<String, serde::de::IgnoredAny>>(&resp.body).is_err() {
                return Err(SetupError::NotJson {
                    cid: cid.clone(),
                    status: resp.status,
                    body: snippet(&resp.body),
                });
            }
            Ok(())
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>, SetupError>>()?;
    Ok(Created { members })
}

/// What one verifying query found: members listed per channel, and the member count when the
/// list may be cut short.
type Found = BTreeMap<String, (BTreeSet<String>, Option<u64>)>;

/// The parts of a `POST /channels` answer that [`verify`] reads; everything else (the members'
/// user objects, messages, read states) is skipped without being built: reading the whole
/// answer as a `Value` tree was 6 % of a 10,000-user run's CPU.
#[derive(serde::Deserialize)]
struct ChannelList {
    channels: Vec<ListedChannel>,
}

#[derive(serde::Deserialize)]
struct ListedChannel {
    #[serde(default)]
    channel: Option<ListedInfo>,
    #[serde(default)]
    members: Option<Vec<ListedMember>>,
}

#[derive(serde::Deserialize)]
struct ListedInfo {
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    member_count: Option<u64>,
}

#[derive(serde::Deserialize)]
struct ListedMember {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user: Option<ListedUser>,
}

#[derive(serde::Deserialize)]
struct ListedUser {
    #[serde(default)]
    id: Option<String>,
}

fn found_in(body: &[u8]) -> Option<Found> {
    let list: ChannelList = serde_json::from_slice(body).ok()?;
    let mut out = Found::new();
    for c in list.channels {
        let Some(info) = c.channel else { continue };
        let Some(cid) = info.cid else { continue };
        let listed: BTreeSet<String> = c
            .members
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.user_id.or_else(|| m.user.and_then(|u| u.id)))
            .collect();
        out.insert(cid, (listed, info.member_count));
    }
    Some(out)
}

/// One `POST` with a server token, as a backend's server SDK sends it (setup and its check).
async fn post_as_server(http: &net::Client, url: &str, token: &str, body: &Value) -> Result<net::Response, net::Error> {
    http.send(
        http::Method::POST,
        url,
        &server_headers(token),
        Some(body.to_string().into()),
        Duration::from_secs(30),
    )
    .await
}

/// Asks the target whether the channels and memberships setup created are still there (at
/// most [`MAX_VERIFIED`] channels, an even sample beyond). `None` when setup created nothing.
pub async fn verify(target: &Target, created: &Created) -> Option<StateFigures> {
    let secret = target.secret.as_ref()?;
    if created.members.is_empty() {
        return None;
    }
    let step = created.members.len().div_ceil(MAX_VERIFIED);
    let sample: Vec<(&String, &Vec<String>)> = created.members.iter().step_by(step).collect();
    let token = sign(&Claims::server(), secret);
    let http = net::Client::with_tls(target.tls.clone());
    let key = form_urlencoded::byte_serialize(target.api_key.as_bytes()).collect::<String>();
    let url = Target::join(&target.http_base, &format!("/channels?api_key={key}"));
    // Each channel comes back with its full state (members and their user objects, about 1 KB a
    // member), and the client reads at most 1 MiB a body: about 240 members a page.
    let widest = sample.iter().map(|(_, m)| m.len()).max().unwrap_or(1).max(1);
    let per_page = (240 / widest).clamp(1, PAGE);
    let pages: Vec<Result<Found, VerifyError>> = futures_util::stream::iter(sample.chunks(per_page).map(|page| {
        let (http, token, url) = (http.clone(), token.clone(), url.clone());
        let cids: Vec<&String> = page.iter().map(|(c, _)| *c).collect();
        async move {
            let body = serde_json::json!({
                "filter_conditions": {"cid": {"$in": cids}},
                "limit": per_page,
                "state": true,
                "watch": false,
                "presence": false,
                "message_limit": 0,
            });
            let resp = post_as_server(&http, &url, &token, &body).await?;
            if resp.status >= 300 {
                return Err(VerifyError::Status(resp.status, snippet(&resp.body)));
            }
            found_in(&resp.body).ok_or_else(|| VerifyError::NotAList(snippet(&resp.body)))
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let mut found = Found::new();
    let mut figures = StateFigures::default();
    for p in pages {
        match p {
            Ok(f) => found.extend(f),
            Err(e) => {
                figures.error.get_or_insert(e.to_string());
            }
        }
    }
    if figures.error.is_some() {
        return Some(figures);
    }
    for (cid, members) in sample {
        figures.channels_checked += 1;
        figures.memberships_checked += members.len() as u64;
        let Some((listed, count)) = found.get(cid.as_str()) else {
            figures.channels_missing += 1;
            figures.memberships_missing += members.len() as u64;
            if figures.examples.len() < 5 {
                figures.examples.push(format!("channel {cid}"));
            }
            continue;
        };
        // A member list cut short by the server's page size is judged by its count.
        let cut = count.is_some_and(|n| n > listed.len() as u64);
        let missing: Vec<&String> = if cut {
            let n = (members.len() as u64).saturating_sub(count.unwrap_or(0));
            members.iter().take(n as usize).collect()
        } else {
            members.iter().filter(|m| !listed.contains(m.as_str())).collect()
        };
        figures.memberships_missing += missing.len() as u64;
        for m in missing {
            if figures.examples.len() < 5 {
                figures.examples.push(format!("{m} in {cid}"));
            }
        }
    }
    Some(figures)
}
