//! The REST calls a live user makes, one at a time: watch a channel, recover after a reconnect
//! (`POST /channels` with `cid $in` for JS, `POST /sync` for Swift/Unity), typing, mark read, send
//! a message, toggle privacy. Each call carries the SDK's query and headers, is measured as
//! `rest.<endpoint>`, and on HTTP code 40 refreshes the token (provider mode) and is sent again once;
//! Unity instead reconnects first (the driver's `RestExpired::ReconnectAndResend` path).

use super::auth;
use super::delivery::{STAMP_KEY, Stamp};
use super::http::{self, HttpError, Response, StreamAuth};
use super::profile::{RECOVER_LIMIT, RestExpired};
use super::record::{Counter, Metric, RestEndpoint};
use super::{UserCtx, UserSpec};
use chatstorm_protocol::Profile;
use chatstorm_protocol::rest::{
    MarkReadRequest, PartialUpdateUsersRequest, PartialUserUpdate, QueryChannelsRequest, SyncRequest,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One REST job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Watch the channel at this position of the spec's list.
    Watch(u16),
    /// JS recovery: query (and watch) the first 30 channels at once.
    RecoverQuery,
    /// Swift/Unity recovery: `/sync` with `watch:true` from this watermark (µs since the epoch of
    /// the newest event seen; 0: now). Swift then watches each channel again.
    Sync(u64),
    /// `typing.start` on a channel, stamped.
    Typing(u16, Stamp),
    /// Mark a channel read (the stamp is also in the shared read table: the event carries none).
    Read(u16, Stamp),
    /// Send a stamped message.
    Message(u16, Stamp),
    /// `PATCH /users` with the given switches.
    Privacy(Option<bool>, Option<bool>),
}

impl Job {
    /// The endpoint it is measured under.
    pub fn endpoint(self) -> RestEndpoint {
        match self {
            Self::Watch(_) => RestEndpoint::ChannelQuery,
            Self::RecoverQuery => RestEndpoint::Channels,
            Self::Sync(_) => RestEndpoint::Sync,
            Self::Typing(..) => RestEndpoint::Event,
            Self::Read(..) => RestEndpoint::Read,
            Self::Message(..) => RestEndpoint::Message,
            Self::Privacy(..) => RestEndpoint::UsersPatch,
        }
    }
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    /// The job.
    pub job: Job,
    /// The final response, or why there was none.
    pub result: Result<Response, HttpError>,
    /// A token fetched after a code 40, for the user to keep.
    pub new_token: Option<String>,
    /// The connection id the call was made for: a watch answered after that connection ended
    /// registered the old connection, not the user's current one.
    pub connection_id: String,
}

impl Done {
    /// Whether the call succeeded (2xx).
    pub fn ok(&self) -> bool {
        self.result.as_ref().is_ok_and(|r| (200..300).contains(&r.status))
    }
}

/// The `created_at` Unity sends in its typing events: the default of a .NET `DateTimeOffset`.
pub const UNITY_DEFAULT_CREATED_AT: &str = "0001-01-01T00:00:00+00:00";

/// `"messaging:general"` → `/channels/messaging/general`.
pub fn channel_path(cid: &str) -> String {
    let (kind, id) = cid.split_once(':').unwrap_or(("messaging", cid));
    format!("/channels/{kind}/{id}")
}

fn request(spec: &UserSpec, job: Job) -> (::http::Method, String, Value) {
    let cid = |i: u16| {
        spec.channels
            .get(usize::from(i))
            .map_or("messaging:unknown", String::as_str)
    };
    let post = ::http::Method::POST;
    match job {
        Job::Watch(i) => (
            post,
            format!("{}/query", channel_path(cid(i))),
            // Unity always subscribes to presence when it watches (U.6).
            json!({"data": {}, "state": true, "watch": true, "presence": spec.profile == Profile::Unity}),
        ),
        Job::RecoverQuery => {
            let cids: Vec<&String> = spec.channels.iter().take(RECOVER_LIMIT).collect();
            let body = QueryChannelsRequest {
                filter_conditions: json!({"cid": {"$in": cids}}),
                sort: Some(json!([{"field": "last_message_at", "direction": -1}])),
                state: Some(true),
                watch: Some(true),
                presence: Some(false),
                limit: Some(RECOVER_LIMIT as u32),
                ..Default::default()
            };
            (
                post,
                "/channels".to_owned(),
                serde_json::to_value(body).unwrap_or_default(),
            )
        }
        Job::Sync(since_us) => {
            let last_sync_at = if since_us == 0 {
                chatstorm_protocol::time::now_rfc3339()
            } else {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(since_us);
                chatstorm_protocol::time::format_rfc3339(t)
            };
            let body = SyncRequest {
                channel_cids: spec.channels.clone(),
                last_sync_at: Some(last_sync_at),
                watch: Some(true),
            };
            (post, "/sync".to_owned(), serde_json::to_value(body).unwrap_or_default())
        }
        Job::Typing(i, stamp) => {
            let mut event = json!({"type": "typing.start", STAMP_KEY: stamp.to_value()});
            if spec.profile == Profile::Unity {
                // Unity's DTO has a non-nullable `created_at`, so its default goes out (U.6).
                event["created_at"] = UNITY_DEFAULT_CREATED_AT.into();
            }
            (
                post,
                format!("{}/event", channel_path(cid(i))),
                json!({ "event": event }),
            )
        }
        Job::Read(i, _) => (
            post,
            format!("{}/read", channel_path(cid(i))),
            serde_json::to_value(MarkReadRequest::default()).unwrap_or_default(),
        ),
        Job::Message(i, stamp) => {
            let mut message = Map::new();
            message.insert("id".into(), format!("{}-{}", spec.id, stamp.seq).into());
            message.insert("text".into(), format!("chatstorm message {}", stamp.seq).into());
            message.insert(STAMP_KEY.into(), stamp.to_value());
            (
                post,
                format!("{}/message", channel_path(cid(i))),
                json!({"message": message, "skip_push": true}),
            )
        }
        Job::Privacy(typing, read) => {
            let mut privacy = Map::new();
            if let Some(on) = typing {
                privacy.insert("typing_indicators".into(), json!({"enabled": on}));
            }
            if let Some(on) = read {
                privacy.insert("read_receipts".into(), json!({"enabled": on}));
            }
            let mut set = Map::new();
            set.insert("privacy_settings".into(), Value::Object(privacy));
            let body = PartialUpdateUsersRequest {
                users: vec![PartialUserUpdate {
                    id: spec.id.clone(),
                    set,
                    unset: Vec::new(),
                }],
            };
            (
                ::http::Method::PATCH,
                "/users".to_owned(),
                serde_json::to_value(body).unwrap_or_default(),
            )
        }
    }
}

