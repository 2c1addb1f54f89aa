//! Proof that each rule can fail: for every rule id, a server that violates it (a mock violation
//! switch, a mock misconfiguration, a mock fault, or a scripted peer) turns its verdict to a
//! failure with evidence. `VIOLATIONS` lists them; a test checks it covers `rules()`.

use std::time::Duration;

use chatstorm::conformance::{RuleResult, Strictness, Verdict, rules, run_rule};
use chatstorm_mock::{MockConfig, RefuseMode, Violation};

use super::common::{mock_target, start_mock, suite_options};
use super::peer::{self, Behaviour};

/// How a test makes the target violate a rule.
#[derive(Debug, Clone, Copy)]
pub enum Breaker {
    /// The mock with this named violation on.
    Violation(&'static str),
    /// The mock with a misconfiguration.
    Config(fn(&mut MockConfig)),
    /// The mock refusing WebSocket upgrades.
    RefuseUpgrades,
    /// A scripted misbehaving peer.
    Peer(Behaviour),
}

/// Runs `id` against a target broken by `how`; asserts a failure whose evidence contains `needle`.
pub async fn assert_fails(id: &str, how: Breaker, needle: &str) -> RuleResult {
    let opts = suite_options();
    let result = match how {
        Breaker::Peer(b) => {
            let p = peer::start(b).await;
            run_rule(&p.target(), id, &opts).await
        }
        _ => {
            let mock = start_mock(|c| {
                if let Breaker::Config(f) = how {
                    f(c);
                }
            })
            .await;
            match how {
                Breaker::Violation(name) => {
                    let v = Violation::from_name(name).unwrap_or_else(|| panic!("mock has no violation {name}"));
                    mock.control.set_violation(v, true);
                }
                Breaker::RefuseUpgrades => mock
                    .control
                    .refuse_upgrades(Duration::from_secs(120), RefuseMode::Http503),
                _ => {}
            }
            let r = run_rule(&mock_target(&mock), id, &opts).await;
            mock.shutdown().await;
            r
        }
    };
    let r = result.unwrap_or_else(|| panic!("no rule {id}"));
    let want = match r.strictness {
        Strictness::Strict => Verdict::Failed,
        Strictness::NonStrict => Verdict::NonStrictFailure,
    };
    assert_eq!(r.verdict, want, "{id} against {how:?}: {r:#?}");
    let e = r.evidence.as_ref().expect("failure evidence");
    assert!(!e.expected.is_empty() && !e.received.is_empty(), "{e:#?}");
    assert!(!e.wire_log.is_empty(), "{id}: empty wire log");
    let all = format!("{} | {}", e.expected, e.received);
    assert!(all.contains(needle), "{id}: evidence lacks {needle:?}: {all}");
    // Tokens never reach the evidence in the clear.
    for l in &e.wire_log {
        assert!(
            !l.text.contains("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ"),
            "{id}: unredacted token in {l:?}"
        );
    }
    r
}

macro_rules! violation_tests {
    ($($test:ident: $id:literal => $how:expr, $needle:literal;)*) => {
        /// Every rule id with the test and the breaker that proves it can fail.
        pub const VIOLATIONS: &[(&str, &str, &str)] = &[$(($id, stringify!($test), stringify!($how))),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                assert_fails($id, $how, $needle).await;
            }
        )*
    };
}

use Breaker::{Config, Peer, RefuseUpgrades, Violation as V};

