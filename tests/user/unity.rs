//! The Unity profile end to end against the in-process mock (paused time, real loopback sockets):
//! the reconnect strategies (constant, never; exponential is in `profiles`), the HTTP code-40 path
//! (close 1000, reconnect with a new token, resend once) against the JS one (refresh and resend on
//! the same connection), and, for every profile, requests only after the connect resolved and the
//! profile's own re-binding of watches after a reconnect.

use crate::common::*;
use crate::profiles::*;
use chatstorm::metrics::RestEndpoint;
use chatstorm::user::{Behaviour, StopReason, TokenMode, UnityReconnect, UnityStrategy};
use chatstorm_mock::{ClientAct, DropRequest, ExpireRequest, JournalEntry, RefuseMode};
use chatstorm_protocol::Profile;
use std::time::Duration;
use tokio::time::Instant;

fn drop_user(r: &Rig) {
    let n = r.mock.control.drop_connections(&DropRequest {
        users: Some(vec![USER.into()]),
        code: Some(1011),
        ..Default::default()
    });
    assert_eq!(n, 1, "one socket dropped");
}

#[tokio::test(start_paused = true)]
async fn unity_constant_strategy_retries_at_its_interval_and_never_gives_up_at_once() {
    let r = quiet_rig(1).await;
    let mut s = spec(0, Profile::Unity, TokenMode::Provider);
    s.unity = UnityReconnect {
        strategy: UnityStrategy::Constant,
        interval: Duration::from_secs(5),
    };
    let u = r.spawn(s);
    wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
    r.mock
        .control
        .refuse_upgrades(Duration::from_secs(3600), RefuseMode::Close);
    let dropped_at = Instant::now();
    drop_user(&r);
    wait_for("nine refused attempts", Duration::from_secs(60), || {
        refused(&r).len() >= 9
    })
    .await;
    let mut prev = dropped_at;
    let mut gaps = Vec::new();
    for at in refused(&r).into_iter().take(9) {
        gaps.push((at - prev).as_secs());
        prev = at;
    }
    assert_eq!(gaps, [0, 0, 0, 0, 0, 0, 5, 5, 5]);
    r.mock.control.refuse_upgrades(Duration::ZERO, RefuseMode::Close);
    wait_for("back", Duration::from_secs(30), || connected(&r, USER).len() == 2).await;
    r.finish(vec![u]).await;

    let r = quiet_rig(1).await;
    let mut s = spec(0, Profile::Unity, TokenMode::Provider);
    s.unity.strategy = UnityStrategy::Never;
    let u = r.spawn(s);
    wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
    drop_user(&r);
    let rep = tokio::time::timeout(Duration::from_secs(600), u)
        .await
        .expect("the user stops on its own")
        .expect("no panic");
    assert_eq!(rep.stop_reason, Some(StopReason::GaveUp));
    assert_eq!(
        (rep.attempts, connected(&r, USER).len()),
        (1, 1),
        "no reconnect attempt"
    );
    r.finish(vec![]).await;
}

