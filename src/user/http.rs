//! The HTTP side of a user, with two lanes, as a browser or mobile app has: REST calls go
//! through one shared [`crate::net::Client`] (bounded idle pool) with a cap on calls in flight, and held
//! requests (long-poll connects and polls) through a second client with no cap, because a poll is
//! a connection a user holds, as a WebSocket is: a real client never queues one user's REST call
//! behind another user's poll. The REST cap only exists to keep the harness inside its own
//! descriptors; any wait for a slot is the generator's queue, recorded as `generator.queue` and
//! never as the server's `rest.*` latency, and a call that cannot get a slot within its timeout is
//! counted apart (`generator_queue_timeouts`) and feeds the generator-honesty verdict.
//! Also the REST request a Stream SDK sends: `api_key`, `user_id` and `connection_id` in the query,
//! the raw token in `Authorization`, `stream-auth-type` and `X-Stream-Client` headers.

use super::record::{Counter, Metric, Recorder};
use crate::net::{self, ClientOptions, SlotWatch};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub use crate::net::{Error as HttpError, ErrorKind, Response, Sent};

/// The shared client: clone it freely (pools and the slot limit behind `Arc`s).
#[derive(Clone)]
pub struct HttpClient {
    rest: net::Client,
    hold: net::Client,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("free_slots", &self.rest.free_slots())
            .finish_non_exhaustive()
    }
}

/// Which of the two lanes a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A REST or token call: needs one of the harness's request slots; the wait is measured apart.
    Rest,
    /// A held request (long-poll connect and poll): the user's own connection, never queued.
    Hold,
}

/// Idle connections kept per host and lane: REST traffic reuses a few hundred sockets instead of
/// one per user.
pub const POOL_IDLE_PER_HOST: usize = 256;

/// The default REST slots when the engine gives none (tests, tools): enough that a test never
/// queues; the engine sizes the real number from the descriptors left (see [`rest_slots`]).
pub const DEFAULT_SLOTS: usize = 1024;

/// Most REST calls in flight at once, whatever the descriptor headroom: each in-flight hyper
/// connection holds about 36 KB of buffers, so 4,096 of them cost about 150 MB at worst.
pub const MAX_SLOTS: usize = 4096;

/// The fewest REST slots a run gets, even when its users take (nearly) every descriptor.
pub const MIN_SLOTS: usize = 64;

/// REST slots for a process with `fd_limit` descriptors running `users` users whose sockets (and
/// the embedded mock's, when it runs in this process) take `fds_per_user` each: what is left
/// after them and a reserve, clamped to [`MIN_SLOTS`]..=[`MAX_SLOTS`]. A call in flight to an
/// in-process mock takes two descriptors.
pub fn rest_slots(fd_limit: u64, users: u64, fds_per_user: u64) -> usize {
    let used = users.saturating_mul(fds_per_user) + crate::sys::RESERVED_FDS;
    let free = fd_limit.saturating_sub(used) / fds_per_user.max(1);
    (free as usize).clamp(MIN_SLOTS, MAX_SLOTS)
}

/// Largest response body read; a larger body is an error (a user never needs more).
pub const MAX_BODY: usize = net::MAX_BODY;

/// A lane's pool: [`POOL_IDLE_PER_HOST`] idle connections for 30 s, a 5 s connect (TCP and, for
/// `https`, the TLS handshake with the run's `tls`).
fn lane(slots: Option<usize>, slot_watch: Option<SlotWatch>, tls: Option<net::Tls>) -> net::Client {
    net::Client::new(&ClientOptions {
        pool_idle_per_host: POOL_IDLE_PER_HOST,
        pool_idle_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        max_body: MAX_BODY,
        slots,
        slot_watch,
        tls,
    })
}

/// A client for REST and token calls with [`DEFAULT_SLOTS`] and no recorder (tests, tools).
pub fn new_client() -> HttpClient {
    HttpClient::new(DEFAULT_SLOTS, None)
}

