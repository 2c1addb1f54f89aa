//! The Unity profile on the sans-IO machine with paused time: the 29 s health check, the 30 s dead
//! rule with close 1011, the reconnect strategies (the storm pattern of six back-to-back attempts
//! then 64 s; constant; never), the provider on every reconnect, the HTTP code-40 reconnect, no
//! long-poll.

use super::*;
use chatstorm_protocol::backoff::{UnityReconnect, UnityStrategy};

fn unity(strategy: UnityStrategy, interval: Duration) -> T {
    let mut c = cfg(Profile::Unity, true, false);
    c.unity = UnityReconnect { strategy, interval };
    T::with(c)
}

/// Fails every attempt and returns the waits before each of the next `n` attempts.
fn failing_waits(t: &mut T, n: usize) -> Vec<u64> {
    let mut waits = Vec::new();
    for _ in 0..n {
        let (wait, out) = t.next();
        assert!(
            out.iter().any(|c| matches!(
                c,
                Command::Connect {
                    fetch_token: true,
                    reconnect: true,
                    ..
                }
            )),
            "every Unity reconnect asks the provider: {out:?}"
        );
        waits.push(wait.as_secs());
        t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
    }
    waits
}

#[tokio::test(start_paused = true)]
async fn unity_health_every_29s_and_close_1011_after_30s_without_one() {
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    assert_eq!(t.next(), (Duration::from_secs(29), vec![Command::SendHealth]));
    // Other events do not keep a Unity socket alive.
    t.feed(Input::Frame { health: false });
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::from_secs(1));
    assert_eq!(out, [Command::Close(1011), Command::Measure(Measure::Disconnect)]);
    // An answered check keeps it alive: the answer at 29 s moves the rule to 59 s.
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    t.next();
    t.feed(Input::Frame { health: true });
    assert_eq!(t.next(), (Duration::from_secs(29), vec![Command::SendHealth]));
    assert_eq!(t.next().0, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn unity_storm_six_back_to_back_attempts_then_64s_forever() {
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    // A server close with 1000 is not final for Unity (U.5).
    let out = t.feed(Input::Closed(Some(1000)));
    assert_eq!(out, [Command::Measure(Measure::Disconnect)]);
    assert_eq!(failing_waits(&mut t, 9), [0, 0, 0, 0, 0, 0, 64, 64, 64]);
    // Back live: the count starts again.
    t.next();
    t.feed(Input::Connected);
    t.feed(Input::Closed(None));
    assert_eq!(failing_waits(&mut t, 7), [0, 0, 0, 0, 0, 0, 64]);
}

#[tokio::test(start_paused = true)]
async fn unity_constant_and_never_strategies() {
    let mut t = unity(UnityStrategy::Constant, Duration::from_secs(5));
    t.live();
    t.feed(Input::Closed(Some(1011)));
    assert_eq!(failing_waits(&mut t, 8), [0, 0, 0, 0, 0, 0, 5, 5]);

    let mut t = unity(UnityStrategy::Never, Duration::from_secs(1));
    t.live();
    let out = t.feed(Input::Closed(Some(1011)));
    assert_eq!(
        out,
        [
            Command::Measure(Measure::Disconnect),
            Command::Stopped(StopReason::GaveUp)
        ]
    );
    // A first connect that fails is not retried either.
    let mut t = unity(UnityStrategy::Never, Duration::from_secs(1));
    t.feed(Input::Start);
    let out = t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
    assert_eq!(
        out,
        [
            Command::Measure(Measure::ConnectFailure(Some(FailureKind::Reset))),
            Command::Stopped(StopReason::GaveUp)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn unity_ws_auth_errors_are_only_logged_and_the_close_reconnects_with_a_new_token() {
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    for code in [40, 41, 42, 43, 5] {
        assert_eq!(t.feed(Input::ErrorFrame(code)), []);
    }
    t.feed(Input::Closed(Some(1000)));
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::ZERO);
    assert_eq!(
        out,
        [
            Command::Measure(Measure::ReconnectAttempt),
            Command::Connect {
                transport: Transport::Ws,
                fetch_token: true,
                reconnect: true
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn unity_http_code_40_closes_1000_reconnects_at_once_with_a_new_token() {
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    t.now += Duration::from_secs(3);
    let out = t.feed(Input::RestTokenExpired);
    assert_eq!(out, [Command::Close(1000), Command::Measure(Measure::Disconnect)]);
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::ZERO);
    assert!(
        matches!(
            out[..],
            [
                _,
                Command::Connect {
                    fetch_token: true,
                    reconnect: true,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    t.now += ms(40);
    let out = t.feed(Input::Connected);
    assert_eq!(
        out,
        [
            Command::Measure(Measure::Connect(Transport::Ws, ms(40))),
            Command::Measure(Measure::Reconnect(ms(40))),
            Command::Measure(Measure::TokenRefresh(ms(40))),
            Command::Recover
        ]
    );
    // Not live (already reconnecting): nothing to close, nothing scheduled twice.
    let mut t = unity(UnityStrategy::Exponential, Duration::from_secs(1));
    t.live();
    t.feed(Input::Closed(None));
    assert_eq!(t.feed(Input::RestTokenExpired), []);
}

#[tokio::test(start_paused = true)]
async fn unity_never_falls_back_to_longpoll() {
    let mut c = cfg(Profile::Unity, true, true);
    c.unity = UnityReconnect::default();
    let mut t = T::with(c);
    t.feed(Input::Start);
    for _ in 0..10 {
        t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
        let (_, out) = t.next();
        assert!(!out.contains(&Command::Measure(Measure::Fallback)), "{out:?}");
    }
    assert_eq!(t.m.transport(), Transport::Ws);
    assert!(
        t.now - Instant::now() >= Duration::from_secs(64),
        "past the JS 6 s window"
    );
}
