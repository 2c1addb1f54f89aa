//! Drives the user state machine through every transition with no sockets, on paused time.

use super::*;
use crate::user::profile::params;
use chatstorm_protocol::Profile;

struct T {
    m: Machine,
    now: Instant,
}

fn cfg(profile: Profile, provider: bool, fallback: bool) -> MachineConfig {
    MachineConfig::quiet(profile, provider, fallback, 7)
}

impl T {
    fn new(profile: Profile, provider: bool, fallback: bool) -> Self {
        Self::with(cfg(profile, provider, fallback))
    }
    fn with(c: MachineConfig) -> Self {
        let now = Instant::now();
        Self {
            m: Machine::new(c, now),
            now,
        }
    }
    fn feed(&mut self, i: Input) -> Vec<Command> {
        let mut out = Vec::new();
        self.m.handle(self.now, i, &mut out);
        out
    }
    fn advance(&mut self, d: Duration) -> Vec<Command> {
        self.now += d;
        let mut out = Vec::new();
        self.m.on_timer(self.now, &mut out);
        out
    }
    /// Jumps to the next deadline and fires it; returns the wait and the commands.
    fn next(&mut self) -> (Duration, Vec<Command>) {
        let at = self.m.next_deadline().expect("a deadline");
        let wait = at.saturating_duration_since(self.now);
        (wait, self.advance(wait))
    }
    fn live(&mut self) {
        let out = self.feed(Input::Start);
        assert!(matches!(out[..], [Command::Connect { .. }]), "{out:?}");
        let out = self.feed(Input::Connected);
        assert!(
            out.contains(&Command::Watch) || out.contains(&Command::Recover),
            "{out:?}"
        );
    }
}

const WS_FIRST: Command = Command::Connect {
    transport: Transport::Ws,
    fetch_token: true,
    reconnect: false,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn js_connects_and_sends_health_checks_after_server_ones() {
    let mut t = T::new(Profile::Js, true, false);
    assert_eq!(t.m.state(), State::Disconnected);
    assert_eq!(t.feed(Input::Start), [WS_FIRST]);
    assert_eq!(t.m.state(), State::Connecting);
    t.now += ms(120);
    let out = t.feed(Input::Connected);
    assert_eq!(
        out,
        [
            Command::Measure(Measure::Connect(Transport::Ws, ms(120))),
            Command::Watch
        ]
    );
    assert_eq!(t.m.state(), State::Live);
    // A server health check at 10 s re-arms the client one to 25 s later.
    t.now += Duration::from_secs(10);
    t.feed(Input::Frame { health: true });
    let (wait, out) = t.next();
    assert_eq!((wait, out), (Duration::from_secs(25), vec![Command::SendHealth]));
    // Nothing more until the 35 s silence rule (counted from the last frame).
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::from_secs(10));
    assert_eq!(out, [Command::Abort, Command::Measure(Measure::Disconnect)]);
    assert_eq!(t.m.state(), State::Backoff);
}

