//! The coverage matrix: every requirement of PROTOCOL.md a server can break, section by section,
//! with the rule ids that check it or one line saying why none does. [`render_coverage`] writes it
//! as Markdown, with each rule's requirement and grade taken from the rule table; the committed
//! copy is `docs/conformance-coverage.md`, and a test fails when a rule is missing from the
//! matrix, when the matrix names a rule that does not exist, when a PROTOCOL.md section has no
//! row, or when the committed file differs from the rendered one.

use std::fmt::Write as _;

use super::{Strictness, rules};

/// Where the rendered matrix is committed, relative to the repository root.
pub const COVERAGE_PATH: &str = "docs/conformance-coverage.md";

/// How a requirement is covered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cover {
    /// Checked by these rules.
    Rules(&'static [&'static str]),
    /// Not checked, and why (client-side behaviour, UNCONFIRMED, out of scope…).
    None(&'static str),
}

/// One requirement of PROTOCOL.md.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requirement {
    /// The PROTOCOL.md section heading it belongs to (as in [`SECTIONS`]).
    pub section: &'static str,
    /// The requirement, in a few words.
    pub text: &'static str,
    /// Its coverage.
    pub cover: Cover,
}

use Cover::{None as Why, Rules as R};

const fn req(section: &'static str, text: &'static str, cover: Cover) -> Requirement {
    Requirement { section, text, cover }
}

/// Every section heading of PROTOCOL.md (numbered sections and the named ones), in its order.
pub(crate) const SECTIONS: &[&str] = &[
    "Decisions for the mock server",
    "1.1 Base URLs",
    "1.2 The upgrade request — JS",
    "1.3 The upgrade request — other official SDKs",
    "1.4 Frames",
    "1.5 The first server message",
    "1.6 What the client waits for",
    "1.7 Connection timeouts",
    "1.8 Connection lifecycle rules inside JS",
    "2.1 JWT format",
    "2.2 Developer tokens",
    "2.3 Anonymous and guest users",
    "2.4 HTTP authentication",
    "2.5 Error frames on the WebSocket",
    "2.6 Error codes over HTTP",
    "2.7 How each client reacts to auth errors",
    "3.1 Server side",
    "3.2 What each client sends / expects",
    "3.3 Becoming unhealthy / events emitted",
    "3.4 Back-off formula",
    "3.5 State recovery after reconnect",
    "4.1 When JS switches",
    "4.2 Endpoint and requests",
    "4.3 Behaviour",
    "5. Manual disconnect",
    "6.1 JSON shape",
    "6.2 Where it can be set",
    "6.3 Server-side semantics",
    "6.4 Client-side enforcement",
    "7.1 Typing events",
    "7.2 Mark read",
    "7.3 Minimal REST surface for a realistic load test",
    "8. User validation rules",
    "9.1 Rate limiting",
    "9.2 Documented error table",
    "9.3 Client-only codes",
    "10. Event catalogue",
    "11.1 Mock server — must-haves",
    "11.2 Load-test client — per-profile parameters",
    "12. Open questions",
    "What the official JS SDK (9.53.0) needs from a server",
    "Unity (C#) SDK profile",
];

const CLIENT: &str = "client-side behaviour: nothing a server sends or refuses can break it";
const LOAD: &str = "exercised by load runs with that SDK profile, not by a `conform` case";
const PART1: &str = "server-side REST surface, issue 17 part 1 (tested with the official Python server SDK)";

