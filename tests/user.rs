//! Simulated users against the in-process mock server over real loopback sockets: connect and
//! first health check per profile, token refresh after code 40 (provider) and fatal 40 (static),
//! reconnect after a server close 1011 within the back-off bounds with a new connection id and
//! re-watched channels, no reconnect after a server 1000, long-poll fallback when upgrades are
//! refused (events received over long-poll), privacy toggles via `PATCH /users`, and a token
//! endpoint (wiremock) that is slow or failing.

use chatstorm::metrics::{Collector, Counter, Gauge, MetricsSnapshot, Recorder, RestEndpoint};
use chatstorm::target::{Target, TargetAuth};
use chatstorm::user::{
    Behaviour, DeliveryTracker, Leak, SourceAddrs, State, StopReason, TokenMode, TokenSpec, Transport, UserAction,
    UserCtx, UserObserver, UserReport, UserSpec, http, run_user,
};
use chatstorm_mock::{DropMode, DropRequest, ExpireRequest, MockConfig, MockHandle, RefuseMode};
use chatstorm_protocol::event::ServerEvent;
use chatstorm_protocol::{PrivacySettings, Profile};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const KEY: &str = "user_test_key";
const SECRET: &str = "user_test_secret";
/// Generous: two loaded cores.
const WAIT: Duration = Duration::from_secs(20);

type RestLog = Vec<(u32, RestEndpoint, Option<u16>, Instant)>;
type EventLog = Vec<(u32, String, Option<String>, Instant)>;

#[derive(Default)]
struct Obs {
    connected: Mutex<Vec<(u32, Transport, String)>>,
    rest: Mutex<RestLog>,
    events: Mutex<EventLog>,
    leaks: Mutex<Vec<Leak>>,
}

impl UserObserver for Obs {
    fn on_connected(&self, user: u32, transport: Transport, connection_id: &str) {
        self.connected
            .lock()
            .unwrap()
            .push((user, transport, connection_id.to_owned()));
    }
    fn on_event(&self, user: u32, event: &ServerEvent) {
        let from = event.user_id().map(str::to_owned);
        self.events
            .lock()
            .unwrap()
            .push((user, event.kind().to_owned(), from, Instant::now()));
    }
    fn on_leak(&self, leak: Leak) {
        self.leaks.lock().unwrap().push(leak);
    }
    fn on_rest(&self, user: u32, endpoint: RestEndpoint, status: Option<u16>, _code: Option<i32>) {
        self.rest.lock().unwrap().push((user, endpoint, status, Instant::now()));
    }
}

impl Obs {
    fn connections(&self, user: u32) -> Vec<(Transport, String)> {
        let c = self.connected.lock().unwrap();
        c.iter().filter(|x| x.0 == user).map(|x| (x.1, x.2.clone())).collect()
    }
    fn rest_ok(&self, user: u32, ep: RestEndpoint) -> Vec<Instant> {
        let r = self.rest.lock().unwrap();
        r.iter()
            .filter(|x| x.0 == user && x.1 == ep && x.2.is_some_and(|s| s < 300))
            .map(|x| x.3)
            .collect()
    }
    fn received(&self, user: u32, kind: &str, from: &str) -> Vec<Instant> {
        let e = self.events.lock().unwrap();
        e.iter()
            .filter(|x| x.0 == user && x.1 == kind && x.2.as_deref() == Some(from))
            .map(|x| x.3)
            .collect()
    }
}

/// Polls `cond` every 20 ms until it holds, failing the test after [`WAIT`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Rig {
    mock: MockHandle,
    ctx: Arc<UserCtx>,
    obs: Arc<Obs>,
    actions: broadcast::Sender<(u64, UserAction)>,
    cancel: CancellationToken,
    started: Instant,
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

const CIDS: [&str; 2] = ["messaging:room-a", "messaging:room-b"];

async fn rig_with(cfg: impl FnOnce(&mut MockConfig), auth: Option<TargetAuth>, users: usize) -> Rig {
    let mut c = MockConfig {
        api_key: KEY.into(),
        secret: SECRET.into(),
        longpoll_hold: Duration::from_millis(500),
        ..MockConfig::default()
    };
    cfg(&mut c);
    let mock = chatstorm_mock::start(c).await.expect("bind 127.0.0.1:0");
    let auth = auth.unwrap_or_else(|| TargetAuth::Secret(SECRET.as_bytes().to_vec()));
    let target = Target::new(
        mock.base_url().parse().unwrap(),
        KEY.into(),
        auth,
        Some(SECRET.as_bytes().to_vec()),
    )
    .unwrap();
    let obs = Arc::new(Obs::default());
    let cids: Vec<String> = CIDS.iter().map(|c| (*c).to_owned()).collect();
    let started = Instant::now();
    let ctx = Arc::new(UserCtx {
        target,
        recorder: Recorder::new(),
        http: http::new_client(),
        source_addrs: SourceAddrs::loopback(4),
        deliveries: DeliveryTracker::new(&ids(users), &cids),
        observer: Some(obs.clone()),
        run_start: started,
    });
    let (actions, _) = broadcast::channel(16);
    Rig {
        mock,
        ctx,
        obs,
        actions,
        cancel: CancellationToken::new(),
        started,
    }
}

async fn rig(users: usize) -> Rig {
    rig_with(|_| {}, None, users).await
}

fn spec(index: u32, profile: Profile, mode: TokenMode) -> UserSpec {
    UserSpec {
        index,
        id: format!("user-{index}"),
        profile,
        token: TokenSpec { mode, ttl: None },
        privacy: PrivacySettings::default(),
        fallback: false,
        custom_bytes: 64,
        channels: CIDS.iter().map(|c| (*c).to_owned()).collect(),
        behaviour: Behaviour::default(),
        seed: 1000 + u64::from(index),
        intended_start: None,
    }
}

impl Rig {
    fn spawn(&self, spec: UserSpec) -> JoinHandle<UserReport> {
        tokio::spawn(run_user(
            spec,
            self.ctx.clone(),
            self.actions.subscribe(),
            self.cancel.clone(),
        ))
    }
    fn snapshot(&self) -> MetricsSnapshot {
        let c = Collector::new(self.ctx.recorder.clone(), self.started.into_std(), SystemTime::now());
        c.finish(std::time::Instant::now())
    }
    fn count(&self, c: Counter) -> u64 {
        self.ctx.recorder.counter(c)
    }
    async fn finish(self, users: Vec<JoinHandle<UserReport>>) -> Vec<UserReport> {
        self.cancel.cancel();
        let mut out = Vec::new();
        for u in users {
            out.push(
                tokio::time::timeout(WAIT, u)
                    .await
                    .expect("user ends")
                    .expect("no panic"),
            );
        }
        assert_eq!(self.ctx.recorder.gauge(Gauge::Connected), 0);
        self.mock.shutdown().await;
        out
    }
}

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
