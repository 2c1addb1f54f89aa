//! Lifecycle tests: connect per profile, token refresh and fatal static 40, reconnect after 1011,
//! final 1000, long-poll fallback, privacy via PATCH, the size of the user future.

use crate::common::*;
use chatstorm::metrics::{Counter, Gauge, RestEndpoint};
use chatstorm::user::{State, StopReason, TokenMode, Transport, UserAction, UserReport, run_user};
use chatstorm_mock::{DropMode, DropRequest, ExpireRequest, RefuseMode};
use chatstorm_protocol::Profile;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn every_profile_connects_and_watches() {
    let r = rig(5).await;
    let users: Vec<_> = Profile::ALL
        .into_iter()
        .enumerate()
        .map(|(i, p)| r.spawn(spec(i as u32, p, TokenMode::Provider)))
        .collect();
    eventually("five live users, each with two watches", || {
        (0..5).all(|u| r.obs.connections(u).len() == 1 && r.obs.rest_ok(u, RestEndpoint::ChannelQuery).len() == 2)
    })
    .await;
    assert_eq!(r.ctx.recorder.gauge(Gauge::Connected), 5);
    assert_eq!(r.count(Counter::Connects), 5);
    let snap = r.snapshot();
    assert_eq!(snap.histograms["connect.ws"].count, 5, "{:?}", snap.histograms.keys());
    assert!(snap.histograms["token.fetch"].count >= 5);
    let reports = r.finish(users).await;
    for rep in reports {
        assert!(rep.connected_ever);
        assert_eq!(
            (rep.final_state, rep.stop_reason),
            (State::Stopped, Some(StopReason::Requested))
        );
        assert_eq!(rep.watches, 2);
    }
}

#[tokio::test]
async fn provider_refreshes_the_token_after_code_40() {
    let r = rig(1).await;
    let u = r.spawn(spec(0, Profile::Js, TokenMode::Provider));
    eventually("live", || r.obs.connections(0).len() == 1).await;
    let kicked = r.mock.control.expire_tokens(&ExpireRequest {
        users: vec!["user-0".into()],
        ..Default::default()
    });
    assert_eq!(kicked, 1);
    eventually("live again with a new token", || r.obs.connections(0).len() == 2).await;
    let c = r.obs.connections(0);
    assert_ne!(c[0].1, c[1].1, "new connection id");
    assert_eq!(r.count(Counter::TokenRefreshes), 1);
    assert!(r.snapshot().histograms["token.refresh"].count == 1);
    let rep = r.finish(vec![u]).await.remove(0);
    assert_eq!(rep.token_refreshes, 1);
    assert!(rep.last_token_refresh.unwrap() >= Duration::from_millis(250));
}

#[tokio::test]
async fn a_static_token_makes_code_40_fatal() {
    let r = rig(1).await;
    let u = r.spawn(spec(0, Profile::Js, TokenMode::Static));
    eventually("live", || r.obs.connections(0).len() == 1).await;
    r.mock.control.expire_tokens(&ExpireRequest {
        users: vec!["user-0".into()],
        ..Default::default()
    });
    let rep = tokio::time::timeout(WAIT, u).await.expect("stops").expect("no panic");
    assert_eq!(rep.stop_reason, Some(StopReason::StaticTokenExpired));
    assert_eq!(r.obs.connections(0).len(), 1, "never reconnected");
    assert_eq!(r.ctx.recorder.gauge(Gauge::Connected), 0);
    r.finish(vec![]).await;
}

