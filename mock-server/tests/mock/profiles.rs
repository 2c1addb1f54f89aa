//! Every SDK profile's `/connect` as the protocol crate builds it (query or header auth, the `json`
//! extras, Unity's `Id` key, reduced reconnect `user_details`) is accepted, and the frames the mock
//! sends parse as the protocol crate's typed events.

use chatstorm_protocol::connect::{AuthType, ConnectPayload, Profile, build_connect_request};
use chatstorm_protocol::event::{client_health_check_js, client_health_check_object, client_health_check_unity};
use chatstorm_protocol::{ServerEvent, User};
use serde_json::json;

use crate::util::*;

#[tokio::test]
async fn every_sdk_profile_connects_and_its_health_check_is_answered() {
    let h = start().await;
    for profile in Profile::ALL {
        for reconnect in [false, true] {
            let id = format!("{}-user", profile.name().to_lowercase());
            let mut user = User::new(id.clone());
            user.name = Some("Profile User".to_owned());
            let tok = user_token(&id);
            let payload =
                ConnectPayload::for_profile(profile, &user, &tok, reconnect, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
            let req = build_connect_request(profile, KEY, &tok, AuthType::Jwt, &payload);
            let query = req.path_and_query.trim_start_matches("/connect?").to_owned();
            let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut ws = open(&h, &query, &headers).await;
            let first = next_json(&mut ws).await;
            let parsed =
                ServerEvent::parse(&first.to_string()).unwrap_or_else(|e| panic!("{profile:?}: {e:?} in {first}"));
            let ServerEvent::HealthCheck(hc) = parsed else {
                panic!("{profile:?}: not a health check: {first}")
            };
            let me = hc.me.unwrap_or_else(|| panic!("{profile:?}: no me"));
            assert_eq!(me.user.id, id);
            let check = match profile {
                Profile::Js => client_health_check_js(&format!("{id}--1")),
                Profile::Unity => client_health_check_unity(),
                _ => client_health_check_object(&hc.connection_id),
            };
            send_text(&mut ws, &check).await;
            let reply = next_json(&mut ws).await;
            assert!(
                matches!(ServerEvent::parse(&reply.to_string()), Ok(ServerEvent::HealthCheck(_))),
                "{profile:?}: {reply}"
            );
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn fanned_out_events_parse_as_protocol_events() {
    let h = start().await;
    let (mut a, acid) = watcher(&h, "pa", "pp", &["pa", "pb"]).await;
    let (_b, _) = watcher(&h, "pb", "pp", &["pa", "pb"]).await;
    let start = expect_event(&mut a, "user.watching.start").await;
    assert!(
        matches!(
            ServerEvent::parse(&start.to_string()),
            Ok(ServerEvent::UserWatchingStart(_))
        ),
        "{start}"
    );
    rest(
        &h,
        "POST",
        "/channels/messaging/pp/event",
        "pa",
        Some(&acid),
        json!({"event": {"type": "typing.start"}}),
    )
    .await;
    let ev = next_event(&mut a).await;
    match ServerEvent::parse(&ev.to_string()) {
        Ok(ServerEvent::TypingStart(e)) => assert_eq!(e.cid, "messaging:pp"),
        other => panic!("{other:?} from {ev}"),
    }
    rest(
        &h,
        "POST",
        "/channels/messaging/pp/message",
        "pb",
        None,
        json!({"message": {"text": "hello"}}),
    )
    .await;
    let ev = next_event(&mut a).await;
    assert!(
        matches!(ServerEvent::parse(&ev.to_string()), Ok(ServerEvent::MessageNew(_))),
        "{ev}"
    );
    rest(&h, "POST", "/channels/messaging/pp/read", "pa", Some(&acid), json!({})).await;
    for _ in 0..2 {
        let ev = next_event(&mut a).await;
        let parsed = ServerEvent::parse(&ev.to_string());
        assert!(
            matches!(
                parsed,
                Ok(ServerEvent::MessageRead(_) | ServerEvent::NotificationMarkRead(_))
            ),
            "{parsed:?} from {ev}"
        );
    }
    h.shutdown().await;
}