/// Waits (in real time, off the runtime so paused time does not jump) until the wall clock has
/// left the current second, and returns that second: tokens minted before have `iat` at or before
/// it, tokens minted after have a later one.
async fn next_wall_second() -> i64 {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let s0 = now();
    tokio::task::spawn_blocking(move || {
        while now() <= s0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("wall clock wait");
    s0
}

fn rest_path(e: &JournalEntry) -> Option<(&str, &str)> {
    match &e.act {
        ClientAct::Rest {
            path, connection_id, ..
        } => Some((path.as_str(), connection_id.as_str())),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn http_code_40_makes_unity_reconnect_then_resend_while_js_resends_in_place() {
    for profile in [Profile::Unity, Profile::Js] {
        let r = quiet_rig(1).await;
        r.create_channels(1).await;
        let mut s = spec(0, profile, TokenMode::Provider);
        s.behaviour = Behaviour {
            message: Some(Duration::from_secs(5)),
            ..Behaviour::default()
        };
        let u = r.spawn(s);
        wait_for("live and watching", Duration::from_secs(10), || {
            r.obs.rest_ok(0, RestEndpoint::ChannelQuery).len() == 2
        })
        .await;
        let first_id = connected(&r, USER)[0].1.clone();
        // Cut off the current token (not the socket): the next message gets HTTP code 40.
        let cutoff = next_wall_second().await;
        let cut_at = Instant::now();
        r.mock.control.expire_tokens(&ExpireRequest {
            users: vec![USER.into()],
            keep_sockets: true,
            cutoff: Some(cutoff),
            ..Default::default()
        });
        let sent_twice = |j: &[JournalEntry]| {
            j.iter()
                .filter(|e| rest_path(e).is_some_and(|(p, _)| p.ends_with("/message")))
                .count()
                >= 2
        };
        wait_for("a message sent and resent", Duration::from_secs(120), || {
            from_first_message(&r, cut_at).is_some_and(|j| sent_twice(&j))
        })
        .await;
        let j = from_first_message(&r, cut_at).expect("a message after the cut-off");
        let (_, first_conn) = rest_path(&j[0]).expect("rest");
        assert_eq!(first_conn, first_id);
        let resend = j[1..]
            .iter()
            .position(|e| rest_path(e).is_some_and(|(p, _)| p.ends_with("/message")))
            .map(|i| i + 1)
            .expect("the resend");
        let between: Vec<&ClientAct> = j[1..resend].iter().map(|e| &e.act).collect();
        let (_, resend_conn) = rest_path(&j[resend]).expect("rest");
        match profile {
            Profile::Unity => {
                // Close 1000, a new connection, then the resend on it before anything else.
                assert!(
                    matches!(between[..], [ClientAct::Close(Some(1000)), ClientAct::Connected { .. }]),
                    "{between:?}"
                );
                let ClientAct::Connected { connection_id } = between[1] else {
                    unreachable!()
                };
                assert_eq!(resend_conn, connection_id.as_str());
                assert_ne!(resend_conn, first_id);
            }
            _ => {
                assert!(between.is_empty(), "JS resends at once: {between:?}");
                assert_eq!(resend_conn, first_id, "on the same connection");
            }
        }
        let msgs: Vec<_> = r
            .obs
            .rest
            .lock()
            .expect("lock")
            .iter()
            .filter(|x| x.1 == RestEndpoint::Message && x.3 >= cut_at)
            .map(|x| x.2)
            .collect();
        // Unity's first answer reaches the caller's code path (it drives the reconnect); JS
        // refreshes inside the one call, which ends with the resend's answer.
        let want: &[Option<u16>] = match profile {
            Profile::Unity => &[Some(401), Some(201)],
            _ => &[Some(201)],
        };
        assert!(msgs.starts_with(want), "{profile:?}: {msgs:?}");
        r.finish(vec![u]).await;
    }
}

/// The journal from the first REST call to `.../message` made at or after `since`.
fn from_first_message(r: &Rig, since: Instant) -> Option<Vec<JournalEntry>> {
    let j = journal(r, USER);
    let start = j
        .iter()
        .position(|e| e.at >= since && matches!(&e.act, ClientAct::Rest { path, .. } if path.ends_with("/message")))?;
    Some(j[start..].to_vec())
}

#[tokio::test(start_paused = true)]
async fn requests_wait_for_the_connect_and_watches_are_rebound_per_profile() {
    // (profile, REST paths after a reconnect, in order, until the user is idle again)
    let rewatch = ["/channels/messaging/room-a/query", "/channels/messaging/room-b/query"];
    let table: [(Profile, Vec<&str>); 5] = [
        (Profile::Js, vec!["/channels"]),
        (Profile::Android, rewatch.to_vec()),
        (Profile::Swift, [&["/sync"][..], &rewatch[..]].concat()),
        (Profile::Flutter, rewatch.to_vec()),
        (Profile::Unity, vec!["/sync"]),
    ];
    for (profile, after) in table {
        let r = quiet_rig(1).await;
        r.create_channels(1).await;
        // The first frame comes 2 s after the upgrade: a client that does not wait would send
        // its watches before it has a connection id.
        r.mock.control.set_first_frame_delay(Duration::from_secs(2));
        let u = r.spawn(spec(0, profile, TokenMode::Provider));
        wait_for("two watch calls", Duration::from_secs(30), || {
            let rest = r.obs.rest.lock().expect("lock");
            rest.iter().filter(|x| x.1 == RestEndpoint::ChannelQuery).count() >= 2
        })
        .await;
        check_requests_follow_the_connect(&r, profile);
        assert_eq!(r.obs.rest_ok(0, RestEndpoint::ChannelQuery).len(), 2, "{profile:?}");
        drop_user(&r);
        wait_for("reconnected", Duration::from_secs(60), || {
            connected(&r, USER).len() == 2
        })
        .await;
        // Let the recovery run to its end (ten idle seconds).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let rest_after_reconnect = check_requests_follow_the_connect(&r, profile);
        assert_eq!(
            rest_after_reconnect, after,
            "{profile:?} re-binds its watches its own way"
        );
        r.finish(vec![u]).await;
    }
}

/// Asserts every REST call carried the id of a connection whose first frame had already been
/// sent (and that was not closed since); returns the paths called after the first reconnect.
fn check_requests_follow_the_connect(r: &Rig, profile: Profile) -> Vec<String> {
    let j = journal(r, USER);
    let mut live: Option<&str> = None;
    let mut rest_after_reconnect = Vec::new();
    let mut reconnected = false;
    for e in &j {
        match &e.act {
            ClientAct::Connected { connection_id } => {
                reconnected = live.is_some();
                live = Some(connection_id);
            }
            ClientAct::Close(_) | ClientAct::Dropped => live = None,
            ClientAct::Rest {
                path, connection_id, ..
            } => {
                assert_eq!(
                    Some(connection_id.as_str()),
                    live,
                    "{profile:?}: {path} sent outside a resolved connection: {j:?}"
                );
                if reconnected {
                    rest_after_reconnect.push(path.clone());
                }
            }
            _ => {}
        }
    }
    rest_after_reconnect
}

/// U.7 item 6: no close code ends Unity's reconnecting. A static token cut off under a live socket
/// makes every attempt fail with code 40 and close 1000, and the client keeps going: six attempts
/// back to back, then one every 64 s.
#[tokio::test(start_paused = true)]
async fn unity_storms_after_an_auth_failure_six_at_once_then_every_64s() {
    let r = quiet_rig(1).await;
    let u = r.spawn(spec(0, Profile::Unity, TokenMode::Static));
    wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
    let rejected = || r.mock.control.stats().connect_rejected_total;
    let kicked_at = Instant::now();
    r.mock.control.expire_tokens(&ExpireRequest {
        users: vec![USER.into()],
        ..Default::default()
    });
    wait_for("six rejected attempts", Duration::from_secs(10), || rejected() >= 6).await;
    assert!(Instant::now() - kicked_at < Duration::from_secs(1), "back to back");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rejected(), 6, "nothing more for 64 s");
    wait_for("the seventh", Duration::from_secs(10), || rejected() >= 7).await;
    assert!(
        near(Instant::now() - kicked_at, Duration::from_secs(64)),
        "{:?}",
        Instant::now() - kicked_at
    );
    wait_for("the eighth", Duration::from_secs(70), || rejected() >= 8).await;
    assert!(
        near(Instant::now() - kicked_at, Duration::from_secs(128)),
        "{:?}",
        Instant::now() - kicked_at
    );
    assert_eq!(connected(&r, USER).len(), 1);
    r.finish(vec![u]).await;
}

/// U.7 item 2 from the client's side: with its inbound checks unanswered, a Unity user lives on
/// the mock's own pushes alone, which the default interval (25 s) keeps under the 30 s rule; at
/// twice the interval (`health_interval_x2`) the client closes with 1011 at 30 s.
#[tokio::test(start_paused = true)]
async fn the_default_server_push_alone_keeps_a_unity_socket_up() {
    for doubled in [false, true] {
        let r = rig_with(
            |c| c.health_interval = chatstorm_mock::MockConfig::default().health_interval,
            None,
            1,
        )
        .await;
        r.mock.control.record_clients(true);
        r.mock
            .control
            .set_violation(chatstorm_mock::Violation::NoHealthReply, true);
        r.mock
            .control
            .set_violation(chatstorm_mock::Violation::HealthIntervalX2, doubled);
        let u = r.spawn(spec(0, Profile::Unity, TokenMode::Provider));
        wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
        let t0 = connected(&r, USER)[0].0;
        tokio::time::sleep(Duration::from_secs(120)).await;
        let ends: Vec<(Duration, ClientAct)> = journal(&r, USER)
            .into_iter()
            .filter(|e| matches!(e.act, ClientAct::Close(_) | ClientAct::Dropped))
            .map(|e| (e.at - t0, e.act))
            .collect();
        if doubled {
            let (after, how) = ends.first().expect("the socket was closed").clone();
            assert_eq!(how, ClientAct::Close(Some(1011)));
            assert!(near(after, Duration::from_secs(30)), "{after:?}");
        } else {
            assert!(ends.is_empty(), "{ends:?}");
            assert_eq!(connected(&r, USER).len(), 1);
        }
        r.finish(vec![u]).await;
    }
}

/// U.2: Unity bounds the upgrade (3 s) but not the wait for the first `health.check`.
#[tokio::test(start_paused = true)]
async fn unity_waits_for_a_late_first_frame_but_not_for_a_slow_upgrade() {
    let r = quiet_rig(1).await;
    r.mock.control.set_first_frame_delay(Duration::from_secs(10));
    let started = Instant::now();
    let u = r.spawn(spec(0, Profile::Unity, TokenMode::Provider));
    wait_for("connected", Duration::from_secs(30), || connected(&r, USER).len() == 1).await;
    assert!(near(connected(&r, USER)[0].0 - started, Duration::from_secs(10)));
    assert_eq!(r.count(chatstorm::metrics::Counter::ConnectFailures), 0);
    r.finish(vec![u]).await;

    let r = quiet_rig(1).await;
    r.mock.control.set_latency(None, Some(Duration::from_secs(4)));
    let started = Instant::now();
    let u = r.spawn(spec(0, Profile::Unity, TokenMode::Provider));
    let failures = || r.count(chatstorm::metrics::Counter::ConnectFailures);
    wait_for("a failed upgrade", Duration::from_secs(10), || failures() >= 1).await;
    assert!(
        near(Instant::now() - started, Duration::from_secs(3)),
        "{:?}",
        Instant::now() - started
    );
    r.mock.control.set_latency(None, Some(Duration::ZERO));
    wait_for("connected", Duration::from_secs(30), || connected(&r, USER).len() == 1).await;
    r.finish(vec![u]).await;
}