/// The matrix rows, in PROTOCOL.md order.
pub(crate) const MATRIX: &[Requirement] = &[
    // Decisions for the mock server.
    req(
        "Decisions for the mock server",
        "auth on `/connect` in the query or in headers",
        R(&["CONN-UPGRADE", "CONN-HEADER-AUTH"]),
    ),
    req(
        "Decisions for the mock server",
        "token `user_id` ≠ `json.user_id`: refused",
        R(&["AUTH-USER-MISMATCH"]),
    ),
    req(
        "Decisions for the mock server",
        "token reaching `exp` on an open socket: kept, or code 40 then close 1000",
        Why("either is allowed: the real service's behaviour is UNCONFIRMED (§2.5)"),
    ),
    req(
        "Decisions for the mock server",
        "dev tokens rejected (code 5) unless auth checks are off",
        R(&["AUTH-WS-DEV-TOKEN-5"]),
    ),
    req(
        "Decisions for the mock server",
        "`alg` other than HS256 (`none` included) rejected",
        R(&["AUTH-ALG-NONE", "AUTH-REST-ALG-NONE"]),
    ),
    req(
        "Decisions for the mock server",
        "a WS ping is answered with a `health.check`",
        R(&["HEALTH-PING-REPLY"]),
    ),
    req(
        "Decisions for the mock server",
        "inbound health check as an object or an array, answered once",
        R(&["HEALTH-REPLY-OBJECT", "HEALTH-REPLY-ARRAY"]),
    ),
    req(
        "Decisions for the mock server",
        "server health interval 30 s",
        R(&["HEALTH-INTERVAL"]),
    ),
    req(
        "Decisions for the mock server",
        "invalid user id characters: code 4",
        R(&["USER-ID-CHARS"]),
    ),
    req(
        "Decisions for the mock server",
        "user object over 5 KB: code 4",
        R(&["USER-SIZE-5KB"]),
    ),
    req(
        "Decisions for the mock server",
        "suppressed typing: no fan-out to anyone",
        R(&["PRIVACY-TYPING-OFF"]),
    ),
    req(
        "Decisions for the mock server",
        "suppressed typing answered HTTP 201 with the event echoed",
        Why("the HTTP answer is UNCONFIRMED (§6.3 (a)); only the absence of fan-out is a requirement"),
    ),
    req(
        "Decisions for the mock server",
        "read with read receipts off: no `message.read` to others, own `notification.mark_read`, left out of `read` arrays",
        R(&["PRIVACY-READ-OFF", "PRIVACY-OWN-MARK-READ", "PRIVACY-READ-STATE-HIDDEN"]),
    ),
    req(
        "Decisions for the mock server",
        "long-poll hold time and buffer size",
        Why("the server's own choice (UNCONFIRMED, §4.3); clients only need an answer within their 30 s timeout"),
    ),
    req(
        "Decisions for the mock server",
        "unknown or closed `connection_id` on `/longpoll`: code 46",
        R(&["LONGPOLL-UNKNOWN-46", "LONGPOLL-CLOSE"]),
    ),
    req(
        "Decisions for the mock server",
        "presence offline on the last socket close",
        R(&["DISCONNECT-PRESENCE-OFFLINE"]),
    ),
    req(
        "Decisions for the mock server",
        "rate limits: code 9, HTTP 429, `X-RateLimit-*`",
        R(&["RATE-429-CODE-9", "RATE-HEADERS"]),
    ),
    req(
        "Decisions for the mock server",
        "errors always carry the full body",
        R(&["ERROR-HTTP-BODY", "ERROR-FRAME-BODY"]),
    ),
    req(
        "Decisions for the mock server",
        "a server close after an error frame is code 1000",
        R(&["RECONNECT-ERROR-CLOSE-1000", "AUTH-STATIC-40-FATAL"]),
    ),
    // 1. WebSocket connect.
    req(
        "1.1 Base URLs",
        "the WebSocket base is the REST base with `http`→`ws`",
        R(&["CONN-UPGRADE"]),
    ),
    req(
        "1.1 Base URLs",
        "regional hosts, the `:3030` rewrite",
        Why("deployment and client URL handling, not server behaviour"),
    ),
    req(
        "1.2 The upgrade request — JS",
        "`/connect` with form-encoded `json`, `api_key`, `authorization`, `stream-auth-type`, `X-Stream-Client` upgrades",
        R(&["CONN-UPGRADE"]),
    ),
    req(
        "1.2 The upgrade request — JS",
        "`json` keys `user_id`, `user_details`, `client_request_id` tolerated",
        R(&["CONN-UPGRADE", "CONN-ME-DETAILS"]),
    ),
    req(
        "1.2 The upgrade request — JS",
        "anonymous connects (`stream-auth-type=anonymous`, empty token)",
        Why(
            "anonymous users are optional for an app and the mock refuses them; writes by anonymous callers are AUTH-ANON-WRITE",
        ),
    ),
    req(
        "1.3 The upgrade request — other official SDKs",
        "auth in the `Authorization` / `Stream-Auth-Type` upgrade headers (Swift)",
        R(&["CONN-HEADER-AUTH"]),
    ),
    req(
        "1.3 The upgrade request — other official SDKs",
        "mobile `json` extras (`server_determines_connection_id`, `user_token`, `X-Stream-Client`), `{id}`-only `user_details` on reconnect",
        Why(LOAD),
    ),
    req(
        "1.3 The upgrade request — other official SDKs",
        "precedence of header over query auth",
        Why("UNCONFIRMED (§1.3, §12)"),
    ),
    req(
        "1.4 Frames",
        "server frames are text, one JSON object each",
        R(&["CONN-FIRST-FRAME"]),
    ),
    req(
        "1.4 Frames",
        "the socket is downstream-only apart from health checks",
        Why("what a server does with other inbound frames is unspecified"),
    ),
    req(
        "1.5 The first server message",
        "first frame: `health.check` with `connection_id`, `cid:\"*\"`, `created_at`",
        R(&["CONN-FIRST-FRAME"]),
    ),
    req(
        "1.5 The first server message",
        "`me` is an own user (`total_unread_count`, `mutes`, `channel_mutes`, `devices`)",
        R(&["CONN-ME"]),
    ),
    req(
        "1.5 The first server message",
        "`me` has the custom fields of `user_details`, flattened",
        R(&["CONN-ME-DETAILS"]),
    ),
    req(
        "1.5 The first server message",
        "`me.privacy_settings` as sent",
        R(&["CONN-ME-PRIVACY"]),
    ),
    req(
        "1.5 The first server message",
        "`connection_id` is UUID-shaped",
        Why("every SDK treats it as opaque"),
    ),
    req(
        "1.6 What the client waits for",
        "the first frame has no `error` key on success",
        R(&["CONN-FIRST-FRAME"]),
    ),
    req(
        "1.7 Connection timeouts",
        "the first frame within the SDK's connect timeout (6 s with fallback)",
        R(&["CONN-FIRST-FRAME"]),
    ),
    req(
        "1.7 Connection timeouts",
        "REST answers within the SDK's 3 s",
        Why("latency, measured and bounded by load-run thresholds"),
    ),
    req(
        "1.8 Connection lifecycle rules inside JS",
        "client id, reconnect-on-failure, `GET /hi` warm-up",
        Why(CLIENT),
    ),
    // 2. Authentication.
    req(
        "2.1 JWT format",
        "HS256 with the app secret; another secret is refused",
        R(&["AUTH-BAD-SIGNATURE", "AUTH-REST-BAD-SIGNATURE"]),
    ),
    req(
        "2.1 JWT format",
        "a user token without `exp` and `iat` is valid",
        R(&["AUTH-NO-EXP-VALID"]),
    ),
    req(
        "2.1 JWT format",
        "a server token does not open a user connection",
        R(&["AUTH-WS-SERVER-TOKEN"]),
    ),
    req(
        "2.1 JWT format",
        "server tokens authenticate server-side REST calls",
        Why(PART1),
    ),
    req(
        "2.1 JWT format",
        "malformed token (not 3 segments): code 5",
        R(&["AUTH-MALFORMED-5", "AUTH-REST-MALFORMED-5"]),
    ),
    req(
        "2.1 JWT format",
        "a signed token that is neither a user token (`user_id`) nor a server token: code 5",
        R(&["AUTH-REST-NO-USER-CLAIM-5"]),
    ),
    req(
        "2.1 JWT format",
        "claims of the wrong type (numeric `user_id`): code 5",
        R(&["AUTH-REST-CLAIM-TYPE-5"]),
    ),
    req(
        "2.1 JWT format",
        "revoked tokens (`revoke_tokens_issued_before`): code 40",
        Why(
            "revocation is set through the app settings API (issue 17 part 1); the mock's token cut-offs exercise it in the token-expiry load scenario",
        ),
    ),
    req(
        "2.1 JWT format",
        "the token's `user_id` equals the connecting / calling user",
        R(&["AUTH-USER-MISMATCH", "AUTH-REST-USER-MISMATCH"]),
    ),
    req(
        "2.2 Developer tokens",
        "dev tokens refused while auth checks are on",
        R(&["AUTH-WS-DEV-TOKEN-5"]),
    ),
    req(
        "2.3 Anonymous and guest users",
        "anonymous users cannot write",
        R(&["AUTH-ANON-WRITE"]),
    ),
    req(
        "2.3 Anonymous and guest users",
        "guest sessions (`POST /guest`)",
        Why("not served by the mock; not yet a rule"),
    ),
    req(
        "2.4 HTTP authentication",
        "`api_key` missing or unknown: 401, code 2",
        R(&[
            "AUTH-REST-API-KEY-MISSING-2",
            "AUTH-REST-API-KEY-WRONG-2",
            "AUTH-WS-API-KEY-2",
        ]),
    ),
    req(
        "2.4 HTTP authentication",
        "`stream-auth-type` missing: 401, code 5",
        R(&["AUTH-REST-AUTH-TYPE-5"]),
    ),
    req(
        "2.4 HTTP authentication",
        "`Authorization` missing on a `jwt` call: 401, code 5",
        R(&["AUTH-REST-NO-TOKEN-5", "AUTH-WS-NO-TOKEN-5"]),
    ),
    req(
        "2.4 HTTP authentication",
        "`user_id` and `connection_id` parameters belong to the token's user",
        R(&["AUTH-REST-USER-MISMATCH", "AUTH-PERM-CONNECTION-OTHER"]),
    ),
    req(
        "2.4 HTTP authentication",
        "a user token cannot act as another user through the body",
        R(&["AUTH-PERM-ACT-AS-OTHER"]),
    ),
    req(
        "2.5 Error frames on the WebSocket",
        "an auth failure is an error frame after the upgrade, then close 1000",
        R(&["AUTH-STATIC-40-FATAL", "RECONNECT-ERROR-CLOSE-1000"]),
    ),
    req(
        "2.5 Error frames on the WebSocket",
        "the error object is complete",
        R(&["ERROR-FRAME-BODY"]),
    ),
    req(
        "2.5 Error frames on the WebSocket",
        "codes 40 expired, 41 `nbf`, 42 `iat`, 43/5 signature",
        R(&[
            "AUTH-EXPIRED-40",
            "AUTH-NOT-YET-VALID-41",
            "AUTH-IAT-FUTURE-42",
            "AUTH-BAD-SIGNATURE",
        ]),
    ),
    req(
        "2.5 Error frames on the WebSocket",
        "code 2 for an unknown api key, 4 for bad input",
        R(&["AUTH-WS-API-KEY-2", "USER-ID-CHARS", "USER-SIZE-5KB"]),
    ),
    req(
        "2.5 Error frames on the WebSocket",
        "expired token mid-session kicked",
        Why("UNCONFIRMED (§2.5, §12)"),
    ),
    req(
        "2.6 Error codes over HTTP",
        "error body with `StatusCode` = HTTP status",
        R(&["ERROR-HTTP-BODY"]),
    ),
    req(
        "2.6 Error codes over HTTP",
        "HTTP 401 with code 40 / 41 / 42 / 43 for token failures",
        R(&[
            "AUTH-REST-401-40",
            "AUTH-REST-NOT-YET-VALID-41",
            "AUTH-REST-IAT-FUTURE-42",
            "AUTH-REST-BAD-SIGNATURE",
        ]),
    ),
    req(
        "2.7 How each client reacts to auth errors",
        "code 40 (and only 40) for expiry, so providers refresh",
        R(&["AUTH-EXPIRED-40", "AUTH-REFRESH-40", "AUTH-REST-401-40"]),
    ),
    req(
        "2.7 How each client reacts to auth errors",
        "the clients' retry and refresh logic",
        Why(CLIENT),
    ),
    // 3. Health, reconnection, recovery.
    req("3.1 Server side", "`health.check` every 30 s", R(&["HEALTH-INTERVAL"])),
    req(
        "3.1 Server side",
        "a client health check is answered with a `health.check`",
        R(&["HEALTH-REPLY-OBJECT", "HEALTH-REPLY-ARRAY"]),
    ),
    req(
        "3.2 What each client sends / expects",
        "object (Android, Flutter), array (JS) and ping (Swift) health checks answered",
        R(&["HEALTH-REPLY-OBJECT", "HEALTH-REPLY-ARRAY", "HEALTH-PING-REPLY"]),
    ),
    req(
        "3.3 Becoming unhealthy / events emitted",
        "local `connection.changed` events",
        Why(CLIENT),
    ),
    req(
        "3.4 Back-off formula",
        "a reconnect at the back-off delay is accepted with a new `connection_id`",
        R(&["RECONNECT-NEW-CONNECTION-ID"]),
    ),
    req(
        "3.5 State recovery after reconnect",
        "`POST /channels` with `watch:true` re-binds channels to the new connection",
        R(&["RECONNECT-REWATCH"]),
    ),
    req(
        "3.5 State recovery after reconnect",
        "`POST /sync` replays the missed persistent events",
        Why("not yet a rule; load runs with `recovery: sync` exercise it"),
    ),
    // 4. Long-poll.
    req("4.1 When JS switches", "when the JS client falls back", Why(CLIENT)),
    req(
        "4.2 Endpoint and requests",
        "`GET /longpoll?json=…` answers `{\"event\": health.check}` with `connection_id` and `me`",
        R(&["LONGPOLL-CONNECT"]),
    ),
    req(
        "4.2 Endpoint and requests",
        "`close=true` ends the connection",
        R(&["LONGPOLL-CLOSE"]),
    ),
    req(
        "4.3 Behaviour",
        "events between polls come back in order",
        R(&["LONGPOLL-ORDER"]),
    ),
    req(
        "4.3 Behaviour",
        "unknown `connection_id`: code 46",
        R(&["LONGPOLL-UNKNOWN-46"]),
    ),
    // 5. Disconnect.
    req(
        "5. Manual disconnect",
        "a client close 1000 is answered with a close frame",
        R(&["DISCONNECT-CLOSE-1000"]),
    ),
    req(
        "5. Manual disconnect",
        "presence offline when the last connection goes",
        R(&["DISCONNECT-PRESENCE-OFFLINE"]),
    ),
    req(
        "5. Manual disconnect",
        "`user.watching.stop` on socket close",
        Why("UNCONFIRMED (§5)"),
    ),
    req(
        "5. Manual disconnect",
        "a server close 1000 only when the client must stop",
        R(&["RECONNECT-ERROR-CLOSE-1000"]),
    ),
    // 6. Privacy.
    req(
        "6.1 JSON shape",
        "`privacy_settings` shape, default enabled",
        R(&["CONN-ME-PRIVACY"]),
    ),
    req(
        "6.2 Where it can be set",
        "at connect in `user_details` (connecting upserts)",
        R(&["CONN-ME-PRIVACY", "USER-CONNECT-UPSERTS"]),
    ),
    req(
        "6.2 Where it can be set",
        "partial update mid-session takes effect",
        R(&["PRIVACY-TYPING-TOGGLE"]),
    ),
    req(
        "6.2 Where it can be set",
        "only the user itself (or the server) may change a user",
        R(&["AUTH-PERM-UPSERT-OTHER-17", "AUTH-PERM-PARTIAL-OTHER-17"]),
    ),
    req(
        "6.3 Server-side semantics",
        "typing of a user with typing indicators off reaches no one",
        R(&["PRIVACY-TYPING-OFF", "PRIVACY-TYPING-TOGGLE"]),
    ),
    req(
        "6.3 Server-side semantics",
        "read events of a user with read receipts off reach no one else; read state hidden",
        R(&["PRIVACY-READ-OFF", "PRIVACY-READ-STATE-HIDDEN", "PRIVACY-OWN-MARK-READ"]),
    ),
    req(
        "6.3 Server-side semantics",
        "`delivery_receipts` off: no `message.delivered`",
        Why("delivery receipts are not modelled by the mock or the simulated users; not yet a rule"),
    ),
    req(
        "6.4 Client-side enforcement",
        "what the SDKs suppress themselves",
        Why(CLIENT),
    ),
    // 7. Typing, read, REST surface.
    req(
        "7.1 Typing events",
        "typing over HTTP fans out to every watcher, the sender included",
        R(&["TYPING-FANOUT", "DELIVERY-EVERY-WATCHER"]),
    ),
    req(
        "7.1 Typing events",
        "`typing_events: false` channel config enforced, code 18",
        Why("UNCONFIRMED (§7.1)"),
    ),
    req(
        "7.2 Mark read",
        "`message.read` to watchers, `notification.mark_read` to the reader's connections",
        R(&["READ-FANOUT"]),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "channel events reach every watching connection (sender included) exactly once, in order",
        R(&["DELIVERY-EVERY-WATCHER", "DELIVERY-ONCE", "DELIVERY-ORDER"]),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "connections that do not watch get no channel events",
        R(&["DELIVERY-NOT-WATCHING"]),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "`stop-watching` ends a connection's channel events",
        R(&["DELIVERY-STOP-WATCHING"]),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "`watch:true` binds to the calling user's own `connection_id`",
        R(&["RECONNECT-REWATCH", "AUTH-PERM-CONNECTION-OTHER"]),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "members not watching get `notification.message_new`",
        Why("not yet a rule; DELIVERY-NOT-WATCHING checks they get no `message.new`"),
    ),
    req(
        "7.3 Minimal REST surface for a realistic load test",
        "response shapes (`channels`, `messages`, `read`, `duration`)",
        Why("not yet a rule; the official JS SDK test reads them against the mock"),
    ),
    // 8. User validation.
    req(
        "8. User validation rules",
        "user ids only `a-z 0-9 @ _ -`",
        R(&["USER-ID-CHARS"]),
    ),
    req(
        "8. User validation rules",
        "user object under 5 KB",
        R(&["USER-SIZE-5KB"]),
    ),
    req(
        "8. User validation rules",
        "connecting upserts the user",
        R(&["USER-CONNECT-UPSERTS"]),
    ),
    req(
        "8. User validation rules",
        "unique usernames (code 6), deactivated users cannot connect",
        Why("optional app setting / UNCONFIRMED code; deactivation is issue 17 part 1"),
    ),
    // 9. Rate limits and errors.
    req(
        "9.1 Rate limiting",
        "HTTP 429 with code 9 and a full body",
        R(&["RATE-429-CODE-9"]),
    ),
    req(
        "9.1 Rate limiting",
        "integer `X-RateLimit-*` headers",
        R(&["RATE-HEADERS"]),
    ),
    req(
        "9.1 Rate limiting",
        "too many connections: code 71",
        Why("UNCONFIRMED (§9.1)"),
    ),
    req(
        "9.2 Documented error table",
        "401/2 access key, 401/5 authentication, 401/40–43 token",
        R(&[
            "AUTH-REST-API-KEY-WRONG-2",
            "AUTH-REST-NO-TOKEN-5",
            "AUTH-REST-401-40",
            "AUTH-REST-NOT-YET-VALID-41",
            "AUTH-REST-IAT-FUTURE-42",
            "AUTH-REST-BAD-SIGNATURE",
        ]),
    ),
    req(
        "9.2 Documented error table",
        "403/17 not allowed",
        R(&[
            "AUTH-PERM-UPSERT-OTHER-17",
            "AUTH-PERM-PARTIAL-OTHER-17",
            "AUTH-PERM-CONNECTION-OTHER",
        ]),
    ),
    req(
        "9.2 Documented error table",
        "400/4 input",
        R(&["USER-ID-CHARS", "USER-SIZE-5KB"]),
    ),
    req(
        "9.2 Documented error table",
        "429/9 rate limit",
        R(&["RATE-429-CODE-9"]),
    ),
    req(
        "9.2 Documented error table",
        "404/16, 413/22, 408/23, 431/24, 400/18, 400/20 and the rest",
        Why("not yet rules: each needs its own malformed request"),
    ),
    req(
        "9.3 Client-only codes",
        "Android 1000–1009, JS `isWSFailure`",
        Why("never sent by a server"),
    ),
    // 10. Events.
    req(
        "10. Event catalogue",
        "`message.new`, `typing.*`, `message.read` to watchers (sender included)",
        R(&["DELIVERY-EVERY-WATCHER", "TYPING-FANOUT", "READ-FANOUT"]),
    ),
    req(
        "10. Event catalogue",
        "`notification.mark_read` to the reader's own connections",
        R(&["READ-FANOUT", "PRIVACY-OWN-MARK-READ"]),
    ),
    req(
        "10. Event catalogue",
        "`user.presence.changed` to presence subscribers",
        R(&["DISCONNECT-PRESENCE-OFFLINE"]),
    ),
    req(
        "10. Event catalogue",
        "member, channel and user events of server-side calls",
        Why(PART1),
    ),
    req(
        "10. Event catalogue",
        "every event's fields (`type`, `created_at`, cid fields)",
        Why("not yet a rule field by field"),
    ),
    // 11. Checklists.
    req(
        "11.1 Mock server — must-haves",
        "items 1–9: upgrade, first frame, error frames, health, closes, watching, long-poll, errors, privacy",
        R(&[
            "CONN-UPGRADE",
            "CONN-FIRST-FRAME",
            "ERROR-FRAME-BODY",
            "HEALTH-INTERVAL",
            "RECONNECT-ERROR-CLOSE-1000",
            "DELIVERY-NOT-WATCHING",
            "LONGPOLL-CONNECT",
            "ERROR-HTTP-BODY",
            "PRIVACY-TYPING-OFF",
        ]),
    ),
    req(
        "11.2 Load-test client — per-profile parameters",
        "client parameters",
        Why(CLIENT),
    ),
    // 12. Open questions.
    req(
        "12. Open questions",
        "each open question that a server decides",
        R(&[
            "AUTH-USER-MISMATCH",
            "HEALTH-PING-REPLY",
            "DISCONNECT-PRESENCE-OFFLINE",
            "PRIVACY-READ-STATE-HIDDEN",
            "PRIVACY-OWN-MARK-READ",
        ]),
    ),
    // The JS SDK's observed needs.
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "`config.typing_events`, `read_events`, `own_capabilities` in channel responses",
        Why("not yet a rule; the official JS SDK test fails without them"),
    ),
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "`me.mutes` and `me.channel_mutes` arrays",
        R(&["CONN-ME"]),
    ),
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "close 1000 after an error frame",
        R(&["RECONNECT-ERROR-CLOSE-1000"]),
    ),
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "after HTTP code 40 the retried request with the new token is served",
        R(&["AUTH-REFRESH-40"]),
    ),
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "periodic `health.check` under 35 s",
        R(&["HEALTH-INTERVAL"]),
    ),
    req(
        "What the official JS SDK (9.53.0) needs from a server",
        "no `user_id` required on the long-poll close",
        Why("not yet a rule"),
    ),
    // Unity.
    req(
        "Unity (C#) SDK profile",
        "case-insensitive `Id` / `Type` keys, PascalCase health checks",
        Why(LOAD),
    ),
    req(
        "Unity (C#) SDK profile",
        "a `health.check` answering each object health check",
        R(&["HEALTH-REPLY-OBJECT"]),
    ),
    req(
        "Unity (C#) SDK profile",
        "first `health.check` with `connection_id` and `me`; one JSON object per frame",
        R(&["CONN-FIRST-FRAME", "CONN-ME"]),
    ),
    req(
        "Unity (C#) SDK profile",
        "`details` an array of strings in error bodies",
        R(&["ERROR-HTTP-BODY", "ERROR-FRAME-BODY"]),
    ),
];