impl HttpClient {
    /// A client whose REST lane has `slots` calls in flight at most; slot waits and slot timeouts
    /// go to `recorder` (`generator.queue`, `generator_queue_timeouts`).
    pub fn new(slots: usize, recorder: Option<Recorder>) -> Self {
        Self::with_tls(slots, recorder, None)
    }

    /// [`HttpClient::new`] speaking TLS to `https` URLs with the run's `tls` (both lanes: REST and
    /// token calls, and the held long-polls).
    pub fn with_tls(slots: usize, recorder: Option<Recorder>, tls: Option<net::Tls>) -> Self {
        let watch = recorder.map(|r| {
            SlotWatch(Arc::new(move |waited, gave_up| {
                r.record(Metric::GeneratorQueue, waited);
                if gave_up {
                    r.count(Counter::GeneratorQueueTimeouts);
                }
            }))
        });
        Self {
            rest: lane(Some(slots), watch, tls.clone()),
            hold: lane(None, None, tls),
        }
    }
}

/// Sends one request on `lane` and reads the answer within `timeout` (counted from when the
/// request leaves, after any wait for a REST slot; the slot wait itself is bounded by `timeout`
/// too and then fails with [`ErrorKind::Saturated`]).
pub async fn send_on(
    client: &HttpClient,
    lane: Lane,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    timeout: Duration,
) -> Sent {
    let inner = match lane {
        Lane::Rest => &client.rest,
        Lane::Hold => &client.hold,
    };
    inner.exchange(method, url, headers, body, timeout).await
}

/// [`send_on`] the REST lane, returning only the result.
///
/// # Errors
/// [`HttpError`] on timeout, saturation, transport failure or a URL that cannot be a request.
pub async fn send(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    send_on(client, Lane::Rest, method, url, headers, body, timeout)
        .await
        .result
}

/// A header name from a string (the protocol crate names headers as strings).
///
/// # Errors
/// When the name is not a valid header name.
pub fn header_name(name: &str) -> Result<::http::HeaderName, ::http::header::InvalidHeaderName> {
    ::http::HeaderName::from_bytes(name.as_bytes())
}

/// The Stream query and headers every REST call of a user carries.
#[derive(Debug, Clone, Copy)]
pub struct StreamAuth<'a> {
    /// The API key.
    pub api_key: &'a str,
    /// The user id.
    pub user_id: &'a str,
    /// The connection id of the live connection (needed to watch).
    pub connection_id: &'a str,
    /// The raw JWT.
    pub token: &'a str,
    /// `X-Stream-Client`.
    pub user_agent: &'a str,
}

impl StreamAuth<'_> {
    /// `base` + `path` + the Stream query (`extra` pairs appended, e.g. long-poll's `json`).
    pub fn url(&self, base: &url::Url, path: &str, extra: &[(&str, &str)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("api_key", self.api_key);
        if !self.user_id.is_empty() {
            q.append_pair("user_id", self.user_id);
        }
        if !self.connection_id.is_empty() {
            q.append_pair("connection_id", self.connection_id);
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{}{path}?{}", base.as_str().trim_end_matches('/'), q.finish())
    }

    /// The auth headers.
    pub fn headers(&self) -> [(&str, &str); 3] {
        [
            ("Authorization", self.token),
            ("stream-auth-type", "jwt"),
            ("X-Stream-Client", self.user_agent),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_carries_the_stream_query() {
        let a = StreamAuth {
            api_key: "k",
            user_id: "u-1",
            connection_id: "c 1",
            token: "t",
            user_agent: "ua",
        };
        let base: url::Url = "http://127.0.0.1:9/api/".parse().unwrap();
        assert_eq!(
            a.url(&base, "/channels", &[("x", "y")]),
            "http://127.0.0.1:9/api/channels?api_key=k&user_id=u-1&connection_id=c+1&x=y"
        );
        assert_eq!(a.headers()[0], ("Authorization", "t"));
    }
}
