//! The task that drives one user's [`Machine`]: it waits on whichever of its sources is ready
//! (cancel, timeline actions, the in-flight connect, the socket, the in-flight REST call, the
//! in-flight poll, the machine's next deadline), feeds the machine, and carries out its commands.
//! At most one connect, one REST call and one poll are in flight; each is boxed only while it
//! exists, so an idle connected user costs its state, its socket and nothing else.

use super::delivery::{Kind, OrderTable, Stamp};
use super::machine::{Act, Behaviour, Command, Failure, Input, Machine, MachineConfig, Measure, State, Transport};
use super::profile::{self, ClientHealth, ProfileParams, Recovery};
use super::record::{Counter, Gauge, Metric};
use super::rest::{self, Job};
use super::transport::{self, PollResult, Ws};
use super::{TokenMode, UserAction, UserCtx, UserReport, UserSpec, auth, selected};
use chatstorm_protocol::connect::ConnectPayload;
use chatstorm_protocol::event::{self, ServerEvent};
use chatstorm_protocol::{PrivacySettings, Profile, User};
use futures_util::SinkExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The attempts count of a storm the user already came back from (kept, so that a second drop
/// inside the same storm's window does not make it a member twice).
const STORM_RECOVERED: u32 = u32::MAX;

/// A connect attempt's result.
pub struct Connecting {
    new_token: Option<String>,
    upgrade_started: Instant,
    result: Result<Conn, Failure>,
}

/// A poll's outcome: what the last try got, and the token refreshed on the way (with when the
/// code 40 that asked for it came), if the server asked for one.
pub(super) type PollDone = (PollResult, Option<(String, Instant)>);

enum Conn {
    Ws(Box<Ws>, String),
    LongPoll(String),
}

#[derive(Debug, Default)]
struct Pending {
    privacy: Option<(Option<bool>, Option<bool>)>,
    /// Unity's code-40 path: the request to send once more after the reconnect, and until when.
    resend: Option<(Job, Instant)>,
    /// The job in flight is that resend (a second code 40 is then the caller's error).
    resending: bool,
    /// `/sync` due, from this watermark (taken when the connection came back, before its events).
    sync: Option<u64>,
    recover_query: bool,
    watch_from: Option<u16>,
    behave: [bool; 3],
}

/// A received WebSocket message, reduced at once to what the driver needs (a tungstenite error
/// is large and would sit in every user's future).
enum FrameIn {
    Text(tungstenite::Utf8Bytes),
    Close(Option<u16>),
    Control,
    Gone,
}

impl FrameIn {
    fn from(m: Option<Result<Message, tungstenite::Error>>) -> Self {
        match m {
            Some(Ok(Message::Text(t))) => Self::Text(t),
            Some(Ok(Message::Close(f))) => Self::Close(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => Self::Control,
            Some(Err(_)) | None => Self::Gone,
        }
    }
}

enum Wake {
    Cancel,
    Action(Result<(u64, UserAction), broadcast::error::RecvError>),
    Connect(Box<Connecting>),
    Frame(FrameIn),
    Rest(Box<rest::Done>),
    Poll(Box<PollDone>),
    Timer,
}

/// One user's driver. Built by [`super::run_user`].
pub struct Driver {
    spec: Arc<UserSpec>,
    ctx: Arc<UserCtx>,
    params: &'static ProfileParams,
    m: Machine,
    out: Vec<Command>,
    token: Option<String>,
    connection_id: String,
    privacy: PrivacySettings,
    connecting: Option<BoxFuture<Connecting>>,
    /// The transport of the attempt in flight: a failure is counted against it even when the
    /// machine has already moved on to long-poll by the time the failure is measured.
    attempt_transport: Transport,
    upgrade_started: Instant,
    ws: Option<Box<Ws>>,
    rest: Option<BoxFuture<rest::Done>>,
    poll: Option<BoxFuture<PollDone>>,
    pending: Pending,
    watched: u64,
    live: Option<Transport>,
    order: OrderTable,
    rng: u64,
    actions_open: bool,
    deferred: Option<Input>,
    /// Newest `created_at` seen (µs since the epoch, 0: none): the `/sync` watermark.
    last_event_us: u64,
    /// The storm this user's current drop belongs to, and its reconnect attempts since the drop.
    storm: Option<(Arc<crate::metrics::Storm>, u32)>,
    report: UserReport,
}

async fn maybe<T>(f: &mut Option<BoxFuture<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(ws: &mut Option<Box<Ws>>) -> Option<Result<Message, tungstenite::Error>> {
    match ws {
        Some(ws) => super::metered::next_message(ws).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The user object `user_details` carries (the current privacy settings, custom bytes).
fn user_object(spec: &UserSpec, privacy: PrivacySettings) -> User {
    let mut u = User::new(spec.id.clone());
    u.name = Some(format!("User {}", spec.index));
    if privacy != PrivacySettings::default() {
        u.privacy_settings = Some(privacy);
    }
    if spec.custom_bytes > 0 {
        u.custom.insert("bio".into(), "x".repeat(spec.custom_bytes).into());
    }
    u
}

impl Driver {
    /// A driver for `spec`, not yet started.
    pub fn new(spec: UserSpec, ctx: Arc<UserCtx>) -> Self {
        let params = profile::params(spec.profile);
        let cfg = MachineConfig {
            params,
            provider: spec.token.mode == TokenMode::Provider,
            fallback: spec.fallback,
            typing_every: spec.behaviour.typing,
            read_every: spec.behaviour.read,
            message_every: spec.behaviour.message,
            seed: spec.seed,
            unity: spec.unity,
            fixed_backoff: spec.fixed_backoff,
        };
        let now = Instant::now();
        Self {
            privacy: spec.privacy,
            rng: spec.seed.rotate_left(17) ^ 0xA076_1D64_78BD_642F,
            spec: Arc::new(spec),
            ctx,
            params,
            m: Machine::new(cfg, now),
            out: Vec::with_capacity(8),
            token: None,
            connection_id: String::new(),
            connecting: None,
            attempt_transport: Transport::Ws,
            upgrade_started: now,
            ws: None,
            rest: None,
            poll: None,
            pending: Pending::default(),
            watched: 0,
            live: None,
            order: OrderTable::default(),
            actions_open: true,
            deferred: None,
            last_event_us: 0,
            storm: None,
            report: UserReport {
                connected_ever: false,
                final_state: State::Disconnected,
                stop_reason: None,
                attempts: 0,
                connects: 0,
                reconnects: 0,
                last_reconnect: None,
                token_refreshes: 0,
                last_token_refresh: None,
                fell_back: false,
                watches: 0,
                events_received: 0,
                events_sent: 0,
                rest_failures: 0,
                privacy_updates: 0,
            },
        }
    }

    /// Runs the user to its end (see [`super::run_user`]).
    ///
    /// By reference on purpose: an `async fn` taking `self` by value keeps two copies of the
    /// driver in its future (the argument and the body's binding, about 900 B per user).
    pub async fn run(
        &mut self,
        actions: &mut broadcast::Receiver<(u64, UserAction)>,
        cancel: &CancellationToken,
    ) -> UserReport {
        self.ctx.recorder.gauge_add(Gauge::Users, 1);
        Box::pin(self.feed(Input::Start)).await;
        while self.m.state() != State::Stopped {
            if let Some(input) = self.deferred.take() {
                Box::pin(self.feed(input)).await;
                continue;
            }
            self.start_job();
            let deadline = self.m.next_deadline();
            let wake = tokio::select! {
                biased;
                () = cancel.cancelled() => Wake::Cancel,
                r = actions.recv(), if self.actions_open => Wake::Action(r),
                c = maybe(&mut self.connecting) => Wake::Connect(Box::new(c)),
                f = next_frame(&mut self.ws) => Wake::Frame(FrameIn::from(f)),
                d = maybe(&mut self.rest) => Wake::Rest(Box::new(d)),
                p = maybe(&mut self.poll) => Wake::Poll(Box::new(p)),
                () = sleep_until(deadline) => Wake::Timer,
            };
            // Boxed: handling a wake nests several async steps; boxing keeps that state off the
            // resident future of every idle user (one short-lived allocation per wake instead).
            Box::pin(self.on_wake(wake)).await;
        }
        self.connecting = None;
        self.leave_live();
        self.ctx.recorder.gauge_add(Gauge::Users, -1);
        let mut report = self.report.clone();
        report.connected_ever = self.m.connected_ever();
        report.final_state = self.m.state();
        report.stop_reason = self.m.stop_reason();
        report.attempts = self.m.attempts();
        report
    }

    async fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Cancel => {
                // When the run is over, the socket goes without its close handshake (see
                // `transport::abandon_ws`); a user leaving by the scenario's plan closes as its
                // SDK does. The machine then stops as for any stop.
                if self.ctx.run_over.is_cancelled()
                    && let Some(ws) = self.ws.take()
                {
                    transport::abandon_ws(ws);
                }
                self.feed(Input::Action(Act::Stop)).await
            }
            Wake::Action(Ok((seq, action))) => self.on_action(seq, action).await,
            Wake::Action(Err(broadcast::error::RecvError::Closed)) => self.actions_open = false,
            Wake::Action(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Wake::Connect(c) => self.on_connect_result(*c).await,
            Wake::Frame(f) => self.on_frame(f).await,
            Wake::Rest(done) => self.on_rest_done(*done).await,
            Wake::Poll(p) => self.on_poll(*p).await,
            Wake::Timer => {
                let mut out = std::mem::take(&mut self.out);
                self.m.on_timer(Instant::now(), &mut out);
                self.exec_all(out).await;
            }
        }
    }

    async fn feed(&mut self, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.m.handle(Instant::now(), input, &mut out);
        self.exec_all(out).await;
    }

    async fn exec_all(&mut self, mut out: Vec<Command>) {
        for cmd in out.drain(..) {
            self.exec(cmd).await;
        }
        self.out = out;
        if !self.m.is_live() {
            self.leave_live();
        }
    }

    async fn exec(&mut self, cmd: Command) {
        match cmd {
            Command::Connect {
                transport,
                fetch_token,
                reconnect,
            } => self.start_connect(transport, fetch_token, reconnect),
            Command::Abort => {
                self.connecting = None;
                self.ws = None;
                self.poll = None;
            }
            Command::Close(code) => {
                self.connecting = None;
                self.poll = None;
                if let Some(ws) = self.ws.take() {
                    Box::pin(transport::close_ws(ws, code)).await;
                } else if self.live == Some(Transport::LongPoll) {
                    self.spawn_longpoll_close();
                }
            }
            Command::SendHealth => self.send_health().await,
            Command::Poll => self.start_poll(),
            Command::Watch => self.pending.watch_from = Some(0),
            Command::Recover => match self.params.recovery {
                Recovery::QueryChannels => self.pending.recover_query = true,
                Recovery::SyncAndRewatch | Recovery::Sync => self.pending.sync = Some(self.last_event_us),
                Recovery::Rewatch => self.pending.watch_from = Some(0),
            },
            Command::Behave(b) => self.pending.behave[b as usize] = true,
            Command::Measure(m) => self.measure(m),
            Command::Stopped(_) => {}
        }
    }

    fn measure(&mut self, m: Measure) {
        let rec = &self.ctx.recorder;
        match m {
            Measure::Connect(t, _) => {
                let now = Instant::now();
                let metric = match t {
                    Transport::Ws => Metric::ConnectWs,
                    Transport::LongPoll => Metric::ConnectLongpoll,
                };
                match self.spec.intended_start {
                    Some(intended) if self.report.connects == 0 => {
                        rec.record_corrected(
                            metric,
                            intended.into_std(),
                            self.upgrade_started.into_std(),
                            now.into_std(),
                        );
                    }
                    _ => rec.record(metric, now - self.upgrade_started),
                }
                rec.count(Counter::Connects);
                self.report.connects += 1;
                // Live again after a storm's drop or a background wave's pause (which ends in a
                // plain connect, not a reconnect): that is the user's recovery.
                self.storm_recovered(now);
            }
            Measure::Reconnect(d) => {
                rec.record(Metric::Reconnect, d);
                self.storm_recovered(Instant::now());
                self.report.reconnects += 1;
                self.report.last_reconnect = Some(d);
            }
            Measure::TokenRefresh(d) => {
                rec.record(Metric::TokenRefresh, d);
                rec.count(Counter::TokenRefreshes);
                self.report.token_refreshes += 1;
                self.report.last_token_refresh = Some(d);
            }
            Measure::ConnectFailure(kind) => {
                rec.count(Counter::ConnectFailures);
                if self.attempt_transport == Transport::LongPoll {
                    rec.count(Counter::LongpollConnectFailures);
                }
                if let Some(kind) = kind {
                    rec.failure_kind(kind);
                }
            }
            Measure::Disconnect => {
                rec.count(Counter::Disconnects);
                // A drop during a storm counts towards it; its recovery is reported on reconnect.
                // A user joins a storm once: dropped again inside the same storm's window (by the
                // next timeline action, say) it is not a second member, and a user still coming
                // back from an earlier storm stays with that one.
                if let Some(storm) = rec.storm_at(Instant::now().into_std()) {
                    let join = match &self.storm {
                        Some((cur, _)) if Arc::ptr_eq(cur, &storm) => false,
                        Some((_, attempts)) => *attempts == STORM_RECOVERED,
                        None => true,
                    };
                    if join {
                        storm.add_dropped();
                        self.storm = Some((storm, 0));
                    }
                }
            }
            Measure::ReconnectAttempt => {
                rec.count(Counter::ReconnectAttempts);
                if let Some((_, attempts)) = &mut self.storm
                    && *attempts != STORM_RECOVERED
                {
                    *attempts += 1;
                }
            }
            Measure::Fallback => {
                rec.count(Counter::Fallbacks);
                self.report.fell_back = true;
            }
        }
    }

    fn start_connect(&mut self, transport: Transport, fetch_token: bool, reconnect: bool) {
        self.attempt_transport = transport;
        let ctx = self.ctx.clone();
        let spec = self.spec.clone();
        let held = self.token.clone();
        let privacy = self.privacy;
        // The machine's deadline for this attempt (token fetch included), a few milliseconds
        // early so that the transport's timeout, which can name the phase it hit, fires first; the
        // machine's own timer stays the backstop.
        let deadline = Instant::now()
            + match transport {
                Transport::Ws => profile::params(spec.profile).connect_timeout,
                Transport::LongPoll => profile::LONGPOLL_CONNECT_TIMEOUT,
            }
            .saturating_sub(std::time::Duration::from_millis(5));
        self.connecting = Some(Box::pin(async move {
            let mut new_token = None;
            let token = match held {
                Some(t) if !fetch_token => t,
                _ => {
                    let fetched = auth::fetch(
                        &ctx.target.auth,
                        &ctx.http,
                        &ctx.recorder,
                        &spec.id,
                        spec.token.ttl,
                        spec.seed,
                    )
                    .await;
                    match fetched {
                        Ok(t) => {
                            new_token = Some(t.clone());
                            t
                        }
                        Err(_) => {
                            return Connecting {
                                new_token: None,
                                upgrade_started: Instant::now(),
                                result: Err(Failure::Token),
                            };
                        }
                    }
                }
            };
            let user = user_object(&spec, privacy);
            let request_id = uuid::Uuid::new_v4().to_string();
            let mut payload = ConnectPayload::for_profile(spec.profile, &user, &token, reconnect, &request_id);
            let upgrade_started = Instant::now();
            let result = match transport {
                Transport::Ws => match crate::net::resolve(&ctx.target.ws_base).await {
                    Ok(server) => {
                        let source = ctx.source_addrs.pick(&server);
                        let t = &ctx.target;
                        let tls = t.tls.as_ref().map(|tls| tls.for_user(spec.index));
                        transport::connect_ws(
                            &t.ws_base,
                            server,
                            source,
                            tls.as_ref(),
                            &t.api_key,
                            &token,
                            &payload,
                            spec.profile,
                            &ctx.recorder,
                            profile::params(spec.profile).upgrade_timeout,
                            Some(deadline),
                        )
                        .await
                        .map(|o| Conn::Ws(o.ws, o.connection_id))
                    }
                    Err(_) => Err(Failure::Network(super::machine::FailureKind::Dns)),
                },
                Transport::LongPoll => {
                    payload.client_request_id = None;
                    let auth = super::http::StreamAuth {
                        api_key: &ctx.target.api_key,
                        user_id: &spec.id,
                        connection_id: "",
                        token: &token,
                        user_agent: spec.profile.user_agent(),
                    };
                    let r = transport::longpoll_connect(&ctx.http, &ctx.target.http_base, auth, &payload).await;
                    ctx.recorder.record(Metric::LongpollConnect, upgrade_started.elapsed());
                    r.map(Conn::LongPoll)
                }
            };
            Connecting {
                new_token: new_token.or(Some(token)),
                upgrade_started,
                result,
            }
        }));
    }

    async fn on_connect_result(&mut self, c: Connecting) {
        self.connecting = None;
        if c.new_token.is_some() {
            self.token = c.new_token;
        }
        self.upgrade_started = c.upgrade_started;
        match c.result {
            Ok(conn) => {
                let (transport, id) = match conn {
                    Conn::Ws(ws, id) => {
                        self.ws = Some(ws);
                        (Transport::Ws, id)
                    }
                    Conn::LongPoll(id) => (Transport::LongPoll, id),
                };
                self.connection_id = id;
                self.feed(Input::Connected).await;
                if self.m.is_live() {
                    self.enter_live(transport);
                } else {
                    // The machine moved on (stopped, backgrounded): the new socket is not wanted.
                    self.ws = None;
                }
            }
            Err(f) => {
                if let Failure::Api { code, close } = f {
                    self.ctx.recorder.error_code(u32::try_from(code).unwrap_or(0));
                    if let Some(c) = close {
                        self.ctx.recorder.close_code(c);
                    }
                    // Close codes exist only on WebSocket attempts: a long-poll connect's HTTP error
                    // has none, and must not read as "dropped without a close frame".
                    if let (Some(o), Transport::Ws) = (&self.ctx.observer, self.m.transport()) {
                        o.on_connect_error(self.spec.index, code, close);
                    }
                }
                self.feed(Input::ConnectFailed(f)).await;
            }
        }
    }

    fn enter_live(&mut self, transport: Transport) {
        let rec = &self.ctx.recorder;
        if self.live.is_none() {
            rec.gauge_add(Gauge::Connected, 1);
            if transport == Transport::LongPoll {
                rec.gauge_add(Gauge::LongPolling, 1);
            }
            self.live = Some(transport);
        }
        if self.report.connects == 1 && self.spec.profile != Profile::Unity {
            // The server now holds the privacy settings sent in user_details (Unity sends none).
            let p = self.privacy;
            let now_us = self.now_us();
            self.ctx.deliveries.set_privacy(
                self.spec.index,
                Some(p.typing_enabled()),
                Some(p.read_receipts_enabled()),
                now_us,
            );
            self.m_own_typing(p.typing_enabled());
        }
        if let Some(o) = &self.ctx.observer {
            o.on_connected(self.spec.index, transport, &self.connection_id);
        }
    }

    fn m_own_typing(&mut self, on: bool) {
        let mut out = Vec::new();
        self.m.handle(Instant::now(), Input::OwnTypingEnabled(on), &mut out);
    }

    /// Leaves the live state: gauges down, watches forgotten, transports dropped.
    fn leave_live(&mut self) {
        let Some(t) = self.live.take() else {
            return;
        };
        let rec = &self.ctx.recorder;
        rec.gauge_add(Gauge::Connected, -1);
        if t == Transport::LongPoll {
            rec.gauge_add(Gauge::LongPolling, -1);
        }
        self.ctx.deliveries.connection_ended(self.spec.index, self.now_us());
        self.watched = 0;
        // Privacy toggles and Unity's pending resend outlive the connection.
        self.pending = Pending {
            privacy: self.pending.privacy,
            resend: self.pending.resend,
            ..Pending::default()
        };
        self.poll = None;
        if self.m.state() != State::Connecting {
            self.ws = None;
        }
    }

    /// Live again: the recovery of the storm this user was dropped by, once.
    fn storm_recovered(&mut self, now: Instant) {
        if let Some((storm, attempts)) = &mut self.storm
            && *attempts != STORM_RECOVERED
        {
            self.ctx.recorder.recovered(storm, now.into_std(), (*attempts).max(1));
            *attempts = STORM_RECOVERED;
        }
    }

    fn now_us(&self) -> u64 {
        Instant::now().saturating_duration_since(self.ctx.run_start).as_micros() as u64
    }

    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[path = "driver_io.rs"]
mod io;