#[tokio::test(start_paused = true)]
async fn reconnect_after_server_close_1011_within_backoff_bounds_then_recover() {
    for seed in 0..20 {
        let mut c = cfg(Profile::Js, true, false);
        c.seed = seed;
        let mut t = T::with(c);
        t.live();
        t.now += Duration::from_secs(1);
        let out = t.feed(Input::Closed(Some(1011)));
        assert_eq!(out, [Command::Measure(Measure::Disconnect)]);
        assert_eq!(t.m.state(), State::Backoff);
        let (wait, out) = t.next();
        // One failure (the close): [250, 2500) ms.
        assert!(wait >= ms(250) && wait < ms(2500), "seed {seed}: {wait:?}");
        assert_eq!(
            out,
            [
                Command::Measure(Measure::ReconnectAttempt),
                Command::Connect {
                    transport: Transport::Ws,
                    fetch_token: false,
                    reconnect: true
                }
            ]
        );
        t.now += ms(10);
        let out = t.feed(Input::Connected);
        assert_eq!(out[1], Command::Measure(Measure::Reconnect(wait + ms(10))));
        assert_eq!(out.last(), Some(&Command::Recover));
        assert_eq!(t.m.failures(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_grow_the_backoff() {
    let mut t = T::new(Profile::Android, true, false);
    t.feed(Input::Start);
    for n in 1..=5u32 {
        let out = t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
        assert_eq!(
            out,
            [Command::Measure(Measure::ConnectFailure(Some(FailureKind::Reset)))]
        );
        let (wait, out) = t.next();
        let (lo, hi) = params(Profile::Android).retry_bounds_ms(n);
        assert!(wait >= ms(lo) && wait < ms(hi), "n={n} {wait:?}");
        assert!(matches!(out[..], [Command::Connect { .. }]), "{out:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_fixed_backoff_replaces_every_profiles_formula() {
    for profile in [
        Profile::Js,
        Profile::Android,
        Profile::Swift,
        Profile::Flutter,
        Profile::Unity,
    ] {
        let mut t = T::with(MachineConfig {
            fixed_backoff: Some(ms(250)),
            ..cfg(profile, true, false)
        });
        t.feed(Input::Start);
        for _ in 1..=8u32 {
            t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
            let (wait, out) = t.next();
            assert_eq!(wait, ms(250), "{profile:?}");
            assert!(matches!(out[..], [Command::Connect { .. }]), "{out:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_aborts_and_backs_off() {
    let mut t = T::new(Profile::Flutter, true, false);
    t.feed(Input::Start);
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::from_secs(15));
    assert_eq!(
        out,
        [
            Command::Abort,
            Command::Measure(Measure::ConnectFailure(Some(FailureKind::Timeout)))
        ]
    );
    assert_eq!(t.m.state(), State::Backoff);
}

#[tokio::test(start_paused = true)]
async fn code_40_with_provider_refreshes_and_measures() {
    let mut t = T::new(Profile::Js, true, false);
    t.live();
    t.now += Duration::from_secs(3);
    // Server-side expiry: error frame 40 (then a 1000 close, which no longer matters).
    let out = t.feed(Input::ErrorFrame(40));
    assert_eq!(out, [Command::Abort, Command::Measure(Measure::Disconnect)]);
    assert_eq!(t.feed(Input::Closed(Some(1000))), []);
    let (wait, out) = t.next();
    assert!(matches!(
        out[..],
        [
            Command::Measure(Measure::ReconnectAttempt),
            Command::Connect {
                fetch_token: true,
                reconnect: true,
                ..
            }
        ]
    ));
    t.now += ms(5);
    let out = t.feed(Input::Connected);
    assert!(
        out.contains(&Command::Measure(Measure::TokenRefresh(wait + ms(5)))),
        "{out:?}"
    );
    // A 40 on the connect itself also refreshes.
    t.feed(Input::Closed(Some(1011)));
    t.next();
    let out = t.feed(Input::ConnectFailed(Failure::Api {
        code: 40,
        close: Some(1000),
    }));
    assert_eq!(out, [Command::Measure(Measure::ConnectFailure(None))]);
    let (_, out) = t.next();
    assert!(matches!(out[1], Command::Connect { fetch_token: true, .. }), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn code_40_with_a_static_token_is_fatal() {
    let mut t = T::new(Profile::Js, false, false);
    assert!(matches!(
        t.feed(Input::Start)[..],
        [Command::Connect { fetch_token: false, .. }]
    ));
    let out = t.feed(Input::ConnectFailed(Failure::Api {
        code: 40,
        close: Some(1000),
    }));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::StaticTokenExpired)));
    assert_eq!(t.m.state(), State::Stopped);
    assert_eq!(t.m.next_deadline(), None);
    assert_eq!(t.feed(Input::Start), [], "stopped is terminal");
    // While live: the error frame stops it too.
    let mut t = T::new(Profile::Flutter, false, false);
    t.live();
    let out = t.feed(Input::ErrorFrame(40));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::StaticTokenExpired)));
}

#[tokio::test(start_paused = true)]
async fn refresh_codes_differ_by_profile() {
    // Android refreshes on 5 and 41–43; JS gives up on them on the first connect.
    let mut a = T::new(Profile::Android, true, false);
    a.feed(Input::Start);
    a.feed(Input::ConnectFailed(Failure::Api {
        code: 43,
        close: Some(1000),
    }));
    assert_eq!(a.m.state(), State::Backoff);
    assert!(matches!(a.next().1[..], [Command::Connect { fetch_token: true, .. }]));
    let mut j = T::new(Profile::Js, true, false);
    j.feed(Input::Start);
    let out = j.feed(Input::ConnectFailed(Failure::Api {
        code: 43,
        close: Some(1000),
    }));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::ApiError(43))));
    // Android: 4 is unrecoverable, 17 is retried.
    let mut a = T::new(Profile::Android, true, false);
    a.feed(Input::Start);
    a.feed(Input::ConnectFailed(Failure::Api { code: 17, close: None }));
    assert_eq!(a.m.state(), State::Backoff);
    a.next();
    let out = a.feed(Input::ConnectFailed(Failure::Api { code: 4, close: None }));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::ApiError(4))));
    // Swift: 5xx retried, 4xx not.
    let mut s = T::new(Profile::Swift, true, false);
    s.feed(Input::Start);
    s.feed(Input::ConnectFailed(Failure::Api { code: -1, close: None }));
    assert_eq!(s.m.state(), State::Backoff);
    s.next();
    s.feed(Input::ConnectFailed(Failure::Api { code: 17, close: None }));
    assert_eq!(s.m.stop_reason(), Some(StopReason::ApiError(17)));
    // Android reloads the token before every reconnect.
    let mut a = T::new(Profile::Android, true, false);
    a.live();
    a.feed(Input::Closed(Some(1011)));
    assert!(matches!(a.next().1[1], Command::Connect { fetch_token: true, .. }));
}

