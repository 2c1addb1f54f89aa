//! The rule table: every rule the suite checks, with its PROTOCOL.md section, its requirement in
//! one sentence and its grade. Non-strict where PROTOCOL.md says UNCONFIRMED or INFERRED.
//! Adding a rule: a case in its area module, a row here, a violation test in
//! `tests/conformance/violations.rs` (a test fails when a rule has none), and its requirement's
//! row in the coverage matrix (`coverage.rs`; a test fails when a rule is missing there, and
//! `CHATSTORM_BLESS=1 cargo test -p chatstorm --lib conformance::coverage` rewrites
//! `docs/conformance-coverage.md`).

use super::Area::*;
use super::Strictness::{NonStrict, Strict};
use super::{
    Rule, auth, auth_rest, conn, delivery, disconnect, error, health, longpoll, privacy, rate, read, reconnect, typing,
    user,
};

macro_rules! rule {
    ($id:literal, $area:expr, $section:literal, $strict:expr, $case:path, $req:literal) => {
        Rule {
            id: $id,
            area: $area,
            section: $section,
            requirement: $req,
            strictness: $strict,
            case: |c| Box::pin($case(c)),
        }
    };
}

static RULES: &[Rule] = &[
    rule!(
        "CONN-UPGRADE",
        Conn,
        "§1.2, §11.1",
        Strict,
        conn::upgrade,
        "GET /connect with a valid token completes the WebSocket upgrade."
    ),
    rule!(
        "CONN-FIRST-FRAME",
        Conn,
        "§1.4, §1.5",
        Strict,
        conn::first_frame,
        "The first frame is a JSON text health.check with a non-empty connection_id, cid \"*\" and created_at."
    ),
    rule!(
        "CONN-ME",
        Conn,
        "§1.5",
        Strict,
        conn::me,
        "The first health.check carries me, the own user with total_unread_count, mutes, channel_mutes and devices."
    ),
    rule!(
        "CONN-ME-DETAILS",
        Conn,
        "§1.5, §6.2",
        Strict,
        conn::me_details,
        "me reflects user_details: name and custom fields, flattened."
    ),
    rule!(
        "CONN-ME-PRIVACY",
        Conn,
        "§1.5, §6.2",
        Strict,
        conn::me_privacy,
        "me.privacy_settings reflects the privacy settings sent in user_details."
    ),
    rule!(
        "CONN-HEADER-AUTH",
        Conn,
        "§1.3",
        Strict,
        conn::header_auth,
        "Auth in the Authorization and Stream-Auth-Type upgrade headers (Swift) is accepted like query auth."
    ),
    rule!(
        "AUTH-EXPIRED-40",
        Auth,
        "§2.5, §2.7",
        Strict,
        auth::expired_40,
        "An expired token gets an error frame with code 40."
    ),
    rule!(
        "AUTH-NOT-YET-VALID-41",
        Auth,
        "§2.6, §9.2",
        Strict,
        auth::not_yet_valid_41,
        "A token whose nbf is in the future gets an error frame with code 41."
    ),
    rule!(
        "AUTH-IAT-FUTURE-42",
        Auth,
        "§2.6, §9.2",
        Strict,
        auth::iat_future_42,
        "A token issued in the future (iat) gets an error frame with code 42."
    ),
    rule!(
        "AUTH-BAD-SIGNATURE",
        Auth,
        "§2.5, §11.1",
        Strict,
        auth::bad_signature,
        "A token signed with another secret gets an error frame with code 43 or 5."
    ),
    rule!(
        "AUTH-MALFORMED-5",
        Auth,
        "§2.1",
        Strict,
        auth::malformed_5,
        "A token that is not three JWT segments gets an error frame with code 5."
    ),
    rule!(
        "AUTH-ALG-NONE",
        Auth,
        "§2.1, decisions",
        Strict,
        auth::alg_none,
        "An unsigned alg:none token is refused with an error frame."
    ),
    rule!(
        "AUTH-USER-MISMATCH",
        Auth,
        "§2.1, §12",
        NonStrict,
        auth::user_mismatch,
        "A token whose user_id differs from json.user_id is refused (server side UNCONFIRMED)."
    ),
    rule!(
        "AUTH-REFRESH-40",
        Auth,
        "§2.7",
        Strict,
        auth::refresh_40,
        "After code 40, a client that fetches a fresh token from its provider connects."
    ),
    rule!(
        "AUTH-STATIC-40-FATAL",
        Auth,
        "§2.5, §2.7",
        Strict,
        auth::static_40_fatal,
        "After the code 40 frame the server closes with 1000, telling a static-token client to stop."
    ),
    rule!(
        "AUTH-REST-401-40",
        Auth,
        "§2.6, §2.7",
        Strict,
        auth::rest_401_40,
        "A REST call with an expired token gets HTTP 401 with code 40."
    ),
    rule!(
        "AUTH-NO-EXP-VALID",
        Auth,
        "§2.1",
        Strict,
        auth_rest::no_exp_valid,
        "A user token without exp and iat (as JS createToken makes by default) connects."
    ),
    rule!(
        "AUTH-WS-API-KEY-2",
        Auth,
        "§2.5, §9.2, §11.1",
        Strict,
        auth_rest::ws_api_key_2,
        "/connect with an unknown api_key gets an error frame with code 2."
    ),
    rule!(
        "AUTH-WS-NO-TOKEN-5",
        Auth,
        "§2.4, §2.5, §0.8",
        Strict,
        auth_rest::ws_no_token_5,
        "/connect with stream-auth-type jwt and an empty authorization gets an error frame with code 5."
    ),
    rule!(
        "AUTH-WS-DEV-TOKEN-5",
        Auth,
        "§2.2, decisions",
        Strict,
        auth_rest::ws_dev_token_5,
        "With auth checks on, a developer token (.devtoken signature) gets an error frame with code 5 or 43."
    ),
    rule!(
        "AUTH-WS-SERVER-TOKEN",
        Auth,
        "§2.1 (INFERRED)",
        NonStrict,
        auth_rest::ws_server_token,
        "A server token (server: true, no user_id) does not open a user connection."
    ),
    rule!(
        "AUTH-REST-API-KEY-MISSING-2",
        Auth,
        "§2.4, §9.2",
        Strict,
        auth_rest::rest_api_key_missing_2,
        "A REST call without api_key gets HTTP 401 with code 2, never served."
    ),
    rule!(
        "AUTH-REST-API-KEY-WRONG-2",
        Auth,
        "§2.4, §9.2",
        Strict,
        auth_rest::rest_api_key_wrong_2,
        "A REST call with an unknown api_key gets HTTP 401 with code 2, never served."
    ),
    rule!(
        "AUTH-REST-AUTH-TYPE-5",
        Auth,
        "§2.4",
        Strict,
        auth_rest::rest_auth_type_5,
        "A REST call without stream-auth-type gets HTTP 401 with code 5, never served."
    ),
    rule!(
        "AUTH-REST-NO-TOKEN-5",
        Auth,
        "§2.4, §9.2",
        Strict,
        auth_rest::rest_no_token_5,
        "A jwt REST call without Authorization gets HTTP 401 with code 5, never served."
    ),
    rule!(
        "AUTH-REST-MALFORMED-5",
        Auth,
        "§2.1, §2.6",
        Strict,
        auth_rest::rest_malformed_5,
        "A REST call with a token that is not three JWT segments gets HTTP 401 with code 5."
    ),
    rule!(
        "AUTH-REST-BAD-SIGNATURE",
        Auth,
        "§2.6, §9.2",
        Strict,
        auth_rest::rest_bad_signature,
        "A REST call with a token signed with another secret gets HTTP 401 with code 43 or 5."
    ),
    rule!(
        "AUTH-REST-NOT-YET-VALID-41",
        Auth,
        "§2.6, §9.2",
        Strict,
        auth_rest::rest_not_yet_valid_41,
        "A REST call with a token whose nbf is in the future gets HTTP 401 with code 41."
    ),
    rule!(
        "AUTH-REST-IAT-FUTURE-42",
        Auth,
        "§2.6, §9.2",
        Strict,
        auth_rest::rest_iat_future_42,
        "A REST call with a token issued in the future gets HTTP 401 with code 42."
    ),
    rule!(
        "AUTH-REST-NO-USER-CLAIM-5",
        Auth,
        "§2.1, §9.2",
        Strict,
        auth_rest::rest_no_user_claim_5,
        "A REST call with a signed token that has neither user_id nor server:true gets HTTP 401 with code 5."
    ),
    rule!(
        "AUTH-REST-CLAIM-TYPE-5",
        Auth,
        "§2.1",
        Strict,
        auth_rest::rest_claim_type_5,
        "A REST call with a signed token whose user_id is a number gets HTTP 401 with code 5."
    ),
    rule!(
        "AUTH-REST-ALG-NONE",
        Auth,
        "§2.1, decisions",
        Strict,
        auth_rest::rest_alg_none,
        "A REST call with an unsigned alg:none token gets HTTP 401 with code 5 or 43."
    ),
    rule!(
        "AUTH-REST-USER-MISMATCH",
        Auth,
        "§2.1, §2.4 (UNCONFIRMED)",
        NonStrict,
        auth_rest::rest_user_mismatch,
        "A REST call whose user_id parameter differs from the token's user_id is refused (401 or 403)."
    ),
    rule!(
        "AUTH-PERM-UPSERT-OTHER-17",
        Auth,
        "§6.2, §9.2",
        Strict,
        auth_rest::perm_upsert_other_17,
        "A user token upserting another user (POST /users) gets HTTP 403 with code 17."
    ),
    rule!(
        "AUTH-PERM-PARTIAL-OTHER-17",
        Auth,
        "§6.2, §9.2",
        Strict,
        auth_rest::perm_partial_other_17,
        "A user token partially updating another user (PATCH /users) gets HTTP 403 with code 17."
    ),
    rule!(
        "AUTH-PERM-CONNECTION-OTHER",
        Auth,
        "§7.3, §9.2 (INFERRED)",
        NonStrict,
        auth_rest::perm_connection_other,
        "Watching with another user's connection_id is refused with HTTP 403 and code 17."
    ),
    rule!(
        "AUTH-PERM-ACT-AS-OTHER",
        Auth,
        "§2.4, §7.2",
        Strict,
        auth_rest::perm_act_as_other,
        "A user token naming another user in the body (user_id) is refused or acts as itself, never as that user."
    ),
    rule!(
        "AUTH-ANON-WRITE",
        Auth,
        "§2.3",
        Strict,
        auth_rest::anon_write,
        "An anonymous request (stream-auth-type anonymous, no token) cannot send a message (HTTP 401 or 403)."
    ),
    rule!(
        "USER-ID-CHARS",
        User,
        "§8",
        Strict,
        user::id_chars,
        "A user id with characters outside a-z 0-9 @ _ - is refused at connect."
    ),
    rule!(
        "USER-SIZE-5KB",
        User,
        "§8",
        Strict,
        user::size_5kb,
        "user_details over 5 KB is refused at connect."
    ),
    rule!(
        "USER-CONNECT-UPSERTS",
        User,
        "§6.2, §1.5",
        Strict,
        user::connect_upserts,
        "Connecting upserts the user from user_details: other users see its name and custom fields."
    ),
    rule!(
        "HEALTH-INTERVAL",
        Health,
        "§3.1",
        Strict,
        health::interval,
        "The server sends health.check periodically, at most 1.5 times its interval apart."
    ),
    rule!(
        "HEALTH-REPLY-OBJECT",
        Health,
        "§3.1, §3.2",
        Strict,
        health::reply_object,
        "A client health check sent as a JSON object is answered with a health.check."
    ),
    rule!(
        "HEALTH-REPLY-ARRAY",
        Health,
        "§3.1, §3.2",
        Strict,
        health::reply_array,
        "A client health check sent as a JSON array (JS) is answered with a health.check."
    ),
    rule!(
        "HEALTH-PING-REPLY",
        Health,
        "§3.1 (INFERRED), §12",
        NonStrict,
        health::ping_reply,
        "A WebSocket ping frame is answered with a health.check within 3 s (Swift)."
    ),
    rule!(
        "RECONNECT-NEW-CONNECTION-ID",
        Reconnect,
        "§3.4, §1.5",
        Strict,
        reconnect::new_connection_id,
        "A reconnect at the back-off delay after a drop is accepted and gets a new connection_id."
    ),
    rule!(
        "RECONNECT-REWATCH",
        Reconnect,
        "§3.5, §7.3",
        Strict,
        reconnect::rewatch,
        "After a reconnect, POST /channels with watch:true binds the channels to the new connection."
    ),
    rule!(
        "RECONNECT-ERROR-CLOSE-1000",
        Reconnect,
        "§2.5, §5",
        Strict,
        reconnect::error_close_1000,
        "After an error frame the server closes with 1000, the code that stops SDK reconnects."
    ),
    rule!(
        "LONGPOLL-CONNECT",
        Longpoll,
        "§4.2",
        Strict,
        longpoll::connect,
        "GET /longpoll?json=... answers {\"event\": health.check with connection_id and me}."
    ),
    rule!(
        "LONGPOLL-ORDER",
        Longpoll,
        "§4.3",
        Strict,
        longpoll::order,
        "Events buffered between polls come back in the order they happened."
    ),
    rule!(
        "LONGPOLL-CLOSE",
        Longpoll,
        "§4.2, §5",
        Strict,
        longpoll::close,
        "close=true ends the long-poll connection: a later poll on it gets code 46."
    ),
    rule!(
        "LONGPOLL-UNKNOWN-46",
        Longpoll,
        "§4.3",
        Strict,
        longpoll::unknown_46,
        "A poll with an unknown connection_id gets HTTP 400 with code 46."
    ),
    rule!(
        "PRIVACY-TYPING-OFF",
        Privacy,
        "§6.3",
        Strict,
        privacy::typing_off,
        "Typing events of a user with typing_indicators off reach no other user."
    ),
    rule!(
        "PRIVACY-TYPING-TOGGLE",
        Privacy,
        "§6.2, §6.3",
        Strict,
        privacy::typing_toggle,
        "Turning typing indicators off and on mid-session takes effect at once."
    ),
    rule!(
        "PRIVACY-READ-OFF",
        Privacy,
        "§6.3",
        Strict,
        privacy::read_off,
        "message.read of a user with read_receipts off reaches no other user."
    ),
    rule!(
        "PRIVACY-READ-STATE-HIDDEN",
        Privacy,
        "§6.3 (c) UNCONFIRMED",
        NonStrict,
        privacy::read_state_hidden,
        "A user with read_receipts off is left out of the channel's read array shown to others."
    ),
    rule!(
        "PRIVACY-OWN-MARK-READ",
        Privacy,
        "§6.3 (b) UNCONFIRMED",
        NonStrict,
        privacy::own_mark_read,
        "With read_receipts off, the reader's own connections still get notification.mark_read."
    ),
    rule!(
        "TYPING-FANOUT",
        Typing,
        "§7.1",
        Strict,
        typing::fanout,
        "typing.start and typing.stop reach every watcher of the channel, the sender's own connection included."
    ),
    rule!(
        "READ-FANOUT",
        Read,
        "§7.2",
        Strict,
        read::fanout,
        "Mark read sends message.read to watchers and notification.mark_read to the reader's own connection."
    ),
    rule!(
        "DELIVERY-EVERY-WATCHER",
        Delivery,
        "§7.3, §10",
        Strict,
        delivery::every_watcher,
        "Each channel event reaches every watching connection, the sender's own and a user's second connection included."
    ),
    rule!(
        "DELIVERY-ONCE",
        Delivery,
        "§7.3, §10",
        Strict,
        delivery::once,
        "No connection receives the same event twice."
    ),
    rule!(
        "DELIVERY-ORDER",
        Delivery,
        "§7.3, §4.3",
        Strict,
        delivery::order,
        "Every watching connection receives a channel's events in the order they were sent."
    ),
    rule!(
        "DELIVERY-NOT-WATCHING",
        Delivery,
        "§7.3",
        Strict,
        delivery::not_watching,
        "A member's connection that does not watch a channel gets none of its message.new events."
    ),
    rule!(
        "DELIVERY-STOP-WATCHING",
        Delivery,
        "§7.3",
        Strict,
        delivery::stop_watching,
        "After stop-watching, the connection gets no more message.new events of the channel."
    ),
    rule!(
        "DISCONNECT-CLOSE-1000",
        Disconnect,
        "§5",
        Strict,
        disconnect::close_1000,
        "A client close with 1000 is answered with a close frame."
    ),
    rule!(
        "DISCONNECT-PRESENCE-OFFLINE",
        Disconnect,
        "§5 UNCONFIRMED",
        NonStrict,
        disconnect::presence_offline,
        "When a user's last connection closes, presence subscribers get user.presence.changed online:false."
    ),
    rule!(
        "ERROR-HTTP-BODY",
        Error,
        "§2.6, decisions",
        Strict,
        error::http_body,
        "HTTP error bodies carry code, message, StatusCode, duration, more_info, details, and StatusCode equals the HTTP status."
    ),
    rule!(
        "ERROR-FRAME-BODY",
        Error,
        "§2.5, decisions",
        Strict,
        error::frame_body,
        "The error object of an error frame carries code, message, StatusCode, duration, more_info, details."
    ),
    rule!(
        "RATE-429-CODE-9",
        Rate,
        "§9.1",
        Strict,
        rate::code_9,
        "A rate-limited request gets HTTP 429 with code 9 and a full error body (skipped if the target does not rate-limit)."
    ),
    rule!(
        "RATE-HEADERS",
        Rate,
        "§9.1",
        Strict,
        rate::headers,
        "Responses carry integer X-RateLimit-Limit, -Remaining and -Reset headers (skipped if the target does not rate-limit)."
    ),
];

/// Every rule, in report order.
pub fn rules() -> &'static [Rule] {
    RULES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_upper_case_and_prefixed_by_their_area() {
        let mut seen = std::collections::HashSet::new();
        for r in rules() {
            assert!(seen.insert(r.id), "duplicate {}", r.id);
            assert!(
                r.id.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.id
            );
            let area = serde_json::to_value(r.area).unwrap();
            assert!(r.id.starts_with(area.as_str().unwrap()), "{} not in {area}", r.id);
            assert!(r.section.starts_with('§'), "{}", r.id);
            assert!(r.requirement.ends_with('.'), "{}", r.id);
        }
    }
}