#[tokio::test]
async fn reconnects_after_close_1011_within_backoff_with_a_new_id_and_rewatches() {
    let r = rig(3).await;
    let a = r.spawn(spec(0, Profile::Js, TokenMode::Provider));
    let b = r.spawn(spec(1, Profile::Android, TokenMode::Provider));
    let mut sender = spec(2, Profile::Flutter, TokenMode::Provider);
    sender.behaviour.message = Some(Duration::from_millis(100));
    eventually("both live and watching", || {
        r.obs.rest_ok(0, RestEndpoint::ChannelQuery).len() == 2
            && r.obs.rest_ok(1, RestEndpoint::ChannelQuery).len() == 2
    })
    .await;
    let dropped = r.mock.control.drop_connections(&DropRequest {
        users: Some(vec!["user-0".into(), "user-1".into()]),
        mode: DropMode::Close,
        code: Some(1011),
        ..Default::default()
    });
    assert_eq!(dropped, 2);
    let dropped_at = Instant::now();
    eventually("both live again", || {
        r.obs.connections(0).len() == 2 && r.obs.connections(1).len() == 2
    })
    .await;
    for u in [0, 1] {
        let c = r.obs.connections(u);
        assert_ne!(c[0].1, c[1].1, "user {u}: the server gave a new connection id");
    }
    // JS recovers with POST /channels (cid $in); Android watches each channel again.
    eventually("recovered", || {
        !r.obs.rest_ok(0, RestEndpoint::Channels).is_empty() && r.obs.rest_ok(1, RestEndpoint::ChannelQuery).len() == 4
    })
    .await;
    // The watches are bound to the new connections: messages arrive after the reconnect.
    let s = r.spawn(sender);
    eventually("messages reach the reconnected users", || {
        [0, 1].iter().all(|&u| {
            r.obs
                .received(u, "message.new", "user-2")
                .iter()
                .any(|t| *t > dropped_at)
        })
    })
    .await;
    let reports = r.finish(vec![a, b, s]).await;
    for rep in &reports[..2] {
        assert_eq!(rep.reconnects, 1);
        let d = rep.last_reconnect.unwrap();
        // One failure: [250, 2500) ms of back-off, plus the reconnect itself on loaded cores.
        assert!(
            d >= Duration::from_millis(250) && d < Duration::from_millis(2500 + 1500),
            "{d:?}"
        );
    }
    assert!(r_counts_ok(&reports));
}

fn r_counts_ok(reports: &[UserReport]) -> bool {
    reports.iter().all(|r| r.connected_ever)
}

#[tokio::test]
async fn a_server_close_1000_ends_js_and_swift_but_not_flutter() {
    let r = rig(3).await;
    let users: Vec<_> = [Profile::Js, Profile::Swift, Profile::Flutter]
        .into_iter()
        .enumerate()
        .map(|(i, p)| r.spawn(spec(i as u32, p, TokenMode::Provider)))
        .collect();
    eventually("live", || (0..3).all(|u| r.obs.connections(u).len() == 1)).await;
    r.mock.control.drop_connections(&DropRequest {
        mode: DropMode::Close,
        code: Some(1000),
        ..Default::default()
    });
    eventually("flutter reconnects", || r.obs.connections(2).len() == 2).await;
    let mut users = users.into_iter();
    for _ in 0..2 {
        let rep = tokio::time::timeout(WAIT, users.next().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rep.stop_reason, Some(StopReason::ServerClosedNormally));
    }
    assert_eq!(
        r.obs.connections(0).len() + r.obs.connections(1).len(),
        2,
        "no reconnects"
    );
    r.finish(users.collect()).await;
}

#[tokio::test]
async fn falls_back_to_longpoll_when_upgrades_are_refused() {
    let r = rig(2).await;
    r.mock
        .control
        .refuse_upgrades(Duration::from_secs(60), RefuseMode::Http503);
    let mut js = spec(0, Profile::Js, TokenMode::Provider);
    js.fallback = true;
    let a = r.spawn(js);
    eventually("live over long-poll", || {
        r.obs.connections(0).first().is_some_and(|c| c.0 == Transport::LongPoll)
    })
    .await;
    assert_eq!(r.count(Counter::Fallbacks), 1);
    eventually("watching over long-poll", || {
        r.obs.rest_ok(0, RestEndpoint::ChannelQuery).len() == 2
    })
    .await;
    r.mock.control.reset();
    let mut sender = spec(1, Profile::Android, TokenMode::Provider);
    sender.behaviour.message = Some(Duration::from_millis(100));
    let b = r.spawn(sender);
    eventually("messages over long-poll", || {
        r.obs.received(0, "message.new", "user-1").len() >= 3
    })
    .await;
    let snap = r.snapshot();
    assert!(snap.histograms["longpoll.poll"].count >= 1);
    assert!(snap.histograms["delivery.message"].count >= 3);
    assert_eq!(r.ctx.recorder.gauge(Gauge::LongPolling), 1);
    let reports = r.finish(vec![a, b]).await;
    assert!(reports[0].fell_back && reports[0].events_received >= 3);
    assert!(r_counts_ok(&reports));
}