#[tokio::test(start_paused = true)]
async fn server_1000_is_final_for_js_and_swift_only() {
    for (profile, final_) in [(Profile::Js, true), (Profile::Swift, true), (Profile::Flutter, false)] {
        let mut t = T::new(profile, true, false);
        t.live();
        assert_eq!(t.feed(Input::ErrorFrame(17)), []);
        let out = t.feed(Input::Closed(Some(1000)));
        assert_eq!(
            out.last() == Some(&Command::Stopped(StopReason::ServerClosedNormally)),
            final_,
            "{profile}: {out:?}"
        );
    }
    // During a JS reconnect, error frame + 1000 also ends it; error + 1011 is retried.
    let mut t = T::new(Profile::Js, true, false);
    t.live();
    t.feed(Input::Closed(None));
    t.next();
    t.feed(Input::ConnectFailed(Failure::Api {
        code: 17,
        close: Some(1011),
    }));
    assert_eq!(t.m.state(), State::Backoff);
    t.next();
    let out = t.feed(Input::ConnectFailed(Failure::Api {
        code: 17,
        close: Some(1000),
    }));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::ServerClosedNormally)));
}

#[tokio::test(start_paused = true)]
async fn android_goes_quiet_after_1000_until_its_health_monitor_fires() {
    let mut t = T::new(Profile::Android, true, false);
    t.live();
    t.now += Duration::from_secs(5);
    t.feed(Input::Frame { health: true });
    t.now += Duration::from_secs(1);
    t.feed(Input::Closed(Some(1000)));
    assert_eq!(t.m.state(), State::Backoff);
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::from_secs(29));
    assert!(matches!(out[1], Command::Connect { reconnect: true, .. }));
}

#[tokio::test(start_paused = true)]
async fn flutter_gives_up_after_six_reconnects() {
    let mut t = T::new(Profile::Flutter, true, false);
    t.live();
    t.feed(Input::Closed(Some(1011)));
    for _ in 0..6 {
        let (_, out) = t.next();
        assert!(matches!(out[1], Command::Connect { .. }), "{out:?}");
        t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
    }
    let (_, out) = t.next();
    assert_eq!(out, [Command::Stopped(StopReason::GaveUp)]);
}

#[tokio::test(start_paused = true)]
async fn health_rules_of_android_flutter_swift_unity() {
    // Flutter sends at once, then every 20 s; dies after 40 s of silence.
    let mut f = T::new(Profile::Flutter, true, false);
    f.live();
    assert_eq!(f.next(), (Duration::ZERO, vec![Command::SendHealth]));
    assert_eq!(f.next(), (Duration::from_secs(20), vec![Command::SendHealth]));
    f.feed(Input::Frame { health: false });
    assert_eq!(f.next(), (Duration::from_secs(20), vec![Command::SendHealth]));
    let (wait, out) = f.next();
    assert_eq!((wait, out[0]), (Duration::from_secs(20), Command::Abort));
    // Android: any frame that is not a health check does not count.
    let mut a = T::new(Profile::Android, true, false);
    a.live();
    for _ in 0..2 {
        assert_eq!(a.next(), (Duration::from_secs(11), vec![Command::SendHealth]));
        a.feed(Input::Frame { health: false });
    }
    let (wait, out) = a.next();
    assert_eq!((wait, out[0]), (Duration::from_secs(8), Command::Abort));
    // Swift: ping every 25 s, dead 3 s after an unanswered one.
    let mut s = T::new(Profile::Swift, true, false);
    s.live();
    assert_eq!(s.next(), (Duration::from_secs(25), vec![Command::SendHealth]));
    s.now += Duration::from_secs(1);
    s.feed(Input::Frame { health: true });
    assert_eq!(s.next(), (Duration::from_secs(24), vec![Command::SendHealth]));
    let (wait, out) = s.next();
    assert_eq!((wait, out[0]), (Duration::from_secs(3), Command::Abort));
    // Swift's first retry after a drop is immediate.
    assert_eq!(s.next().0, Duration::ZERO);
    // Unity: the first connect and five immediate retries (six back-to-back attempts), then 64 s.
    let mut u = T::new(Profile::Unity, true, false);
    u.feed(Input::Start);
    let mut waits = Vec::new();
    for _ in 0..7 {
        u.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
        let (wait, out) = u.next();
        assert!(
            matches!(out[..], [Command::Connect { fetch_token: true, .. }]),
            "{out:?}"
        );
        waits.push(wait.as_secs());
    }
    assert_eq!(waits, [0, 0, 0, 0, 0, 64, 64]);
}

