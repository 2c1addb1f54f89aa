//! Owns the REST surface: routing of the paths the SDKs call (the client SDKs' and, for a chat
//! backend, the server SDKs'), authentication and rate limiting of each call, and the helpers the
//! endpoint modules share.

mod app_info;
mod channel_admin;
mod channels;
mod events;
mod user_admin;
mod users;

pub use crate::auth::deactivated;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::auth::{self, ApiError, Caller};
use crate::conn::{Conn, ConnId};
use crate::exchange::{Req, Resp, error, json_response, ok};
use crate::fault::Violation;
use crate::journal::ClientAct;
use crate::ratelimit::Verdict;
use crate::stats::Stats;
use crate::wire::{self, code};

/// What an endpoint returns: a status and a JSON body (to which `duration` is added), or an error.
pub type Outcome = Result<(u16, Body), ApiError>;

/// A response body: a tree for the rare replies, or an object already serialized from typed views
/// (channel states, events) on the hot paths.
#[derive(Debug)]
pub enum Body {
    Tree(Value),
    /// A serialized JSON object `{…}`.
    Raw(String),
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Tree(v)
    }
}

/// Routes one REST request; returns the response and the rate-limit verdict for its headers.
pub async fn handle(app: &Arc<App>, req: &Req) -> (Resp, Option<Verdict>) {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let m = req.method.as_str();
    let (op, endpoint): (&str, &'static str) = match (m, segs.as_slice()) {
        ("GET", ["hi"]) => return (ok(200, json!({}), req.start), None),
        ("POST", ["users"]) => ("UpdateUsers", "update_users"),
        ("PATCH", ["users"]) => ("UpdateUsersPartial", "update_users_partial"),
        ("POST" | "GET", ["channels"]) => ("QueryChannels", "query_channels"),
        ("POST", ["channels", _, "query"]) | ("POST", ["channels", _, _, "query"]) => {
            ("GetOrCreateChannel", "get_or_create_channel")
        }
        ("POST", ["channels", _, _, "stop-watching"]) => ("StopWatchingChannel", "stop_watching"),
        ("POST", ["channels", _, _, "event"]) => ("SendEvent", "send_event"),
        ("POST", ["channels", _, _, "read"]) => ("MarkRead", "mark_read"),
        ("POST", ["channels", _, _, "message"]) => ("SendMessage", "send_message"),
        ("POST", ["sync"]) => ("Sync", "sync"),
        ("GET", ["users"]) => ("QueryUsers", "query_users"),
        ("POST", ["users", "deactivate"]) => ("DeactivateUsers", "deactivate_users"),
        ("POST", ["users", "reactivate"]) => ("ReactivateUsers", "reactivate_users"),
        ("POST", ["users", "delete"]) => ("DeleteUsers", "delete_users"),
        ("POST", ["users", _, "deactivate"]) => ("DeactivateUser", "deactivate_user"),
        ("POST", ["users", _, "reactivate"]) => ("ReactivateUser", "reactivate_user"),
        ("DELETE", ["users", _]) => ("DeleteUser", "delete_user"),
        ("GET", ["tasks", _]) => ("GetTask", "get_task"),
        ("POST", ["channels", _, _]) => ("UpdateChannel", "update_channel"),
        ("PATCH", ["channels", _, _]) => ("UpdateChannelPartial", "update_channel_partial"),
        ("DELETE", ["channels", _, _]) => ("DeleteChannel", "delete_channel"),
        ("GET", ["messages", _]) => ("GetMessage", "get_message"),
        ("GET", ["app"]) => ("GetApp", "get_app"),
        ("GET", ["rate_limits"]) => ("GetRateLimits", "get_rate_limits"),
        _ => {
            let e = ApiError::new(code::DOES_NOT_EXIST, format!("no route for {m} {}", clip(&req.path)));
            return (error(app, "Request", &e), None);
        }
    };
    // Journaled before auth (a call refused with code 40 is part of a client's story), under the
    // `user_id` the client says it is.
    app.journal
        .record(req.query.get("user_id").unwrap_or_default(), || ClientAct::Rest {
            method: m.to_owned(),
            path: req.path.clone(),
            connection_id: req.query.get("connection_id").unwrap_or_default().to_owned(),
        });
    let mut caller = match auth::rest(app, &req.credentials()) {
        Ok(c) => c,
        Err(e) => return (error(app, op, &e), None),
    };
    violate_permissions(app, req, &mut caller);
    if caller.server {
        app.rate.count_server(op, wire::now_unix());
    }
    let rate_key = if caller.user.is_empty() {
        "<server>"
    } else {
        caller.user.as_str()
    };
    let verdict = app.rate.check(rate_key, endpoint, wire::now_unix());
    if verdict.is_some_and(|v| !v.allowed) {
        Stats::bump(&app.stats.rate_limited);
        let detail = "Too many requests, check response headers for more information.";
        if app.violation(Violation::RateLimitWrongCode) {
            let mut body = wire::error_body(code::INPUT, op, detail, false);
            body["StatusCode"] = json!(429);
            return (json_response(429, body.to_string()), verdict);
        }
        let e = ApiError::new(code::RATE_LIMIT, detail);
        return (error(app, op, &e), verdict);
    }
    let outcome = match (m, segs.as_slice()) {
        ("POST", ["users"]) => users::upsert(app, req, &caller),
        ("PATCH", ["users"]) => users::partial(app, req, &caller),
        ("POST" | "GET", ["channels"]) => channels::query_channels(app, req, &caller),
        ("POST", ["channels", t, "query"]) => channels::get_or_create(app, req, &caller, t, None),
        ("POST", ["channels", t, id, "query"]) => channels::get_or_create(app, req, &caller, t, Some(id)),
        ("POST", ["channels", t, id, "stop-watching"]) => channels::stop_watching(app, req, &caller, t, id),
        ("POST", ["channels", t, id, "event"]) => events::send_event(app, req, &caller, t, id),
        ("POST", ["channels", t, id, "read"]) => events::mark_read(app, req, &caller, t, id),
        ("POST", ["channels", t, id, "message"]) => events::send_message(app, req, &caller, t, id),
        ("POST", ["sync"]) => channels::sync(app, req, &caller),
        ("GET", ["users"]) => user_admin::query(app, req, &caller),
        ("POST", ["users", "deactivate"]) => user_admin::deactivate_many(app, req, &caller),
        ("POST", ["users", "reactivate"]) => user_admin::reactivate_many(app, req, &caller),
        ("POST", ["users", "delete"]) => user_admin::delete_many(app, req, &caller),
        ("POST", ["users", id, "deactivate"]) => user_admin::deactivate(app, req, &caller, id),
        ("POST", ["users", id, "reactivate"]) => user_admin::reactivate(app, req, &caller, id),
        ("DELETE", ["users", id]) => user_admin::delete(app, req, &caller, id),
        ("GET", ["tasks", id]) => user_admin::get_task(app, req, &caller, id),
        ("POST", ["channels", t, id]) => channel_admin::update(app, req, &caller, t, id),
        ("PATCH", ["channels", t, id]) => channel_admin::update_partial(app, req, &caller, t, id),
        ("DELETE", ["channels", t, id]) => channel_admin::delete(app, req, &caller, t, id),
        ("GET", ["messages", id]) => channel_admin::get_message(app, req, &caller, id),
        ("GET", ["app"]) => app_info::settings(app, req, &caller),
        ("GET", ["rate_limits"]) => app_info::rate_limits(app, req, &caller),
        _ => Err(ApiError::new(code::INTERNAL, "unrouted request")),
    };
    let resp = match outcome {
        Ok((status, Body::Tree(body))) => ok(status, body, req.start),
        Ok((status, Body::Raw(body))) => json_response(status, wire::with_duration(&body, req.start)),
        Err(e) => error(app, op, &e),
    };
    (resp, verdict)
}

