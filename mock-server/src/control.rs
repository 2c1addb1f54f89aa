//! Owns fault control: `Control`, the Rust API the harness and tests call in-process, and the same
//! operations as a small JSON API under `/_fault/…`, guarded by its own fault secret (never the
//! token-signing app secret) in the `X-Chatstorm-Secret` header, compared in constant time. The
//! contract is documented in `mock-server/README.md` and `--help`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::conn::{Conn, Kill, Transport};
use crate::exchange::{Resp, json_response};
use crate::fault::{HalfOpen, RefuseMode, Violation};
use crate::journal::JournalEntry;
use crate::stats::{Stats, StatsSnapshot};
use crate::wire;

/// The header that must carry the fault secret on every `/_fault` request.
pub const SECRET_HEADER: &str = "x-chatstorm-secret";

/// How dropped sockets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropMode {
    /// A close frame with `code` (default 1011, "please reconnect").
    #[default]
    Close,
    /// TCP shutdown without a close frame; the client sees 1006.
    Abrupt,
}

/// Which transports an operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportFilter {
    #[default]
    All,
    Websocket,
    Longpoll,
}

/// `POST /_fault/drop`: which connections to drop and how. With neither `users` nor `fraction`,
/// every connection is dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropRequest {
    /// Share of the (matching) connections to drop, 0.0 to 1.0, chosen with `seed`.
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Only connections of these users.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default)]
    pub mode: DropMode,
    /// Close code for `mode: close`; default 1011.
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub transport: TransportFilter,
    /// Seed of the selection when `fraction` is set; default 0.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// `POST /_fault/expire-tokens`: cut off tokens issued up to now, and kick the users' sockets with
/// code 40 then close 1000.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireRequest {
    /// Every user.
    #[serde(default)]
    pub all: bool,
    /// These users.
    #[serde(default)]
    pub users: Vec<String>,
    /// `"expired"` (default) or `"revoked"`: only changes the error message.
    #[serde(default)]
    pub reason: Option<String>,
    /// Kick the sockets with code 40 but record no cut-off, as the `kick` expiry policy does when
    /// a token's `exp` passes: the old token stays valid for a new connect (tests of a client's
    /// refresh rule, where a fresh token minted in the same second must not count as cut off).
    #[serde(default)]
    pub keep_tokens: bool,
    /// Record the cut-off but leave open sockets alone (as the backend does when a token's `exp`
    /// passes under a live socket by default): REST calls then get code 40 while the socket lives.
    #[serde(default)]
    pub keep_sockets: bool,
    /// The cut-off, Unix seconds: tokens issued at or before it are cut off. Default: now. (Tests
    /// set a past second so that a token minted right after the call is not cut off too.)
    #[serde(default)]
    pub cutoff: Option<i64>,
}

/// The whole fault state, as `GET /_fault/state` returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultState {
    pub violations: Vec<String>,
    pub frame_latency_ms: u64,
    pub request_latency_ms: u64,
    pub first_frame_delay_ms: u64,
    /// Milliseconds of refused upgrades left, 0 when upgrades are accepted.
    pub refuse_upgrades_ms: u64,
    pub refuse_mode: Option<RefuseMode>,
    pub half_open: HalfOpen,
}

/// In-process fault control of one server (cheap to clone).
#[derive(Debug, Clone)]
pub struct Control {
    app: Arc<App>,
}

impl Control {
    pub(crate) fn new(app: Arc<App>) -> Self {
        Control { app }
    }