#[tokio::test(start_paused = true)]
async fn js_falls_back_to_longpoll_after_six_seconds_of_network_failures() {
    let mut t = T::new(Profile::Js, true, true);
    t.feed(Input::Start);
    let mut fell = Vec::new();
    while fell.is_empty() {
        t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
        let (_, out) = t.next();
        if out.contains(&Command::Measure(Measure::Fallback)) {
            fell = out;
        }
    }
    assert!(t.now - Instant::now() >= Duration::ZERO);
    assert_eq!(
        fell.last(),
        Some(&Command::Connect {
            transport: Transport::LongPoll,
            fetch_token: false,
            reconnect: false
        })
    );
    assert_eq!(t.m.transport(), Transport::LongPoll);
    let out = t.feed(Input::Connected);
    assert_eq!(t.m.state(), State::LongPoll);
    assert!(out.contains(&Command::Poll) && out.contains(&Command::Watch), "{out:?}");
    assert_eq!(t.feed(Input::PollOk), [Command::Poll]);
    // A network failure retries the poll after the back-off.
    assert_eq!(t.feed(Input::PollFailed(None)), []);
    let (wait, out) = t.next();
    assert!(wait >= ms(250) && wait < ms(2500));
    assert_eq!(out, [Command::Poll]);
    // Code 46: connect again over long-poll (never back to WebSocket), then recover.
    let out = t.feed(Input::PollFailed(Some(46)));
    assert!(
        matches!(
            out.last(),
            Some(Command::Connect {
                transport: Transport::LongPoll,
                reconnect: true,
                ..
            })
        ),
        "{out:?}"
    );
    let out = t.feed(Input::Connected);
    assert!(out.contains(&Command::Recover));
    // A poll answered 40 and refreshed by the HTTP client: the refresh is measured from the 40
    // to the next answered poll (or to the reconnect that a 46 then asks for).
    let asked = t.now;
    t.now += ms(40);
    t.feed(Input::PollTokenRefreshed(asked));
    assert_eq!(
        t.feed(Input::PollOk),
        [Command::Measure(Measure::TokenRefresh(ms(40))), Command::Poll]
    );
    t.feed(Input::PollTokenRefreshed(t.now));
    t.feed(Input::PollFailed(Some(46)));
    t.now += ms(7);
    let out = t.feed(Input::Connected);
    assert!(out.contains(&Command::Measure(Measure::TokenRefresh(ms(7)))), "{out:?}");
    // A non-retryable error stops it.
    let out = t.feed(Input::PollFailed(Some(17)));
    assert_eq!(out.last(), Some(&Command::Stopped(StopReason::ApiError(17))));
}

#[tokio::test(start_paused = true)]
async fn fallback_never_follows_an_api_error_nor_a_success() {
    let mut t = T::new(Profile::Js, true, true);
    t.feed(Input::Start);
    t.feed(Input::ConnectFailed(Failure::Api {
        code: 40,
        close: Some(1000),
    }));
    for _ in 0..6 {
        let (_, out) = t.next();
        assert!(!out.contains(&Command::Measure(Measure::Fallback)));
        if let Some(Command::Connect { .. }) = out.last() {
            t.feed(Input::ConnectFailed(Failure::Network(FailureKind::Reset)));
        }
    }
    assert_eq!(t.m.transport(), Transport::Ws);
    let mut t = T::new(Profile::Android, true, true);
    t.feed(Input::Start);
    t.next();
    assert_eq!(t.m.transport(), Transport::Ws, "only JS falls back");
}