struct Call<'a> {
    ctx: &'a UserCtx,
    spec: &'a UserSpec,
    endpoint: RestEndpoint,
    method: &'a ::http::Method,
    path: &'a str,
    body: &'a bytes::Bytes,
    connection_id: &'a str,
    timeout: std::time::Duration,
}

impl Call<'_> {
    /// One request; `rest.<endpoint>` gets the server's time only (from when the request left the
    /// harness: a wait for a REST slot is `generator.queue`, see `super::http`).
    async fn send(&self, token: &str) -> Result<Response, HttpError> {
        let auth = StreamAuth {
            api_key: &self.ctx.target.api_key,
            user_id: &self.spec.id,
            connection_id: self.connection_id,
            token,
            user_agent: self.spec.profile.user_agent(),
        };
        let url = auth.url(&self.ctx.target.http_base, self.path, &[]);
        let body = Some(self.body.clone());
        let out = http::send_on(
            &self.ctx.http,
            http::Lane::Rest,
            self.method.clone(),
            &url,
            &auth.headers(),
            body,
            self.timeout,
        )
        .await;
        let rec = &self.ctx.recorder;
        if !out.result.as_ref().is_err_and(HttpError::is_saturated) {
            rec.count(Counter::RestRequests);
            rec.record(Metric::Rest(self.endpoint), out.sent.elapsed());
        }
        out.result
    }
}

/// Sends after code 40 that JS makes before the harness gives the call up. JS itself has no limit
/// (its `doAxiosRequest` refreshes and re-issues for as long as the server answers 40); the
/// harness stops after this many so that a target that answers 40 to every token cannot keep a
/// user's call alive for the whole run. With JS's back-off this is more than a minute of tries.
pub const JS_REFRESH_RESENDS: u32 = 12;

/// Runs one job to the end: send, and on code 40 with a provider, fetch a token and send again:
/// once for the mobile SDKs, and for JS as its HTTP client does (re-issue at once the first time,
/// then wait `retryInterval(consecutive failures)` before each further try).
pub async fn run(ctx: Arc<UserCtx>, spec: Arc<UserSpec>, job: Job, token: String, connection_id: String) -> Done {
    let (method, path, body) = request(&spec, job);
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let params = super::profile::params(spec.profile);
    let rec = &ctx.recorder;
    let call = Call {
        ctx: &ctx,
        spec: &spec,
        endpoint: job.endpoint(),
        method: &method,
        path: &path,
        body: &body,
        connection_id: &connection_id,
        timeout: params.http_timeout,
    };
    let mut result = call.send(&token).await;
    let mut new_token = None;
    // Unity does not refresh in place: its driver reconnects and resends (`RestExpired`).
    let in_place = params.rest_expired == RestExpired::RefreshAndResend;
    let resends = if spec.profile == Profile::Js {
        JS_REFRESH_RESENDS
    } else {
        1
    };
    let mut failures = 0u32;
    while failures < resends
        && in_place
        && spec.token.mode == auth::TokenMode::Provider
        && result.as_ref().is_ok_and(|r| r.error_code() == Some(40))
    {
        if failures > 0 {
            let unit = super::selected_unit(spec.seed, u64::from(failures) ^ 0x5EED_0040);
            tokio::time::sleep(params.retry_delay(failures, unit)).await;
        }
        failures += 1;
        let fetched = auth::fetch(&ctx.target.auth, &ctx.http, rec, &spec.id, spec.token.ttl, spec.seed).await;
        let Ok(t) = fetched else { break };
        result = call.send(&t).await;
        new_token = Some(t);
    }
    let done = Done {
        job,
        result,
        new_token,
        connection_id,
    };
    if !done.ok() && !done.result.as_ref().is_err_and(HttpError::is_saturated) {
        rec.count(Counter::RestFailures);
        if let Some(code) = done.result.as_ref().ok().and_then(Response::error_code) {
            rec.error_code(u32::try_from(code).unwrap_or(0));
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(channel_path("messaging:ch-3"), "/channels/messaging/ch-3");
        assert_eq!(channel_path("plain"), "/channels/messaging/plain");
    }
}
