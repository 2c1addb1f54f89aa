//! Traffic tests: stamped typing, read and message deliveries measured end to end, the REST code-40
//! resend (against wiremock, to see both requests), and the client-side token expiry action.

use crate::common::*;
use chatstorm::metrics::{Counter, Recorder};
use chatstorm::target::{Target, TargetAuth};
use chatstorm::user::rest::{self, Job};
use chatstorm::user::{DeliveryTracker, SourceAddrs, TokenMode, UserAction, UserCtx, http};
use chatstorm_protocol::Profile;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn typing_read_and_messages_are_delivered_and_measured() {
    let r = rig(3).await;
    r.create_channels(3).await;
    let users: Vec<_> = [Profile::Js, Profile::Android, Profile::Swift]
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut s = spec(i as u32, p, TokenMode::Provider);
            s.behaviour.typing = Some(Duration::from_millis(150));
            s.behaviour.read = Some(Duration::from_millis(150));
            s.behaviour.message = Some(Duration::from_millis(150));
            r.spawn(s)
        })
        .collect();
    let missing = || {
        let mut m = Vec::new();
        for to in 0..3u32 {
            for from in (0..3u32).filter(|f| *f != to) {
                for k in ["typing.start", "message.read", "message.new"] {
                    if r.obs.received(to, k, &format!("user-{from}")).is_empty() {
                        m.push(format!("{k} {from}->{to}"));
                    }
                }
            }
        }
        m
    };
    let deadline = Instant::now() + WAIT;
    while !missing().is_empty() {
        assert!(Instant::now() < deadline, "never delivered: {:?}", missing());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.count(Counter::EventsOutOfOrder), 0);
    let snap = r.snapshot();
    for h in ["delivery.typing", "delivery.read", "delivery.message"] {
        assert!(snap.histograms[h].count > 0, "{h}");
    }
    let ctx = r.ctx.clone();
    let reports = r.finish(users).await;
    let totals = ctx.deliveries.finish();
    assert!(totals.sent > 0 && totals.received > 0, "{totals:?}");
    assert_eq!(totals.leaks, 0, "{totals:?}");
    // A correct server, no fault: the accounting is exact (sends before a receiver's watch was
    // answered are not expected there, so joining users blur nothing).
    assert_eq!((totals.lost, totals.duplicated), (0, 0), "{totals:?}");
    assert!(reports.iter().all(|r| r.events_sent > 0 && r.events_received > 0));
}

#[tokio::test]
async fn client_side_expiry_drives_the_refresh_path() {
    let r = rig(1).await;
    let u = r.spawn(spec(0, Profile::Js, TokenMode::Provider));
    eventually("live", || r.obs.connections(0).len() == 1).await;
    r.actions.send((7, UserAction::ExpireToken { fraction: 1.0 })).unwrap();
    eventually("live again", || r.obs.connections(0).len() == 2).await;
    let rep = r.finish(vec![u]).await.remove(0);
    assert_eq!(rep.token_refreshes, 1);
    assert!(rep.last_token_refresh.is_some());
}

async fn rest_ctx(server: &MockServer) -> Arc<UserCtx> {
    let target = Target::new(
        server.uri().parse().unwrap(),
        KEY.into(),
        TargetAuth::Secret(SECRET.as_bytes().to_vec()),
        None,
    )
    .unwrap();
    Arc::new(UserCtx {
        target,
        recorder: Recorder::new(),
        http: http::new_client(),
        source_addrs: SourceAddrs::none(),
        deliveries: DeliveryTracker::new(&ids(1), &[]),
        observer: None,
        run_start: Instant::now(),
        run_over: tokio_util::sync::CancellationToken::new(),
    })
}

#[tokio::test]
async fn rest_code_40_refreshes_and_resends_once() {
    let server = MockServer::start().await;
    let expired = r#"{"code":40,"message":"Read failed","StatusCode":401,"duration":"","more_info":"","details":[]}"#;
    Mock::given(method("POST"))
        .and(path("/channels/messaging/room-a/read"))
        .respond_with(ResponseTemplate::new(401).set_body_string(expired))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/channels/messaging/room-a/read"))
        .respond_with(ResponseTemplate::new(201).set_body_string("{}"))
        .mount(&server)
        .await;
    let ctx = rest_ctx(&server).await;
    for (mode, want_ok, want_requests) in [(TokenMode::Provider, true, 2), (TokenMode::Static, false, 1)] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_string(expired))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_string("{}"))
            .mount(&server)
            .await;
        let spec = Arc::new(spec(0, Profile::Js, mode));
        let done = rest::run(
            ctx.clone(),
            spec,
            Job::Read(
                0,
                chatstorm::user::delivery::Stamp {
                    t_us: 0,
                    seq: 0,
                    user: 0,
                },
            ),
            "old.token.x".into(),
            "conn-1".into(),
        )
        .await;
        assert_eq!(done.ok(), want_ok, "{mode:?}: {:?}", done.result);
        assert_eq!(done.new_token.is_some(), want_ok);
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), want_requests, "{mode:?}");
        let auth: Vec<_> = reqs
            .iter()
            .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
            .collect();
        assert_eq!(auth[0], "old.token.x");
        if want_ok {
            assert_ne!(auth[1], auth[0], "the resend carries the new token");
        }
        let first = &reqs[0];
        let q: Vec<(String, String)> = first.url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        for (k, v) in [("api_key", KEY), ("user_id", "user-0"), ("connection_id", "conn-1")] {
            assert!(q.contains(&(k.to_owned(), v.to_owned())), "{q:?}");
        }
        assert_eq!(first.headers["stream-auth-type"], "jwt");
        assert!(
            first.headers["x-stream-client"]
                .to_str()
                .unwrap()
                .starts_with("stream-chat-js")
        );
    }
}