#[tokio::test(start_paused = true)]
async fn timeline_actions() {
    // Abrupt drop and a clean one: both reconnect.
    let mut t = T::new(Profile::Js, true, false);
    t.live();
    let out = t.feed(Input::Action(Act::DropSocket { abrupt: true, code: 0 }));
    assert_eq!(out[0], Command::Abort);
    assert_eq!(t.m.state(), State::Backoff);
    t.next();
    t.feed(Input::Connected);
    let out = t.feed(Input::Action(Act::DropSocket {
        abrupt: false,
        code: 4000,
    }));
    assert_eq!(out[0], Command::Close(4000));
    // Refused WebSocket: attempts fail at once until the window ends.
    let mut t = T::new(Profile::Js, true, false);
    t.live();
    t.feed(Input::Action(Act::RefuseWebsocket(Duration::from_secs(10))));
    assert_eq!(t.m.state(), State::Backoff);
    let mut connected = false;
    for _ in 0..10 {
        let (_, out) = t.next();
        if out.iter().any(|c| matches!(c, Command::Connect { .. })) {
            assert!(t.now - Instant::now() >= Duration::ZERO);
            connected = true;
            break;
        }
        assert!(
            out.contains(&Command::Measure(Measure::ConnectFailure(Some(FailureKind::Local)))),
            "{out:?}"
        );
    }
    assert!(connected);
    // Expire: close and reconnect at once with the same (expired) token.
    let mut t = T::new(Profile::Js, true, false);
    t.live();
    let out = t.feed(Input::Action(Act::ExpireToken));
    assert_eq!(out[0], Command::Close(1000));
    assert!(matches!(
        out.last(),
        Some(Command::Connect {
            fetch_token: false,
            reconnect: true,
            ..
        })
    ));
    // Background: close, wait, connect again.
    t.feed(Input::Connected);
    let out = t.feed(Input::Action(Act::Background(Duration::from_secs(30))));
    assert_eq!(out[0], Command::Close(1000));
    assert_eq!(t.m.state(), State::Disconnected);
    let (wait, out) = t.next();
    assert_eq!(wait, Duration::from_secs(30));
    assert!(matches!(
        out[..],
        [Command::Measure(Measure::ReconnectAttempt), Command::Connect { .. }]
    ));
    // Stop from any state.
    let out = t.feed(Input::Action(Act::Stop));
    assert_eq!(out, [Command::Abort, Command::Stopped(StopReason::Requested)]);
}

#[tokio::test(start_paused = true)]
async fn behaviours_fire_at_seeded_times_and_follow_the_typing_rules() {
    let schedule = |seed: u64| {
        let mut c = cfg(Profile::Js, true, false);
        c.seed = seed;
        c.typing_every = Some(Duration::from_secs(10));
        c.read_every = Some(Duration::from_secs(20));
        c.message_every = Some(Duration::from_secs(40));
        let mut t = T::with(c);
        t.live();
        let mut fired = Vec::new();
        while fired.len() < 40 {
            let (wait, out) = t.next();
            for c in out {
                if let Command::Behave(b) = c {
                    fired.push((wait, b));
                }
                if c == Command::SendHealth {
                    t.feed(Input::Frame { health: true });
                }
            }
        }
        (fired, t)
    };
    let (a, mut t) = schedule(1);
    assert_eq!(a, schedule(1).0, "one seed, one schedule");
    assert_ne!(a, schedule(2).0);
    let typing = a.iter().filter(|(_, b)| *b == Behaviour::Typing).count();
    let messages = a.iter().filter(|(_, b)| *b == Behaviour::Message).count();
    assert!(typing > messages, "typing {typing} messages {messages}");
    // JS does not send typing with its own typing indicators off.
    t.feed(Input::OwnTypingEnabled(false));
    for _ in 0..30 {
        let (_, out) = t.next();
        assert!(!out.contains(&Command::Behave(Behaviour::Typing)));
        if out.contains(&Command::SendHealth) {
            t.feed(Input::Frame { health: true });
        }
    }
}

#[path = "machine_tests_unity.rs"]
mod unity;

#[test]
fn a_failure_with_its_cause_stays_as_small_as_an_api_error() {
    // It travels in every connect result inside every user's future.
    assert!(std::mem::size_of::<FailureKind>() <= 4);
    assert!(
        std::mem::size_of::<Failure>() <= 12,
        "{}",
        std::mem::size_of::<Failure>()
    );
}