/// Rule ids named by the matrix, with repeats.
#[cfg(test)]
pub(crate) fn named_rules() -> impl Iterator<Item = &'static str> {
    MATRIX.iter().flat_map(|r| match r.cover {
        Cover::Rules(ids) => ids.iter().copied(),
        Cover::None(_) => [].iter().copied(),
    })
}

/// The matrix as Markdown: one table per PROTOCOL.md section, then every rule with its
/// requirement and the rows that name it.
pub fn render_coverage() -> String {
    let mut out = String::new();
    let all = rules();
    let _ = writeln!(out, "# Conformance coverage\n");
    let _ = writeln!(
        out,
        "Every requirement of PROTOCOL.md that a server can break, section by section, with the \
         `chatstorm conform` rules that check it, or why none does. Generated from the rule table \
         (`src/conformance/table.rs`) and the matrix (`src/conformance/coverage.rs`); do not edit by \
         hand. Regenerate with:\n\n```sh\nCHATSTORM_BLESS=1 cargo test -p chatstorm --lib conformance::coverage\n```\n"
    );
    let covered = MATRIX.iter().filter(|r| matches!(r.cover, Cover::Rules(_))).count();
    let _ = writeln!(
        out,
        "{} rules; {} requirements, {} checked by at least one rule, {} with the reason they have none.\n",
        all.len(),
        MATRIX.len(),
        covered,
        MATRIX.len() - covered
    );
    for section in SECTIONS {
        let _ = writeln!(out, "## {section}\n");
        let _ = writeln!(out, "| requirement | rules |\n|---|---|");
        for r in MATRIX.iter().filter(|r| r.section == *section) {
            let cover = match r.cover {
                Cover::Rules(ids) => ids.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", "),
                Cover::None(why) => format!("none: {why}"),
            };
            let _ = writeln!(out, "| {} | {cover} |", r.text);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Rules\n");
    let _ = writeln!(out, "| rule | grade | PROTOCOL.md | requirement |\n|---|---|---|---|");
    for r in all {
        let grade = match r.strictness {
            Strictness::Strict => "strict",
            Strictness::NonStrict => "non-strict",
        };
        let _ = writeln!(out, "| `{}` | {grade} | {} | {} |", r.id, r.section, r.requirement);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const REGENERATE: &str = "CHATSTORM_BLESS=1 cargo test -p chatstorm --lib conformance::coverage";

    #[test]
    fn every_rule_is_in_the_matrix_and_every_named_rule_exists() {
        let named: Vec<&str> = named_rules().collect();
        let missing: Vec<&str> = rules().iter().map(|r| r.id).filter(|id| !named.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "rules missing from the coverage matrix (add them to MATRIX in src/conformance/coverage.rs, then run {REGENERATE}): {missing:?}"
        );
        let unknown: Vec<&str> = named
            .iter()
            .copied()
            .filter(|id| !rules().iter().any(|r| r.id == *id))
            .collect();
        assert!(
            unknown.is_empty(),
            "the coverage matrix names rules that do not exist: {unknown:?}"
        );
    }

    #[test]
    fn every_section_has_a_row_and_every_row_a_section_and_a_reason() {
        for s in SECTIONS {
            assert!(
                MATRIX.iter().any(|r| r.section == *s),
                "PROTOCOL.md section {s:?} has no requirement in the coverage matrix"
            );
        }
        for r in MATRIX {
            assert!(
                SECTIONS.contains(&r.section),
                "{:?}: unknown section {:?}",
                r.text,
                r.section
            );
            match r.cover {
                Cover::Rules(ids) => assert!(!ids.is_empty(), "{:?}: no rules and no reason", r.text),
                Cover::None(why) => assert!(!why.trim().is_empty(), "{:?}: an empty reason", r.text),
            }
        }
    }

    /// The section headings of PROTOCOL.md, when it can be found (`CHATSTORM_PROTOCOL_MD`, or
    /// `shared/PROTOCOL.md` beside the repository): each must have its place in [`SECTIONS`], so
    /// a section added to the protocol without a matrix row fails here.
    #[test]
    fn every_protocol_md_section_is_in_the_matrix() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path = std::env::var_os("CHATSTORM_PROTOCOL_MD")
            .map(PathBuf::from)
            .or_else(|| root.parent().map(|p| p.join("shared").join("PROTOCOL.md")));
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            eprintln!("PROTOCOL.md not found: only the embedded section list is checked");
            return;
        };
        let skip = [
            "0. Quick summary",
            "Legend",
            "U.",
            "1. WebSocket connect",
            "2. Authentication",
            "3. Health",
            "4. Long-poll",
            "6. Privacy",
            "7. Typing",
            "9. Rate limits",
            "11. Implementation",
        ];
        for line in text.lines() {
            let Some(h) = line.strip_prefix("### ").or_else(|| line.strip_prefix("## ")) else {
                continue;
            };
            if skip.iter().any(|s| h.starts_with(s)) {
                continue;
            }
            // Numbered headings match by their number, the others by their first words.
            let known = SECTIONS.iter().any(|s| match s.split_once(' ') {
                Some((num, _)) if num.starts_with(|c: char| c.is_ascii_digit()) => h.starts_with(&format!("{num} ")),
                _ => h.starts_with(&s[..s.len().min(24)]),
            });
            assert!(
                known,
                "PROTOCOL.md section {h:?} has no place in the coverage matrix (SECTIONS in src/conformance/coverage.rs)"
            );
        }
    }

    #[test]
    fn the_committed_matrix_is_the_generated_one() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(COVERAGE_PATH);
        let rendered = render_coverage();
        if std::env::var_os("CHATSTORM_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().expect("docs/")).expect("create docs/");
            std::fs::write(&path, &rendered).expect("write the coverage matrix");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{COVERAGE_PATH} differs from the matrix generated from the rule table; regenerate it with:\n  {REGENERATE}"
        );
    }
}