#[tokio::test]
async fn privacy_toggle_goes_through_patch_and_silences_typing() {
    let r = rig(2).await;
    // Swift sends typing whatever its own setting: the server must suppress it.
    let mut sender = spec(0, Profile::Swift, TokenMode::Provider);
    sender.behaviour.typing = Some(Duration::from_millis(100));
    let a = r.spawn(sender);
    let b = r.spawn(spec(1, Profile::Js, TokenMode::Provider));
    eventually("typing reaches the watcher", || {
        r.obs.received(1, "typing.start", "user-0").len() >= 2
    })
    .await;
    r.actions
        .send((
            1,
            UserAction::SetPrivacy {
                fraction: 1.0,
                typing: Some(false),
                read: None,
            },
        ))
        .unwrap();
    eventually("PATCH /users done", || {
        !r.obs.rest_ok(0, RestEndpoint::UsersPatch).is_empty()
    })
    .await;
    let patched = r.obs.rest_ok(0, RestEndpoint::UsersPatch)[0];
    let sent_before = r.count(Counter::EventsSent);
    eventually("more typing sent after the toggle", || {
        r.count(Counter::EventsSent) >= sent_before + 5
    })
    .await;
    let late: Vec<_> = r
        .obs
        .received(1, "typing.start", "user-0")
        .into_iter()
        .filter(|t| *t > patched + Duration::from_millis(200))
        .collect();
    assert!(late.is_empty(), "typing delivered after privacy off: {late:?}");
    assert!(r.obs.leaks.lock().unwrap().is_empty());
    let reports = r.finish(vec![a, b]).await;
    assert_eq!(reports[0].privacy_updates, 1);
}

#[tokio::test]
async fn the_user_future_is_small_and_send() {
    let r = rig(1).await;
    let fut = run_user(
        spec(0, Profile::Js, TokenMode::Provider),
        r.ctx.clone(),
        r.actions.subscribe(),
        r.cancel.clone(),
    );
    fn is_send<T: Send>(_: &T) {}
    is_send(&fut);
    let size = std::mem::size_of_val(&fut);
    println!("run_user future: {size} bytes");
    assert!(size <= 4096, "run_user future is {size} bytes");
    drop(fut);
    r.finish(vec![]).await;
}

#[tokio::test]
async fn a_longpoll_user_reconnects_after_code_46() {
    let r = rig(1).await;
    r.mock
        .control
        .refuse_upgrades(Duration::from_secs(60), RefuseMode::Close);
    let mut js = spec(0, Profile::Js, TokenMode::Provider);
    js.fallback = true;
    let a = r.spawn(js);
    eventually("live over long-poll", || r.obs.connections(0).len() == 1).await;
    let dropped = r.mock.control.drop_connections(&DropRequest {
        transport: chatstorm_mock::TransportFilter::Longpoll,
        ..Default::default()
    });
    assert_eq!(dropped, 1);
    eventually("a new long-poll connection", || r.obs.connections(0).len() == 2).await;
    let c = r.obs.connections(0);
    assert!(
        c.iter().all(|x| x.0 == Transport::LongPoll),
        "never back to WebSocket: {c:?}"
    );
    assert_ne!(c[0].1, c[1].1);
    // JS recovers by querying its channels again on the new connection id.
    eventually("recovered", || !r.obs.rest_ok(0, RestEndpoint::Channels).is_empty()).await;
    let rep = r.finish(vec![a]).await.remove(0);
    assert!(rep.fell_back && rep.reconnects == 1, "{rep:?}");
}
