#![allow(dead_code)]
//! Shared rig for the user tests: an in-process mock, a user context with an observer, helpers.
//! (Header of the lifecycle tests kept below for reference.)
//! Simulated users against the in-process mock server over real loopback sockets: connect and
//! first health check per profile, token refresh after code 40 (provider) and fatal 40 (static),
//! reconnect after a server close 1011 within the back-off bounds with a new connection id and
//! re-watched channels, no reconnect after a server 1000, long-poll fallback when upgrades are
//! refused (events received over long-poll), privacy toggles via `PATCH /users`, and a token
//! endpoint (wiremock) that is slow or failing.

use chatstorm::metrics::{Collector, Counter, Gauge, MetricsSnapshot, Recorder, RestEndpoint};
use chatstorm::target::{Target, TargetAuth};
use chatstorm::user::{
    Behaviour, DeliveryTracker, Leak, SourceAddrs, TokenMode, TokenSpec, Transport, UserAction, UserCtx, UserObserver,
    UserReport, UserSpec, http, run_user,
};
use chatstorm_mock::{MockConfig, MockHandle};
use chatstorm_protocol::event::ServerEvent;
use chatstorm_protocol::{PrivacySettings, Profile};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "user_test_key";
pub const SECRET: &str = "user_test_secret";
/// Generous: two loaded cores.
pub const WAIT: Duration = Duration::from_secs(20);

pub type RestLog = Vec<(u32, RestEndpoint, Option<u16>, Instant)>;
pub type EventLog = Vec<(u32, String, Option<String>, Instant)>;

#[derive(Default)]
pub struct Obs {
    pub connected: Mutex<Vec<(u32, Transport, String)>>,
    pub rest: Mutex<RestLog>,
    pub events: Mutex<EventLog>,
    pub leaks: Mutex<Vec<Leak>>,
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
    pub fn connections(&self, user: u32) -> Vec<(Transport, String)> {
        let c = self.connected.lock().unwrap();
        c.iter().filter(|x| x.0 == user).map(|x| (x.1, x.2.clone())).collect()
    }
    pub fn rest_ok(&self, user: u32, ep: RestEndpoint) -> Vec<Instant> {
        let r = self.rest.lock().unwrap();
        r.iter()
            .filter(|x| x.0 == user && x.1 == ep && x.2.is_some_and(|s| s < 300))
            .map(|x| x.3)
            .collect()
    }
    pub fn received(&self, user: u32, kind: &str, from: &str) -> Vec<Instant> {
        let e = self.events.lock().unwrap();
        e.iter()
            .filter(|x| x.0 == user && x.1 == kind && x.2.as_deref() == Some(from))
            .map(|x| x.3)
            .collect()
    }
}

/// Polls `cond` every 20 ms until it holds, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Rig {
    pub mock: MockHandle,
    pub ctx: Arc<UserCtx>,
    pub obs: Arc<Obs>,
    pub actions: broadcast::Sender<(u64, UserAction)>,
    pub cancel: CancellationToken,
    pub started: Instant,
}

pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

pub const CIDS: [&str; 2] = ["messaging:room-a", "messaging:room-b"];

pub async fn rig_with(cfg: impl FnOnce(&mut MockConfig), auth: Option<TargetAuth>, users: usize) -> Rig {
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
        run_over: tokio_util::sync::CancellationToken::new(),
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

pub async fn rig(users: usize) -> Rig {
    rig_with(|_| {}, None, users).await
}

pub fn spec(index: u32, profile: Profile, mode: TokenMode) -> UserSpec {
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
        unity: Default::default(),
        fixed_backoff: None,
    }
}

impl Rig {
    pub fn spawn(&self, spec: UserSpec) -> JoinHandle<UserReport> {
        tokio::spawn(run_user(
            spec,
            self.ctx.clone(),
            self.actions.subscribe(),
            self.cancel.clone(),
        ))
    }
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = Collector::new(self.ctx.recorder.clone(), self.started.into_std(), SystemTime::now());
        c.finish(std::time::Instant::now())
    }
    pub fn count(&self, c: Counter) -> u64 {
        self.ctx.recorder.counter(c)
    }
    pub async fn finish(self, users: Vec<JoinHandle<UserReport>>) -> Vec<UserReport> {
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

impl Rig {
    /// Creates the test channels server-side with every user as a member (as the engine does
    /// before a run), so that reads by any member are allowed.
    pub async fn create_channels(&self, users: usize) {
        let server = chatstorm_protocol::token::sign(&chatstorm_protocol::token::Claims::server(), SECRET.as_bytes());
        let members: Vec<String> = ids(users);
        for cid in CIDS {
            let path = cid.replacen(':', "/", 1);
            let url = format!("{}/channels/{path}/query?api_key={KEY}", self.mock.base_url());
            let body = serde_json::json!({"data": {"members": members, "created_by_id": "user-0"}});
            let r = http::send(
                &self.ctx.http,
                ::http::Method::POST,
                &url,
                &[("Authorization", &server), ("stream-auth-type", "jwt")],
                Some(serde_json::to_vec(&body).unwrap().into()),
                WAIT,
            )
            .await
            .expect("create channel");
            assert!(r.status < 300, "create {cid}: {} {:?}", r.status, r.body);
        }
    }
}
