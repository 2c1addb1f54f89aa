//! Owns the app-level reads a chat backend makes: `GET /app` (the app's settings, with the
//! channel-type configs the channels carry) and `GET /rate_limits` (per platform and endpoint:
//! the limit, what is left of it this minute, when the minute ends).

use serde_json::{Map, Value, json};

use super::Outcome;
use crate::app::App;
use crate::auth::Caller;
use crate::exchange::Req;
use crate::wire;

/// The channel types an app has from the start (the backend's built-in types).
const BUILT_IN_TYPES: &[&str] = &["commerce", "gaming", "livestream", "messaging", "team"];

/// The operations the mock serves, with the backend's default per-minute limit for each (the
/// rate-limits table of the docs; operations the table leaves out get 1,000).
pub const ENDPOINT_LIMITS: &[(&str, u32)] = &[
    ("Connect", 10_000),
    ("GetApp", 10_000),
    ("GetOrCreateChannel", 10_000),
    ("MarkRead", 10_000),
    ("QueryChannels", 10_000),
    ("SendEvent", 10_000),
    ("GetMessage", 1_000),
    ("GetRateLimits", 1_000),
    ("GetTask", 1_000),
    ("QueryUsers", 1_000),
    ("SendMessage", 1_000),
    ("StopWatchingChannel", 1_000),
    ("Sync", 1_000),
    ("UpdateChannel", 300),
    ("UpdateChannelPartial", 300),
    ("UpdateUsers", 300),
    ("UpdateUsersPartial", 300),
    ("DeactivateUser", 60),
    ("DeactivateUsers", 60),
    ("DeleteChannel", 60),
    ("DeleteUser", 60),
    ("DeleteUsers", 60),
    ("ReactivateUser", 60),
    ("ReactivateUsers", 60),
];

const PLATFORMS: &[&str] = &["android", "ios", "server_side", "web"];

/// `GET /app` → `{"app": {…}}`.
pub fn settings(app: &App, _req: &Req, _caller: &Caller) -> Outcome {
    let now = wire::now();
    let configs: Map<String, Value> = BUILT_IN_TYPES
        .iter()
        .map(|t| ((*t).to_owned(), wire::channel_config(t, &now)))
        .collect();
    let body = json!({
        "app": {
            "name": "chatstorm-mock",
            "organization": "chatstorm",
            "suspended": false,
            "suspended_explanation": "",
            "disable_auth_checks": app.cfg.allow_dev_tokens,
            "disable_permissions_checks": false,
            "permission_version": "v2",
            "multi_tenant_enabled": false,
            "channel_configs": configs,
            "push_notifications": {"version": "v3", "offline_only": false},
            "policies": {},
            "grants": {},
            "webhook_events": [],
            "event_hooks": [],
            "user_search_disallowed_roles": [],
            "enforce_unique_usernames": "no",
            "revoke_tokens_issued_before": Value::Null,
        }
    });
    Ok((200, body.into()))
}

/// `GET /rate_limits?server_side=&android=&ios=&web=&endpoints=A,B` → one object per platform
/// asked for (all four when none is), each mapping endpoint → `{"limit","remaining","reset"}`.
/// Only `server_side` counts calls (the server-side calls this minute); client platforms show
/// their whole limit left, as the mock keeps no per-platform counters.
pub fn rate_limits(app: &App, req: &Req, _caller: &Caller) -> Outcome {
    let now = wire::now_unix();
    let reset = (now.div_euclid(60) + 1) * 60;
    let asked = |p: &str| req.query.get(p).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut platforms: Vec<&str> = PLATFORMS.iter().copied().filter(|p| asked(p)).collect();
    if platforms.is_empty() {
        platforms = PLATFORMS.to_vec();
    }
    let wanted: Option<Vec<&str>> = req
        .query
        .get("endpoints")
        .filter(|e| !e.is_empty())
        .map(|e| e.split(',').map(str::trim).collect());
    let mut out = Map::new();
    for p in platforms {
        let mut map = Map::new();
        for (name, default) in ENDPOINT_LIMITS {
            if wanted.as_ref().is_some_and(|w| !w.contains(name)) {
                continue;
            }
            let limit = app.rate.limit().unwrap_or(*default);
            let used = if p == "server_side" {
                app.rate.server_used(name, now)
            } else {
                0
            };
            map.insert(
                (*name).to_owned(),
                json!({"limit": limit, "remaining": limit.saturating_sub(used), "reset": reset}),
            );
        }
        out.insert(p.to_owned(), Value::Object(map));
    }
    Ok((200, Value::Object(out).into()))
}
