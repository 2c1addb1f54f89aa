//! Each SDK profile against the in-process mock over real loopback sockets, on paused time: the
//! health-check form and cadence, the dead-connection rule, the token-refresh trigger and the
//! back-off, each read from the mock's client journal (what the server saw, when).
//!
//! Paused time and real sockets: client, mock and test share one current-thread runtime, so every
//! loopback write is readable by its peer before the runtime is idle again, and time only jumps
//! to the next timer once nothing is in flight.

use crate::common::*;
use chatstorm::metrics::Counter;
use chatstorm::user::profile::params;
use chatstorm::user::{StopReason, TokenMode};
use chatstorm_mock::{ClientAct, DropRequest, ExpireRequest, JournalEntry, RefuseMode, Violation};
use chatstorm_protocol::Profile;
use std::time::Duration;
use tokio::time::Instant;

pub const USER: &str = "user-0";
/// Virtual-time slack for one loopback exchange.
pub const SLACK: Duration = Duration::from_millis(100);

/// A mock whose own health pushes never come (one hour), with the client journal on.
pub async fn quiet_rig(users: usize) -> Rig {
    let r = rig_with(|c| c.health_interval = Duration::from_secs(3600), None, users).await;
    r.mock.control.record_clients(true);
    r
}

pub fn journal(r: &Rig, user: &str) -> Vec<JournalEntry> {
    r.mock
        .control
        .journal()
        .into_iter()
        .filter(|e| e.user == user)
        .collect()
}

pub fn connected(r: &Rig, user: &str) -> Vec<(Instant, String)> {
    journal(r, user)
        .into_iter()
        .filter_map(|e| match e.act {
            ClientAct::Connected { connection_id } => Some((e.at, connection_id)),
            _ => None,
        })
        .collect()
}

pub fn refused(r: &Rig) -> Vec<Instant> {
    r.mock
        .control
        .journal()
        .into_iter()
        .filter(|e| e.act == ClientAct::UpgradeRefused)
        .map(|e| e.at)
        .collect()
}

/// Polls `cond` every 50 ms of (virtual) time, failing after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn near(got: Duration, want: Duration) -> bool {
    got + SLACK >= want && got <= want + SLACK
}

pub fn token_fetches(r: &Rig) -> u64 {
    r.count(Counter::TokenFetches)
}