violation_tests! {
    conn_upgrade_refused: "CONN-UPGRADE" => RefuseUpgrades, "HTTP 503";
    conn_first_frame_not_json: "CONN-FIRST-FRAME" => Peer(Behaviour::NonJsonFirst), "non-JSON";
    conn_me_omitted: "CONN-ME" => V("omit_me"), "me = absent";
    conn_me_details_omitted: "CONN-ME-DETAILS" => V("omit_me"), "me = absent";
    conn_me_privacy_omitted: "CONN-ME-PRIVACY" => V("omit_me"), "absent";
    conn_header_auth_refused: "CONN-HEADER-AUTH" => Peer(Behaviour::QueryAuthOnly), "\"code\":5";
    auth_expired_wrong_code: "AUTH-EXPIRED-40" => V("wrong_expired_code"), "\"code\":43";
    auth_nbf_wrong_code: "AUTH-NOT-YET-VALID-41" => Peer(Behaviour::AlwaysError(5)), "code 41";
    auth_iat_wrong_code: "AUTH-IAT-FUTURE-42" => Peer(Behaviour::AlwaysError(5)), "code 42";
    auth_bad_signature_wrong_code: "AUTH-BAD-SIGNATURE" => Peer(Behaviour::AlwaysError(40)), "\"code\":40";
    auth_malformed_wrong_code: "AUTH-MALFORMED-5" => Peer(Behaviour::AlwaysError(43)), "\"code\":43";
    auth_alg_none_accepted: "AUTH-ALG-NONE" => V("accept_alg_none"), "health.check";
    auth_user_mismatch_accepted: "AUTH-USER-MISMATCH" => Peer(Behaviour::AcceptAll), "health.check";
    auth_refresh_never_sees_40: "AUTH-REFRESH-40" => V("wrong_expired_code"), "\"code\":43";
    auth_static_40_dropped_not_closed: "AUTH-STATIC-40-FATAL" => V("error_close_1006"), "1006";
    auth_rest_wrong_code: "AUTH-REST-401-40" => V("wrong_expired_code"), "\"code\":43";
    user_id_chars_accepted: "USER-ID-CHARS" => Peer(Behaviour::AcceptAll), "health.check";
    user_size_accepted: "USER-SIZE-5KB" => Config(|c| c.user_size_limit = 1 << 20), "connection_id";
    user_connect_not_upserted: "USER-CONNECT-UPSERTS" => V("connect_no_upsert"), "\"id\":";
    health_interval_doubled: "HEALTH-INTERVAL" => V("health_interval_x2"), "timed out";
    health_object_unanswered: "HEALTH-REPLY-OBJECT" => V("no_health_reply"), "timed out";
    health_array_unanswered: "HEALTH-REPLY-ARRAY" => V("no_health_reply"), "timed out";
    health_ping_unanswered: "HEALTH-PING-REPLY" => V("no_ping_reply"), "timed out";
    reconnect_same_id: "RECONNECT-NEW-CONNECTION-ID" => V("same_connection_id"), "again";
    reconnect_rewatch_ignored: "RECONNECT-REWATCH" => V("recover_watch_ignored"), "another watcher's event";
    reconnect_rewatch_no_own_events: "RECONNECT-REWATCH" => V("no_sender_fanout"), "own event";
    reconnect_error_dropped: "RECONNECT-ERROR-CLOSE-1000" => V("error_close_1006"), "1006";
    longpoll_connect_me_omitted: "LONGPOLL-CONNECT" => V("omit_me"), "HTTP 200";
    longpoll_unordered: "LONGPOLL-ORDER" => V("longpoll_unordered"), "\"typing.stop\", \"typing.start\"";
    longpoll_closed_id_ok: "LONGPOLL-CLOSE" => V("longpoll_unknown_id_ok"), "HTTP 200";
    longpoll_unknown_id_ok: "LONGPOLL-UNKNOWN-46" => V("longpoll_unknown_id_ok"), "HTTP 200";
    privacy_typing_leaks: "PRIVACY-TYPING-OFF" => V("typing_ignores_privacy"), "typing.start";
    privacy_typing_toggle_leaks: "PRIVACY-TYPING-TOGGLE" => V("typing_ignores_privacy"), "mid-session";
    privacy_read_leaks: "PRIVACY-READ-OFF" => V("read_ignores_privacy"), "message.read";
    privacy_read_state_shown: "PRIVACY-READ-STATE-HIDDEN" => V("read_ignores_privacy"), "read entry";
    privacy_own_mark_read_missing: "PRIVACY-OWN-MARK-READ" => V("no_mark_read_to_self"), "notification.mark_read";
    typing_no_sender_fanout: "TYPING-FANOUT" => V("no_sender_fanout"), "sender's own connection";
    read_no_mark_read_to_self: "READ-FANOUT" => V("no_mark_read_to_self"), "notification.mark_read";
    disconnect_close_unanswered: "DISCONNECT-CLOSE-1000" => Peer(Behaviour::NoCloseEcho), "timed out";
    disconnect_no_presence: "DISCONNECT-PRESENCE-OFFLINE" => V("no_presence_event"), "user.presence.changed";
    error_http_body_incomplete: "ERROR-HTTP-BODY" => V("incomplete_error_body"), "missing";
    error_frame_body_incomplete: "ERROR-FRAME-BODY" => V("incomplete_error_body"), "missing";
    rate_429_wrong_code: "RATE-429-CODE-9" => V("rate_limit_wrong_code"), "\"code\":4";
    rate_429_body_incomplete: "RATE-429-CODE-9" => V("incomplete_error_body"), "missing";
    rate_headers_missing: "RATE-HEADERS" => V("no_rate_limit_headers"), "x-ratelimit";
    auth_no_exp_refused: "AUTH-NO-EXP-VALID" => Peer(Behaviour::AlwaysError(40)), "\"code\":40";
    auth_ws_api_key_unchecked: "AUTH-WS-API-KEY-2" => V("skip_api_key_check"), "health.check";
    auth_ws_no_token_accepted: "AUTH-WS-NO-TOKEN-5" => Peer(Behaviour::AcceptAll), "health.check";
    auth_ws_dev_token_accepted: "AUTH-WS-DEV-TOKEN-5" => Config(|c| c.allow_dev_tokens = true), "connection_id";
    auth_ws_server_token_accepted: "AUTH-WS-SERVER-TOKEN" => Peer(Behaviour::AcceptAll), "health.check";
    auth_rest_api_key_missing_served: "AUTH-REST-API-KEY-MISSING-2" => V("skip_api_key_check"), "HTTP 2";
    auth_rest_api_key_wrong_served: "AUTH-REST-API-KEY-WRONG-2" => V("skip_api_key_check"), "HTTP 2";
    auth_rest_auth_type_served: "AUTH-REST-AUTH-TYPE-5" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_no_token_served: "AUTH-REST-NO-TOKEN-5" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_malformed_served: "AUTH-REST-MALFORMED-5" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_bad_signature_served: "AUTH-REST-BAD-SIGNATURE" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_nbf_wrong_code: "AUTH-REST-NOT-YET-VALID-41" => Peer(Behaviour::RestError(5)), "\"code\":5";
    auth_rest_iat_wrong_code: "AUTH-REST-IAT-FUTURE-42" => Peer(Behaviour::RestError(5)), "\"code\":5";
    auth_rest_no_user_claim_served: "AUTH-REST-NO-USER-CLAIM-5" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_claim_type_served: "AUTH-REST-CLAIM-TYPE-5" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_rest_alg_none_served: "AUTH-REST-ALG-NONE" => V("accept_alg_none"), "HTTP 2";
    auth_rest_user_mismatch_served: "AUTH-REST-USER-MISMATCH" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    auth_perm_upsert_other_served: "AUTH-PERM-UPSERT-OTHER-17" => V("skip_permission_checks"), "HTTP 2";
    auth_perm_partial_other_served: "AUTH-PERM-PARTIAL-OTHER-17" => V("skip_permission_checks"), "HTTP 2";
    auth_perm_connection_other_served: "AUTH-PERM-CONNECTION-OTHER" => V("skip_permission_checks"), "HTTP 2";
    auth_perm_act_as_other_served: "AUTH-PERM-ACT-AS-OTHER" => V("trust_body_user_id"), "acted as Some";
    auth_anon_write_served: "AUTH-ANON-WRITE" => Peer(Behaviour::RestAcceptAll), "HTTP 2";
    delivery_some_dropped: "DELIVERY-EVERY-WATCHER" => V("drop_deliveries"), "missing";
    delivery_twice: "DELIVERY-ONCE" => V("deliver_twice"), "arrived twice";
    delivery_reordered: "DELIVERY-ORDER" => V("reorder_deliveries"), "in the order";
    delivery_to_unwatched: "DELIVERY-NOT-WATCHING" => V("deliver_to_unwatched"), "message.new";
    delivery_after_stop_watching: "DELIVERY-STOP-WATCHING" => V("stop_watching_ignored"), "message.new";
}

#[test]
fn every_rule_has_a_violation_test() {
    let missing: Vec<&str> = rules()
        .iter()
        .map(|r| r.id)
        .filter(|id| !VIOLATIONS.iter().any(|(v, _, _)| v == id))
        .collect();
    assert!(missing.is_empty(), "rules without a violation test: {missing:?}");
    let unknown: Vec<&str> = VIOLATIONS
        .iter()
        .map(|(v, _, _)| *v)
        .filter(|v| !rules().iter().any(|r| r.id == *v))
        .collect();
    assert!(unknown.is_empty(), "violation tests for unknown rules: {unknown:?}");
    // Every named mock violation used exists in the mock.
    for (id, _, how) in VIOLATIONS {
        if let Some(name) = how.strip_prefix("V(\"").and_then(|s| s.strip_suffix("\")")) {
            assert!(
                Violation::from_name(name).is_some(),
                "{id}: mock has no violation {name}"
            );
        }
    }
}
