//! REST: authentication errors, users (upsert, partial update, rules), channel responses the JS SDK
//! needs, body limits, rate limits.

use serde_json::{Value, json};

use crate::util::*;

#[tokio::test]
async fn rest_auth_errors_carry_the_full_body_and_matching_status() {
    let h = start().await;
    let r = rest_token(
        &h,
        "POST",
        "/channels",
        "u",
        &token(json!({"user_id": "u", "exp": now() - 5})),
        None,
        json!({}),
    )
    .await;
    assert_error(&r, 401, 40);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("QueryChannels failed with error:"),
        "{}",
        r.body
    );
    let r = http(
        &h,
        "POST",
        "/channels?api_key=wrong",
        &[("authorization", user_token("u")), ("stream-auth-type", "jwt".into())],
        Some(json!({})),
    )
    .await;
    assert_error(&r, 401, 2);
    let r = http(
        &h,
        "POST",
        &format!("/channels?api_key={KEY}"),
        &[("authorization", user_token("u"))],
        Some(json!({})),
    )
    .await;
    assert_error(&r, 401, 5);
    let r = rest_token(&h, "POST", "/channels", "u", "x.y", None, json!({})).await;
    assert_error(&r, 401, 5);
    let r = rest_token(
        &h,
        "POST",
        "/channels",
        "u",
        &chatstorm_mock::sign_token(&json!({"user_id": "u"}), "other"),
        None,
        json!({}),
    )
    .await;
    assert_error(&r, 401, 43);
    let r = rest_token(
        &h,
        "POST",
        "/channels",
        "u",
        &token(json!({"user_id": "u", "nbf": now() + 999})),
        None,
        json!({}),
    )
    .await;
    assert_error(&r, 401, 41);
    let r = rest_token(
        &h,
        "POST",
        "/channels",
        "u",
        &token(json!({"user_id": "u", "iat": now() + 999})),
        None,
        json!({}),
    )
    .await;
    assert_error(&r, 401, 42);
    let r = rest_token(&h, "POST", "/channels", "u", &user_token("v"), None, json!({})).await;
    assert_error(&r, 401, 5);
    let r = rest(&h, "POST", "/nowhere", "u", None, json!({})).await;
    assert_error(&r, 404, 16);
    let r = rest(&h, "POST", "/channels", "u", None, json!({})).await;
    assert_eq!(r.status, 201);
    assert!(
        r.body["duration"].as_str().is_some_and(|d| d.ends_with("ms")),
        "{}",
        r.body
    );
    let r = http(&h, "GET", "/hi", &[], None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("duration").is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn users_upsert_and_partial_update_merge_privacy_and_enforce_rules() {
    let h = start().await;
    let srv = server_token();
    let body = json!({"users": {"ann": {"id": "ann", "name": "Ann", "privacy_settings": {"typing_indicators": {"enabled": false}}}}});
    let r = rest_token(&h, "POST", "/users", "", &srv, None, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["users"]["ann"]["privacy_settings"]["typing_indicators"]["enabled"],
        false
    );
    assert!(
        r.body["users"]["ann"]["privacy_settings"]
            .get("read_receipts")
            .is_none(),
        "defaults are not materialised"
    );
    let patch = json!({"users": [{"id": "ann", "set": {"privacy_settings": {"read_receipts": {"enabled": false}}, "team.level": 3}, "unset": ["name"]}]});
    let r = rest(&h, "PATCH", "/users", "ann", None, patch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.body["users"]["ann"];
    assert_eq!(
        u["privacy_settings"]["typing_indicators"]["enabled"], false,
        "nested keys merge: {u}"
    );
    assert_eq!(u["privacy_settings"]["read_receipts"]["enabled"], false);
    assert_eq!(u["team"], json!({"level": 3}), "dotted keys address sub-fields");
    assert!(u.get("name").is_none());
    let dotted = json!({"users": [{"id": "ann", "set": {"privacy_settings.typing_indicators.enabled": true}}]});
    let r = rest(&h, "PATCH", "/users", "ann", None, dotted).await;
    assert_eq!(
        r.body["users"]["ann"]["privacy_settings"]["typing_indicators"]["enabled"],
        true
    );
    assert_eq!(
        r.body["users"]["ann"]["privacy_settings"]["read_receipts"]["enabled"],
        false
    );
    // Rules.
    let r = rest_token(
        &h,
        "POST",
        "/users",
        "",
        &srv,
        None,
        json!({"users": {"a|b": {"id": "a|b"}}}),
    )
    .await;
    assert_error(&r, 400, 4);
    assert!(r.body["message"].as_str().unwrap_or("").contains("a-z"));
    let big = json!({"users": {"big": {"id": "big", "bio": "x".repeat(6 * 1024)}}});
    let r = rest_token(&h, "POST", "/users", "", &srv, None, big).await;
    assert_error(&r, 400, 4);
    assert!(r.body["message"].as_str().unwrap_or("").contains("5 KB"));
    let grow = json!({"users": [{"id": "ann", "set": {"bio": "y".repeat(6 * 1024)}}]});
    assert_error(&rest(&h, "PATCH", "/users", "ann", None, grow).await, 400, 4);
    let r = rest(
        &h,
        "POST",
        "/users",
        "ann",
        None,
        json!({"users": {"bob": {"id": "bob"}}}),
    )
    .await;
    assert_error(&r, 403, 17);
    let r = rest_token(
        &h,
        "PATCH",
        "/users",
        "",
        &srv,
        None,
        json!({"users": [{"id": "ghost", "set": {"a": 1}}]}),
    )
    .await;
    assert_error(&r, 404, 16);
    assert_error(
        &rest(&h, "POST", "/users", "ann", None, json!({"nope": 1})).await,
        400,
        4,
    );
    h.shutdown().await;
}

#[tokio::test]
async fn partial_update_reaches_the_users_socket_as_user_updated() {
    let h = start().await;
    let (mut ws, _) = connect(&h, "upd").await;
    let patch =
        json!({"users": [{"id": "upd", "set": {"privacy_settings": {"typing_indicators": {"enabled": false}}}}]});
    assert_eq!(rest(&h, "PATCH", "/users", "upd", None, patch).await.status, 200);
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["type"], "user.updated");
    assert_eq!(ev["user"]["privacy_settings"]["typing_indicators"]["enabled"], false);
    h.shutdown().await;
}

#[tokio::test]
async fn channel_responses_carry_what_the_js_sdk_needs() {
    let h = start().await;
    let (_ws, cid) = watcher(&h, "cara", "general", &["cara", "dan"]).await;
    let body = json!({"data": {}, "state": true, "watch": true, "presence": false});
    let r = rest(
        &h,
        "POST",
        "/channels/messaging/general/query",
        "cara",
        Some(&cid),
        body,
    )
    .await;
    assert_eq!(r.status, 201);
    let ch = &r.body["channel"];
    assert_eq!(ch["cid"], "messaging:general");
    assert_eq!(ch["config"]["typing_events"], true);
    assert_eq!(ch["config"]["read_events"], true);
    let caps: Vec<&str> = ch["own_capabilities"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        caps.contains(&"read-events") && caps.contains(&"send-typing-events"),
        "{caps:?}"
    );
    assert!(r.body["messages"].is_array());
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.body["watcher_count"], 1);
    // Query channels finds it by members and by cid, and a recovery query re-watches.
    let q = json!({"filter_conditions": {"members": {"$in": ["dan"]}}, "sort": [{"field": "last_message_at", "direction": -1}], "limit": 30, "state": true, "watch": false});
    let r = rest(&h, "POST", "/channels", "cara", None, q).await;
    assert_eq!(
        r.body["channels"][0]["channel"]["cid"], "messaging:general",
        "{}",
        r.body
    );
    let q = json!({"filter_conditions": {"cid": {"$in": ["messaging:general", "messaging:none"]}}, "watch": true, "state": true});
    let r = rest(&h, "POST", "/channels", "cara", Some(&cid), q).await;
    assert_eq!(r.body["channels"].as_array().map(Vec::len), Some(1));
    assert!(r.body["channels"][0]["messages"].is_array());
    // Watching needs a connection id of one's own.
    let q = json!({"filter_conditions": {}, "watch": true});
    assert_error(&rest(&h, "POST", "/channels", "cara", None, q.clone()).await, 400, 4);
    assert_error(
        &rest(
            &h,
            "POST",
            "/channels",
            "cara",
            Some("00000000-0000-0000-0000-000000000000"),
            q.clone(),
        )
        .await,
        400,
        46,
    );
    assert_error(&rest(&h, "POST", "/channels", "dan", Some(&cid), q).await, 403, 17);
    assert_error(
        &rest(
            &h,
            "POST",
            "/channels/messaging/bad%20id/query",
            "cara",
            None,
            json!({}),
        )
        .await,
        400,
        4,
    );
    assert_error(
        &rest(
            &h,
            "POST",
            "/channels/messaging/ghost/event",
            "cara",
            None,
            json!({"event": {"type": "typing.start"}}),
        )
        .await,
        404,
        16,
    );
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused() {
    let h = start_with(chatstorm_mock::MockConfig {
        max_body_bytes: 1024,
        ..config()
    })
    .await;
    let r = rest(&h, "POST", "/channels", "u", None, json!({"pad": "x".repeat(4096)})).await;
    assert_error(&r, 413, 22);
    let r = http(
        &h,
        "POST",
        &format!("/channels?api_key={KEY}"),
        &[("authorization", user_token("u")), ("stream-auth-type", "jwt".into())],
        None,
    )
    .await;
    assert_eq!(r.status, 201, "an empty body is {{}}");
    let client_garbage = rest(
        &h,
        "POST",
        "/channels/messaging/x/event",
        "u",
        None,
        json!("just a string"),
    )
    .await;
    assert_error(&client_garbage, 400, 4);
    h.shutdown().await;
}

#[tokio::test]
async fn rate_limits_answer_code_9_with_headers_on_every_response() {
    let h = start_with(chatstorm_mock::MockConfig {
        rate_limit: Some(2),
        ..config()
    })
    .await;
    for remaining in [1, 0] {
        let r = rest(&h, "POST", "/channels", "rl", None, json!({})).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["x-ratelimit-limit"], "2");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining.to_string().as_str());
        let reset: i64 = r.headers["x-ratelimit-reset"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("unix seconds");
        assert!(reset > now() - 1 && reset <= now() + 61);
    }
    let r = rest(&h, "POST", "/channels", "rl", None, json!({})).await;
    assert_error(&r, 429, 9);
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    // Per user and per endpoint.
    assert_eq!(
        rest(&h, "POST", "/channels", "other", None, json!({})).await.status,
        201
    );
    assert_eq!(
        rest(&h, "POST", "/users", "rl", None, json!({"users": {}}))
            .await
            .status,
        201
    );
    let hi = http(&h, "GET", "/hi", &[], None).await;
    assert!(hi.headers.contains_key("x-ratelimit-limit"), "headers on all responses");
    assert_eq!(h.control.stats().rate_limited_total, 1);
    h.control
        .set_violation(chatstorm_mock::Violation::NoRateLimitHeaders, true);
    let r = rest(&h, "POST", "/channels", "fresh", None, json!({})).await;
    assert!(!r.headers.contains_key("x-ratelimit-limit"));
    h.shutdown().await;
}