#[tokio::test(start_paused = true)]
async fn each_profile_sends_its_health_check_in_its_form_at_its_cadence() {
    // (profile, form, first check after the connect, then every)
    let table = [
        (
            Profile::Js,
            ClientAct::HealthCheck {
                pascal_case: false,
                array: true,
            },
            25,
            25,
        ),
        (
            Profile::Android,
            ClientAct::HealthCheck {
                pascal_case: false,
                array: false,
            },
            11,
            11,
        ),
        (Profile::Swift, ClientAct::Ping, 25, 25),
        (
            Profile::Flutter,
            ClientAct::HealthCheck {
                pascal_case: false,
                array: false,
            },
            0,
            20,
        ),
        (
            Profile::Unity,
            ClientAct::HealthCheck {
                pascal_case: true,
                array: false,
            },
            29,
            29,
        ),
    ];
    for (profile, form, first, every) in table {
        let r = quiet_rig(1).await;
        let u = r.spawn(spec(0, profile, TokenMode::Provider));
        let checks = |r: &Rig| -> Vec<JournalEntry> {
            journal(r, USER)
                .into_iter()
                .filter(|e| matches!(e.act, ClientAct::HealthCheck { .. } | ClientAct::Ping))
                .collect()
        };
        wait_for("four client health checks", Duration::from_secs(200), || {
            checks(&r).len() >= 4
        })
        .await;
        let conns = connected(&r, USER);
        assert_eq!(conns.len(), 1, "{profile:?}: answered checks keep the socket up");
        let checks = checks(&r);
        assert!(checks.iter().all(|c| c.act == form), "{profile:?}: {checks:?}");
        let mut at = conns[0].0;
        for (i, c) in checks.iter().enumerate() {
            let want = Duration::from_secs(if i == 0 { first } else { every });
            assert!(
                near(c.at - at, want),
                "{profile:?}: check {i} after {:?}, want {want:?}",
                c.at - at
            );
            at = c.at;
        }
        r.finish(vec![u]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_profile_declares_a_silent_socket_dead_by_its_own_rule() {
    // (profile, seconds from the connect to the client giving up, how the socket goes)
    let table = [
        (Profile::Js, 35, ClientAct::Dropped),
        (Profile::Android, 30, ClientAct::Dropped),
        (Profile::Swift, 28, ClientAct::Dropped),
        (Profile::Flutter, 40, ClientAct::Dropped),
        (Profile::Unity, 30, ClientAct::Close(Some(1011))),
    ];
    for (profile, secs, how) in table {
        let r = quiet_rig(1).await;
        r.mock.control.set_violation(Violation::NoHealthReply, true);
        r.mock.control.set_violation(Violation::NoPingReply, true);
        let u = r.spawn(spec(0, profile, TokenMode::Provider));
        wait_for("a reconnect after the dead rule", Duration::from_secs(120), || {
            connected(&r, USER).len() >= 2
        })
        .await;
        let t0 = connected(&r, USER)[0].0;
        let end = journal(&r, USER)
            .into_iter()
            .find(|e| matches!(e.act, ClientAct::Close(_) | ClientAct::Dropped))
            .expect("the first socket ended");
        assert_eq!(end.act, how, "{profile:?}");
        let after = end.at - t0;
        assert!(
            near(after, Duration::from_secs(secs)),
            "{profile:?}: gave up after {after:?}, want {secs} s"
        );
        r.finish(vec![u]).await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_profile_refreshes_its_token_on_its_own_codes() {
    // A live socket gets an error frame then close 1000: code 40, then 43 (`wrong_expired_code`).
    // (profile, after 40: token fetches, after 43: token fetches and whether it reconnects)
    let table = [
        (Profile::Js, 2, 1, false),
        (Profile::Android, 2, 2, true),
        (Profile::Swift, 2, 1, false),
        (Profile::Flutter, 2, 1, true),
        (Profile::Unity, 2, 2, true),
    ];
    for (profile, after_40, after_43, reconnects_43) in table {
        for (code, fetches, reconnects) in [(40, after_40, true), (43, after_43, reconnects_43)] {
            let r = quiet_rig(1).await;
            r.mock.control.set_violation(Violation::WrongExpiredCode, code == 43);
            let u = r.spawn(spec(0, profile, TokenMode::Provider));
            wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
            assert_eq!(token_fetches(&r), 1);
            let kicked = r.mock.control.expire_tokens(&ExpireRequest {
                users: vec![USER.into()],
                keep_tokens: true,
                ..Default::default()
            });
            assert_eq!(kicked, 1);
            if reconnects {
                wait_for("reconnected", Duration::from_secs(30), || {
                    connected(&r, USER).len() == 2
                })
                .await;
                assert_eq!(token_fetches(&r), fetches, "{profile:?} after code {code}");
                r.finish(vec![u]).await;
            } else {
                let rep = tokio::time::timeout(Duration::from_secs(60), u)
                    .await
                    .expect("the user stops on its own")
                    .expect("no panic");
                assert_eq!(rep.stop_reason, Some(StopReason::ServerClosedNormally), "{profile:?}");
                assert_eq!(token_fetches(&r), fetches, "{profile:?} after code {code}");
                assert_eq!(connected(&r, USER).len(), 1);
                r.finish(vec![]).await;
            }
        }
    }
}

/// The `[min, max]` wait before attempt `k` (1-based) after a drop, in ms, per the profile's rule.
fn bounds(profile: Profile, k: u32) -> (u64, u64) {
    let p = params(profile);
    match profile {
        // The drop counts as the first failure (§3.4 `retryInterval(n)`, n = 1 first).
        Profile::Js | Profile::Android | Profile::Flutter => p.retry_bounds_ms(k),
        // Swift waits 0 s first; Unity counts failed attempts since the drop.
        Profile::Swift | Profile::Unity => p.retry_bounds_ms(k - 1),
    }
}

#[tokio::test(start_paused = true)]
async fn each_profile_backs_off_within_its_bounds_while_upgrades_are_refused() {
    for profile in Profile::ALL {
        let r = quiet_rig(1).await;
        let u = r.spawn(spec(0, profile, TokenMode::Provider));
        wait_for("connected", Duration::from_secs(10), || connected(&r, USER).len() == 1).await;
        r.mock
            .control
            .refuse_upgrades(Duration::from_secs(3600), RefuseMode::Close);
        let dropped_at = Instant::now();
        r.mock.control.drop_connections(&DropRequest {
            users: Some(vec![USER.into()]),
            code: Some(1011),
            ..Default::default()
        });
        let n = if profile == Profile::Unity { 8 } else { 5 };
        wait_for("refused attempts", Duration::from_secs(300), || refused(&r).len() >= n).await;
        let attempts = refused(&r);
        let mut prev = dropped_at;
        for (i, at) in attempts.iter().take(n).enumerate() {
            let k = i as u32 + 1;
            let (min, max) = bounds(profile, k);
            let gap = *at - prev;
            assert!(
                gap + Duration::from_millis(5) >= Duration::from_millis(min)
                    && gap <= Duration::from_millis(max) + SLACK,
                "{profile:?}: attempt {k} came {gap:?} after the previous one, want {min}..={max} ms"
            );
            prev = *at;
        }
        r.mock.control.refuse_upgrades(Duration::ZERO, RefuseMode::Close);
        wait_for("back once upgrades are accepted", Duration::from_secs(120), || {
            connected(&r, USER).len() == 2
        })
        .await;
        r.finish(vec![u]).await;
    }
}

/// A user leaving by the scenario's plan (its own token: a ramp down, a session's end) closes
/// with 1000 as its SDK's disconnect does; at the run's end (`UserCtx::run_over`) it lets go of
/// the socket without a close frame, and the server sees the connection dropped.
#[tokio::test(start_paused = true)]
async fn a_planned_leave_closes_with_1000_and_the_run_end_drops_the_socket() {
    let r = quiet_rig(2).await;
    let leaving = tokio_util::sync::CancellationToken::new();
    let planned = tokio::spawn(chatstorm::user::run_user(
        spec(0, Profile::Js, TokenMode::Provider),
        r.ctx.clone(),
        r.actions.subscribe(),
        leaving.clone(),
    ));
    let at_run_end = r.spawn(spec(1, Profile::Js, TokenMode::Provider));
    wait_for("both connected", Duration::from_secs(10), || {
        connected(&r, "user-0").len() == 1 && connected(&r, "user-1").len() == 1
    })
    .await;
    let ends = |user: &str| -> Vec<ClientAct> {
        journal(&r, user)
            .into_iter()
            .filter(|e| matches!(e.act, ClientAct::Close(_) | ClientAct::Dropped))
            .map(|e| e.act)
            .collect()
    };
    leaving.cancel();
    planned.await.expect("no panic");
    wait_for("the planned close", Duration::from_secs(5), || {
        !ends("user-0").is_empty()
    })
    .await;
    assert_eq!(ends("user-0"), [ClientAct::Close(Some(1000))]);
    r.ctx.run_over.cancel();
    r.cancel.cancel();
    at_run_end.await.expect("no panic");
    wait_for("the end seen by the server", Duration::from_secs(5), || {
        !ends("user-1").is_empty()
    })
    .await;
    assert_eq!(ends("user-1"), [ClientAct::Dropped]);
    r.finish(Vec::new()).await;
}