    /// The server's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.app.stats.snapshot()
    }

    /// Turns one named violation on or off.
    pub fn set_violation(&self, v: Violation, on: bool) {
        self.app.faults.set(v, on);
    }

    /// The violations currently on.
    pub fn violations(&self) -> Vec<Violation> {
        self.app.faults.enabled()
    }

    /// Drops the selected connections; returns how many.
    pub fn drop_connections(&self, req: &DropRequest) -> usize {
        let mut picked: Vec<Arc<Conn>> = {
            let w = self.app.world();
            let mut v: Vec<Arc<Conn>> = w
                .conns
                .values()
                .filter(|c| match req.transport {
                    TransportFilter::All => true,
                    TransportFilter::Websocket => c.transport == Transport::WebSocket,
                    TransportFilter::Longpoll => c.transport == Transport::LongPoll,
                })
                .filter(|c| req.users.as_ref().is_none_or(|u| u.iter().any(|u| *u == *c.user)))
                .cloned()
                .collect();
            v.sort_by_key(|c| c.id);
            v
        };
        if let Some(f) = req.fraction {
            let n = ((f.clamp(0.0, 1.0) * picked.len() as f64).round() as usize).min(picked.len());
            shuffle(&mut picked, req.seed.unwrap_or(0));
            picked.truncate(n);
        }
        let kill = match req.mode {
            DropMode::Close => Kill::Close(req.code.unwrap_or(1011)),
            DropMode::Abrupt => Kill::Abrupt,
        };
        for c in &picked {
            c.kill(kill);
            if c.transport == Transport::LongPoll {
                self.app.unregister(c.id);
            }
        }
        Stats::add(&self.app.stats.fault_dropped, picked.len() as u64);
        picked.len()
    }

    /// Makes these users' sockets half-open (silent); an empty `HalfOpen` heals everyone.
    pub fn set_half_open(&self, h: HalfOpen) {
        self.app.faults.set_half_open(h);
    }

    /// Refuses WebSocket upgrades for `duration` (zero accepts them again).
    pub fn refuse_upgrades(&self, duration: Duration, mode: RefuseMode) {
        let mut g = self.app.faults.refuse.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now().checked_add(duration.min(Duration::from_secs(365 * 86_400)));
        *g = if duration.is_zero() {
            None
        } else {
            until.map(|u| (u, mode))
        };
    }

    /// Delay before each batch of frames written to a socket or poll, and before each request.
    pub fn set_latency(&self, frame: Option<Duration>, request: Option<Duration>) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(f) = frame {
            self.app.faults.frame_latency_ms.store(f.as_millis() as u64, Relaxed);
        }
        if let Some(r) = request {
            self.app.faults.request_latency_ms.store(r.as_millis() as u64, Relaxed);
        }
    }

    /// Delay before every connection's first frame.
    pub fn set_first_frame_delay(&self, d: Duration) {
        self.app
            .faults
            .first_frame_delay_ms
            .store(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Expires (or revokes) the tokens of the selected users issued up to now; their open
    /// connections get code 40. Returns how many connections were kicked.
    pub fn expire_tokens(&self, req: &ExpireRequest) -> usize {
        let now = req.cutoff.unwrap_or_else(wire::now_unix);
        let revoked = req.reason.as_deref() == Some("revoked");
        if !req.keep_tokens {
            let mut r = self.app.faults.revocations.lock().unwrap_or_else(|e| e.into_inner());
            r.as_expiry = !revoked;
            if req.all {
                r.all_before = Some(now);
            }
            for u in &req.users {
                r.users.insert(u.clone(), now);
            }
        }
        if req.keep_sockets {
            return 0;
        }
        let w = self.app.world();
        let mut n = 0;
        for c in w
            .conns
            .values()
            .filter(|c| req.all || req.users.iter().any(|u| *u == *c.user))
        {
            c.kill(Kill::TokenExpired { revoked });
            n += 1;
        }
        n
    }

    /// Starts or stops the client journal (see [`JournalEntry`]); off by default.
    pub fn record_clients(&self, on: bool) {
        self.app.journal.set_on(on);
    }

    /// What clients did since the journal was turned on, oldest first (at most
    /// [`crate::journal::JOURNAL_CAP`] entries).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.app.journal.entries()
    }

    /// Forgets the journal's entries.
    pub fn clear_journal(&self) {
        self.app.journal.clear();
    }

    /// Clears every fault (violations, latency, refusals, half-open users, token cut-offs).
    pub fn reset(&self) {
        self.app.faults.reset();
    }

    /// The current fault settings.
    pub fn state(&self) -> FaultState {
        use std::sync::atomic::Ordering::Relaxed;
        let f = &self.app.faults;
        let refuse = *f.refuse.lock().unwrap_or_else(|e| e.into_inner());
        let left = refuse
            .map(|(until, _)| until.saturating_duration_since(Instant::now()).as_millis() as u64)
            .unwrap_or(0);
        FaultState {
            violations: f.enabled().into_iter().map(|v| v.name().to_owned()).collect(),
            frame_latency_ms: f.frame_latency_ms.load(Relaxed),
            request_latency_ms: f.request_latency_ms.load(Relaxed),
            first_frame_delay_ms: f.first_frame_delay_ms.load(Relaxed),
            refuse_upgrades_ms: left,
            refuse_mode: if left > 0 { refuse.map(|(_, m)| m) } else { None },
            half_open: f.half_open.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Whether `given` is the configured fault secret. Constant time in the secret's content (only
/// the length can show), so the answer's timing tells nothing about how much of a guess was
/// right; an empty configured secret matches nothing (the API is closed).
pub fn secret_matches(expected: &str, given: Option<&[u8]>) -> bool {
    use subtle::ConstantTimeEq;
    match given {
        Some(g) if !expected.is_empty() => bool::from(expected.as_bytes().ct_eq(g)),
        _ => false,
    }
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    for i in (1..v.len()).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((s >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn reply(status: u16, v: Value) -> Resp {
    json_response(status, v.to_string())
}

/// A refused fault-control request: HTTP status and message.
type Fail = (u16, String);

fn bad(msg: impl Into<String>) -> Fail {
    (400, msg.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViolationsBody {
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefuseBody {
    duration_ms: u64,
    #[serde(default)]
    mode: RefuseMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    frame_ms: Option<u64>,
    request_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayBody {
    ms: u64,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Fail> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(text).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn violations_view(c: &Control) -> Value {
    json!({
        "available": Violation::ALL.iter().map(|v| v.name()).collect::<Vec<_>>(),
        "enabled": c.violations().iter().map(|v| v.name()).collect::<Vec<_>>(),
    })
}

/// Serves `/_fault/…`.
pub async fn http(app: &Arc<App>, req: Request<Incoming>) -> Resp {
    if !secret_matches(
        &app.cfg.fault_secret,
        req.headers().get(SECRET_HEADER).map(|v| v.as_bytes()),
    ) {
        return reply(
            401,
            json!({"error": "the X-Chatstorm-Secret header must carry the fault secret (--fault-secret / CHATSTORM_FAULT_SECRET)"}),
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let body =
        match tokio::time::timeout(app.cfg.body_timeout, Limited::new(req.into_body(), 64 * 1024).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => return reply(400, json!({"error": "body too large or unreadable"})),
            Err(_) => return reply(408, json!({"error": "body not received in time"})),
        };
    let c = Control::new(app.clone());
    let res: Result<Value, Fail> = match (method.as_str(), path.as_str()) {
        ("GET", "/_fault/stats") => Ok(serde_json::to_value(c.stats()).unwrap_or(Value::Null)),
        ("GET", "/_fault/state") => Ok(serde_json::to_value(c.state()).unwrap_or(Value::Null)),
        ("POST", "/_fault/reset") => {
            c.reset();
            Ok(json!({"reset": true}))
        }
        ("GET", "/_fault/violations") => Ok(violations_view(&c)),
        ("POST", "/_fault/violations") => parse::<ViolationsBody>(&body).and_then(|b| {
            let mut changes = Vec::new();
            for (names, on) in [(&b.enable, true), (&b.disable, false)] {
                for n in names {
                    match Violation::from_name(n) {
                        Some(v) => changes.push((v, on)),
                        None => {
                            let all: Vec<&str> = Violation::ALL.iter().map(|v| v.name()).collect();
                            return Err(bad(format!("unknown violation \"{n}\"; known: {}", all.join(", "))));
                        }
                    }
                }
            }
            for (v, on) in changes {
                c.set_violation(v, on);
            }
            Ok(violations_view(&c))
        }),
        ("POST", "/_fault/drop") => parse::<DropRequest>(&body).and_then(|b| {
            if b.fraction.is_some_and(|f| !(0.0..=1.0).contains(&f)) {
                return Err(bad("fraction must be between 0.0 and 1.0"));
            }
            if b.code
                .is_some_and(|c| !(1000..=4999).contains(&c) || matches!(c, 1004..=1006 | 1015))
            {
                return Err(bad(
                    "code must be a sendable close code (1000-4999, not 1004-1006 or 1015)",
                ));
            }
            Ok(json!({"dropped": c.drop_connections(&b)}))
        }),
        ("POST", "/_fault/half-open") => parse::<HalfOpen>(&body).map(|h| {
            c.set_half_open(h.clone());
            json!({"half_open": h})
        }),
        ("POST", "/_fault/refuse-upgrades") => parse::<RefuseBody>(&body).map(|b| {
            c.refuse_upgrades(Duration::from_millis(b.duration_ms), b.mode);
            json!({"refuse_upgrades_ms": b.duration_ms, "mode": b.mode})
        }),
        ("POST", "/_fault/latency") => parse::<LatencyBody>(&body).map(|b| {
            c.set_latency(
                b.frame_ms.map(Duration::from_millis),
                b.request_ms.map(Duration::from_millis),
            );
            let s = c.state();
            json!({"frame_ms": s.frame_latency_ms, "request_ms": s.request_latency_ms})
        }),
        ("POST", "/_fault/first-frame-delay") => parse::<DelayBody>(&body).map(|b| {
            c.set_first_frame_delay(Duration::from_millis(b.ms));
            json!({"ms": b.ms})
        }),
        ("POST", "/_fault/expire-tokens") => parse::<ExpireRequest>(&body).and_then(|b| {
            if !b.all && b.users.is_empty() {
                return Err(bad("give \"all\": true or a non-empty \"users\" list"));
            }
            if b.reason.as_deref().is_some_and(|r| r != "expired" && r != "revoked") {
                return Err(bad("reason must be \"expired\" or \"revoked\""));
            }
            Ok(json!({"kicked": c.expire_tokens(&b)}))
        }),
        _ => Err((404, format!("no fault-control route {method} {path}"))),
    };
    match res {
        Ok(v) => reply(200, v),
        Err((status, msg)) => reply(status, json!({ "error": msg })),
    }
}