/// The `skip_permission_checks` and `trust_body_user_id` violations: a user token treated as a
/// server token, or as the user its body names.
fn violate_permissions(app: &App, req: &Req, caller: &mut Caller) {
    if app.violation(Violation::SkipPermissionChecks) {
        caller.server = true;
    }
    if app.violation(Violation::TrustBodyUserId)
        && let Some(u) = req.json().ok().and_then(|b| {
            b.get("user_id")
                .or_else(|| b.pointer("/user/id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    {
        caller.user = u;
    }
}

/// The caller's connection named by the `connection_id` query parameter (code 4 when absent,
/// 46 when unknown, 17 when it belongs to someone else).
pub fn caller_conn(app: &App, req: &Req, caller: &Caller) -> Result<Arc<Conn>, ApiError> {
    let Some(raw) = req.query.get("connection_id").filter(|s| !s.is_empty()) else {
        return Err(ApiError::new(
            code::INPUT,
            "watch and presence require the connection_id query parameter",
        ));
    };
    let conn = ConnId::parse(raw).and_then(|id| app.world().conns.get(&id).cloned());
    let Some(conn) = conn else {
        return Err(ApiError::new(
            code::CONNECTION_ID_NOT_FOUND,
            format!("connection_id \"{}\" not found", clip(raw)),
        ));
    };
    if !caller.server && *conn.user != *caller.user {
        return Err(ApiError::new(
            code::NOT_ALLOWED,
            "connection_id belongs to another user",
        ));
    }
    Ok(conn)
}

/// Channel types and ids: 1 to 64 characters from `a-z A-Z 0-9 _ - !`.
pub fn check_channel_part(what: &str, s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'!'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            code::INPUT,
            format!(
                "{what} \"{}\" is invalid: use 1 to 64 characters from a-z, A-Z, 0-9, _, - and !",
                clip(s)
            ),
        ))
    }
}

pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A required boolean-ish body flag.
pub fn flag(body: &Value, key: &str) -> bool {
    body.get(key).and_then(Value::as_bool).unwrap_or(false)
}
