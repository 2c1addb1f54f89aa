//! The simulated user's connection lifecycle as a sans-IO state machine: no sockets, no clock, no
//! tasks. The driver (`super::driver`) feeds it [`Input`]s (transport outcomes, frames, closes,
//! timeline actions) with the current time, asks it for its next deadline, and carries out the
//! [`Command`]s it pushes (connect, close, send a health check, poll, REST behaviours, measure).
//!
//! States: `Disconnected` (not started, or in the background), `Connecting` (one attempt in
//! flight), `Live` (WebSocket healthy), `LongPoll` (live over `/longpoll`), `Backoff` (waiting to
//! retry) and `Stopped` (terminal, with a [`StopReason`]). Every per-SDK difference comes from the
//! [`ProfileParams`](super::profile::ProfileParams) row; every random choice from a seeded generator, so one seed gives one life.

use super::profile::{self, Backoff, ClientHealth, DeadRule, HealthCadence};
use chatstorm_protocol::ErrorCode;
use chatstorm_protocol::limits::close;
use std::time::Duration;
use tokio::time::Instant;

pub use super::signal::*;

/// The state machine of one user.
#[derive(Debug)]
pub struct Machine {
    cfg: MachineConfig,
    state: State,
    stop: Option<StopReason>,
    transport: Transport,
    rng: u64,
    failures: u32,
    poll_failures: u32,
    reconnects_since_live: u32,
    attempts: u32,
    connected_ever: bool,
    watched: bool,
    need_refresh: bool,
    typing_enabled: bool,
    api_error_in_window: bool,
    pending_error: Option<i32>,
    attempt_started: Option<Instant>,
    drop_detected: Option<Instant>,
    refresh_started: Option<Instant>,
    last_frame: Instant,
    last_health: Instant,
    attempt_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    fallback_at: Option<Instant>,
    ping_at: Option<Instant>,
    pong_deadline: Option<Instant>,
    poll_retry_at: Option<Instant>,
    resume_at: Option<Instant>,
    refuse_until: Option<Instant>,
    behave_at: [Option<Instant>; 3],
}

impl Machine {
    /// A machine in `Disconnected`; feed it [`Input::Start`] to begin.
    pub fn new(cfg: MachineConfig, now: Instant) -> Self {
        Self {
            cfg,
            state: State::Disconnected,
            stop: None,
            transport: Transport::Ws,
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            failures: 0,
            poll_failures: 0,
            reconnects_since_live: 0,
            attempts: 0,
            connected_ever: false,
            watched: false,
            need_refresh: false,
            typing_enabled: true,
            api_error_in_window: false,
            pending_error: None,
            attempt_started: None,
            drop_detected: None,
            refresh_started: None,
            last_frame: now,
            last_health: now,
            attempt_deadline: None,
            retry_at: None,
            fallback_at: None,
            ping_at: None,
            pong_deadline: None,
            poll_retry_at: None,
            resume_at: None,
            refuse_until: None,
            behave_at: [None; 3],
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the machine stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// The transport of the current or next attempt (long-poll forever after a fallback).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Connect attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the user was ever live.
    pub fn connected_ever(&self) -> bool {
        self.connected_ever
    }

    /// Consecutive failed attempts (reset when live).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the user is live on either transport.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live | State::LongPoll)
    }

    /// Whether typing may be sent now (JS sends none over long-poll or with its own typing off).
    pub fn may_type(&self) -> bool {
        self.state == State::Live || (self.state == State::LongPoll && !self.cfg.params.can_fallback)
    }

    /// The earliest time at which [`Machine::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut all = [None; 9];
        match self.state {
            State::Connecting => {
                all[0] = self.attempt_deadline;
                all[1] = self.fallback_at;
            }
            State::Backoff => {
                all[0] = self.retry_at;
                all[1] = self.fallback_at;
            }
            State::Live => {
                all[0] = self.ping_at;
                all[1] = self.dead_at();
                all[2..5].copy_from_slice(&self.behave_at);
            }
            State::LongPoll => {
                all[0] = self.poll_retry_at;
                all[2..5].copy_from_slice(&self.behave_at);
            }
            State::Disconnected => all[0] = self.resume_at,
            State::Stopped => {}
        }
        all.into_iter().flatten().min()
    }

    fn dead_at(&self) -> Option<Instant> {
        let p = self.cfg.params;
        match p.dead_rule {
            DeadRule::Silence => Some(self.last_frame + p.dead_after),
            DeadRule::NoHealth => Some(self.last_health + p.dead_after),
            DeadRule::PongDeadline => self.pong_deadline,
        }
    }

    fn unit(&mut self) -> f64 {
        // SplitMix64: 8 bytes of state, stable across versions, good enough for schedules.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential inter-arrival time around `mean` (a Poisson process), capped at 10 means.
    fn exp_delay(&mut self, mean: Duration) -> Duration {
        let u = self.unit();
        let factor = (-(1.0 - u).ln()).min(10.0);
        mean.mul_f64(factor)
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input, out: &mut Vec<Command>) {
        if self.state == State::Stopped {
            return;
        }
        match input {
            Input::Start => self.start(now, out),
            Input::Connected => self.on_connected(now, out),
            Input::ConnectFailed(f) => self.on_connect_failed(now, f, out),
            Input::Frame { health } => self.on_frame(now, health),
            Input::ErrorFrame(code) => self.on_error_frame(now, code, out),
            Input::Closed(code) => self.on_closed(now, code, out),
            Input::PollOk => self.on_poll_ok(now, out),
            Input::PollTokenRefreshed(at) => {
                if self.state == State::LongPoll {
                    self.refresh_started.get_or_insert(at);
                }
            }
            Input::PollFailed(code) => self.on_poll_failed(now, code, out),
            Input::OwnTypingEnabled(on) => self.typing_enabled = on,
            Input::RestTokenExpired => self.on_rest_token_expired(now, out),
            Input::Action(act) => self.on_action(now, act, out),
        }
    }

    /// Fires every deadline that has passed.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Command>) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        match self.state {
            State::Connecting | State::Backoff if due(self.fallback_at) => self.fall_back(now, out),
            State::Connecting if due(self.attempt_deadline) => {
                out.push(Command::Abort);
                self.attempt_failed(now, Failure::Network(FailureKind::Timeout), out);
            }
            State::Backoff if due(self.retry_at) => {
                self.retry_at = None;
                let fetch = self.need_refresh;
                self.attempt(now, fetch, out);
            }
            State::Disconnected if due(self.resume_at) => {
                self.resume_at = None;
                self.start(now, out);
            }
            State::Live => {
                if due(self.dead_at()) {
                    out.push(match self.cfg.params.dead_close {
                        Some(code) => Command::Close(code),
                        None => Command::Abort,
                    });
                    self.lost(now, true, out);
                    return;
                }
                if due(self.ping_at) {
                    out.push(Command::SendHealth);
                    let p = self.cfg.params;
                    self.ping_at = match p.cadence {
                        HealthCadence::AfterServerHealth => None,
                        _ => Some(now + p.health_every),
                    };
                    if p.dead_rule == DeadRule::PongDeadline && self.pong_deadline.is_none() {
                        self.pong_deadline = Some(now + p.dead_after);
                    }
                }
                self.fire_behaviours(now, out);
            }
            State::LongPoll => {
                if due(self.poll_retry_at) {
                    self.poll_retry_at = None;
                    out.push(Command::Poll);
                }
                self.fire_behaviours(now, out);
            }
            _ => {}
        }
    }

    fn fire_behaviours(&mut self, now: Instant, out: &mut Vec<Command>) {
        let kinds = [Behaviour::Typing, Behaviour::Read, Behaviour::Message];
        for (i, kind) in kinds.into_iter().enumerate() {
            if self.behave_at[i].is_some_and(|t| t <= now) {
                self.behave_at[i] = self.period(kind).map(|m| now + self.exp_delay(m));
                let suppressed = kind == Behaviour::Typing
                    && (!self.may_type() || (self.cfg.params.typing_respects_own_privacy && !self.typing_enabled));
                if !suppressed {
                    out.push(Command::Behave(kind));
                }
            }
        }
    }

    fn period(&self, kind: Behaviour) -> Option<Duration> {
        match kind {
            Behaviour::Typing => self.cfg.typing_every,
            Behaviour::Read => self.cfg.read_every,
            Behaviour::Message => self.cfg.message_every,
        }
        .filter(|d| !d.is_zero())
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Command>) {
        if !matches!(self.state, State::Disconnected) {
            return;
        }
        self.failures = 0;
        self.api_error_in_window = false;
        if self.cfg.fallback && self.cfg.params.can_fallback && self.transport == Transport::Ws {
            self.fallback_at = Some(now + profile::FALLBACK_WINDOW);
        }
        let fetch = !self.connected_ever || self.need_refresh;
        self.attempt(now, fetch, out);
    }

    fn attempt(&mut self, now: Instant, fetch: bool, out: &mut Vec<Command>) {
        let p = self.cfg.params;
        let reconnect = self.connected_ever;
        if reconnect {
            self.reconnects_since_live += 1;
            if p.max_reconnects.is_some_and(|max| self.reconnects_since_live > max) {
                self.stop(StopReason::GaveUp, out);
                return;
            }
            out.push(Command::Measure(Measure::ReconnectAttempt));
        }
        self.attempts += 1;
        self.state = State::Connecting;
        self.attempt_started = Some(now);
        if self.transport == Transport::Ws && self.refuse_until.is_some_and(|t| t > now) {
            // The user refuses its own WebSocket: the attempt fails at once, as behind a firewall.
            self.attempt_failed(now, Failure::Network(FailureKind::Local), out);
            return;
        }
        let timeout = match self.transport {
            Transport::Ws => p.connect_timeout,
            Transport::LongPoll => profile::LONGPOLL_CONNECT_TIMEOUT,
        };
        self.attempt_deadline = Some(now + timeout);
        // Android and Unity call the provider before every automatic attempt.
        let retry = self.attempts > 1;
        let fetch_token = self.cfg.provider && (fetch || self.need_refresh || (retry && p.refresh_every_reconnect));
        out.push(Command::Connect {
            transport: self.transport,
            fetch_token,
            reconnect,
        });
    }

    fn on_connected(&mut self, now: Instant, out: &mut Vec<Command>) {
        if self.state != State::Connecting {
            return;
        }
        let started = self.attempt_started.take().unwrap_or(now);
        out.push(Command::Measure(Measure::Connect(self.transport, now - started)));
        if let Some(t) = self.drop_detected.take() {
            out.push(Command::Measure(Measure::Reconnect(now - t)));
        }
        if let Some(t) = self.refresh_started.take() {
            out.push(Command::Measure(Measure::TokenRefresh(now - t)));
        }
        let p = self.cfg.params;
        self.failures = 0;
        self.poll_failures = 0;
        self.reconnects_since_live = 0;
        self.need_refresh = false;
        self.pending_error = None;
        self.attempt_deadline = None;
        self.fallback_at = None;
        self.last_frame = now;
        self.last_health = now;
        self.pong_deadline = None;
        self.state = match self.transport {
            Transport::Ws => State::Live,
            Transport::LongPoll => State::LongPoll,
        };
        if self.state == State::Live {
            self.ping_at = Some(match p.cadence {
                HealthCadence::FixedImmediate => now,
                _ => now + p.health_every,
            });
        } else {
            out.push(Command::Poll);
        }
        out.push(if self.watched { Command::Recover } else { Command::Watch });
        self.watched = true;
        self.connected_ever = true;
        let kinds = [Behaviour::Typing, Behaviour::Read, Behaviour::Message];
        for (i, kind) in kinds.into_iter().enumerate() {
            if self.behave_at[i].is_none_or(|t| t <= now) {
                self.behave_at[i] = self.period(kind).map(|m| now + self.exp_delay(m));
            }
        }
    }

    fn on_connect_failed(&mut self, now: Instant, f: Failure, out: &mut Vec<Command>) {
        if self.state == State::Connecting {
            self.attempt_failed(now, f, out);
        }
    }

    fn attempt_failed(&mut self, now: Instant, f: Failure, out: &mut Vec<Command>) {
        let p = self.cfg.params;
        self.attempt_deadline = None;
        self.attempt_started = None;
        out.push(Command::Measure(Measure::ConnectFailure(match f {
            Failure::Network(kind) => Some(kind),
            _ => None,
        })));
        if let Failure::Api { code, close } = f {
            self.api_error_in_window = true;
            if self.cfg.provider && p.refreshes_on(code) {
                self.need_refresh = true;
                self.refresh_started.get_or_insert(now);
            } else if p.refreshes_on(code) {
                self.stop(StopReason::StaticTokenExpired, out);
                return;
            } else if self.gives_up_on(code, close) {
                self.stop(StopReason::ApiError(code), out);
                return;
            } else if self.connected_ever && p.final_on_server_1000 && close == Some(close::NORMAL) {
                self.stop(StopReason::ServerClosedNormally, out);
                return;
            }
        }
        self.failures = self.failures.saturating_add(1);
        self.back_off(now, out);
    }

    fn gives_up_on(&self, code: i32, close: Option<u16>) -> bool {
        let p = self.cfg.params;
        if p.unrecoverable_codes.contains(&code) {
            return true;
        }
        if p.profile == chatstorm_protocol::Profile::Swift {
            // Swift: 4xx errors are not retried; 5xx are.
            return (400..500).contains(&ErrorCode(code).http_status());
        }
        // JS and Flutter give up on any API error during the first connect; JS (§11.2 row
        // "after having been connected") keeps retrying later unless the close was 1000.
        let _ = close;
        !self.connected_ever && p.first_connect_error_fatal
    }

    fn back_off(&mut self, now: Instant, out: &mut Vec<Command>) {
        let unit = self.unit();
        let delay = if let Some(fixed) = self.cfg.fixed_backoff {
            fixed
        } else if self.cfg.params.backoff == Backoff::Unity {
            match self.cfg.unity.delay_after(self.failures) {
                Some(d) => d,
                None => {
                    // Unity's `Never`: the client stays disconnected for good.
                    self.stop(StopReason::GaveUp, out);
                    return;
                }
            }
        } else {
            self.cfg.params.retry_delay(self.failures, unit)
        };
        self.state = State::Backoff;
        self.retry_at = Some(now + delay);
    }

    fn fall_back(&mut self, now: Instant, out: &mut Vec<Command>) {
        self.fallback_at = None;
        if self.api_error_in_window {
            // API errors never trigger the fallback (§4.1); keep retrying the WebSocket.
            return;
        }
        if self.state == State::Connecting {
            out.push(Command::Abort);
        }
        out.push(Command::Measure(Measure::Fallback));
        self.transport = Transport::LongPoll;
        self.retry_at = None;
        let fetch = self.need_refresh;
        self.attempt(now, fetch, out);
    }

    fn on_frame(&mut self, now: Instant, health: bool) {
        if self.state != State::Live {
            return;
        }
        self.last_frame = now;
        if health {
            self.last_health = now;
            self.pong_deadline = None;
            if self.cfg.params.cadence == HealthCadence::AfterServerHealth {
                self.ping_at = Some(now + self.cfg.params.health_every);
            }
        }
    }

    fn on_error_frame(&mut self, now: Instant, code: i32, out: &mut Vec<Command>) {
        if self.state != State::Live {
            return;
        }
        self.last_frame = now;
        let p = self.cfg.params;
        if p.refreshes_on(code) && self.cfg.provider {
            self.need_refresh = true;
            self.refresh_started = Some(now);
            out.push(Command::Abort);
            self.lost(now, true, out);
        } else if p.refreshes_on(code) {
            out.push(Command::Abort);
            self.lost_without_retry(out);
            self.stop(StopReason::StaticTokenExpired, out);
        } else {
            // The close that follows decides (1000 is final for JS and Swift).
            self.pending_error = Some(code);
        }
    }

    /// Unity's HTTP code-40 path (U.4): close the socket with 1000 and let the scheduler reconnect
    /// at once (the provider is called on that reconnect); the driver then resends the request.
    fn on_rest_token_expired(&mut self, now: Instant, out: &mut Vec<Command>) {
        if self.state != State::Live {
            return;
        }
        out.push(Command::Close(close::NORMAL));
        self.lost_without_retry(out);
        self.drop_detected.get_or_insert(now);
        if self.cfg.provider {
            self.need_refresh = true;
            self.refresh_started.get_or_insert(now);
        }
        self.back_off(now, out);
    }

    fn on_closed(&mut self, now: Instant, code: Option<u16>, out: &mut Vec<Command>) {
        if self.state != State::Live {
            return;
        }
        let p = self.cfg.params;
        if code == Some(close::NORMAL) && p.final_on_server_1000 {
            self.lost_without_retry(out);
            self.stop(StopReason::ServerClosedNormally, out);
        } else if code == Some(close::NORMAL) && p.dead_rule == DeadRule::NoHealth && p.health == ClientHealth::Object {
            // Android: a 1000 close goes quiet until the health monitor notices (30 s without an ack).
            self.lost_without_retry(out);
            self.drop_detected = Some(now);
            self.state = State::Backoff;
            self.retry_at = Some((self.last_health + p.dead_after).max(now));
        } else {
            self.lost(now, true, out);
        }
    }

    fn lost_without_retry(&mut self, out: &mut Vec<Command>) {
        out.push(Command::Measure(Measure::Disconnect));
        self.ping_at = None;
        self.pong_deadline = None;
        self.pending_error = None;
    }

    /// A live connection was lost: count it and schedule the reconnect.
    fn lost(&mut self, now: Instant, count_failure: bool, out: &mut Vec<Command>) {
        self.lost_without_retry(out);
        self.drop_detected.get_or_insert(now);
        let p = self.cfg.params;
        if count_failure && p.backoff == Backoff::Standard {
            self.failures = self.failures.saturating_add(1);
        }
        self.back_off(now, out);
    }

    fn on_poll_ok(&mut self, now: Instant, out: &mut Vec<Command>) {
        if self.state == State::LongPoll {
            self.poll_failures = 0;
            if let Some(t) = self.refresh_started.take() {
                out.push(Command::Measure(Measure::TokenRefresh(now - t)));
            }
            out.push(Command::Poll);
        }
    }

    fn on_poll_failed(&mut self, now: Instant, code: Option<i32>, out: &mut Vec<Command>) {
        if self.state != State::LongPoll {
            return;
        }
        match code {
            Some(46) => {
                // The connection id is gone: connect again (new id, then recover).
                out.push(Command::Measure(Measure::Disconnect));
                self.drop_detected.get_or_insert(now);
                self.attempt(now, false, out);
            }
            Some(c) if c == 40 && !self.cfg.provider => self.stop(StopReason::StaticTokenExpired, out),
            // With a provider, JS's HTTP client refreshes and re-issues a poll on 40 for as long as
            // it takes (the driver did so, within its bound): never a reason to stop; poll again
            // after the back-off like any other failed poll.
            Some(c) if !ErrorCode(c).retryable() && c != 40 => {
                out.push(Command::Measure(Measure::Disconnect));
                self.stop(StopReason::ApiError(c), out);
            }
            _ => {
                self.poll_failures = self.poll_failures.saturating_add(1);
                let unit = self.unit();
                self.poll_retry_at = Some(now + self.cfg.params.retry_delay(self.poll_failures, unit));
            }
        }
    }

    fn on_action(&mut self, now: Instant, act: Act, out: &mut Vec<Command>) {
        match act {
            Act::DropSocket { abrupt, code } => {
                if self.is_live() {
                    out.push(if abrupt { Command::Abort } else { Command::Close(code) });
                    self.poll_retry_at = None;
                    self.lost(now, true, out);
                }
            }
            Act::RefuseWebsocket(d) => {
                self.refuse_until = Some(now + d);
                if self.state == State::Live {
                    out.push(Command::Abort);
                    self.lost(now, true, out);
                }
            }
            Act::ExpireToken => {
                if self.state == State::Live {
                    // Reconnect at once with the expired token; the server's code 40 then drives
                    // the SDK's refresh path, which is what this action exercises.
                    out.push(Command::Close(close::NORMAL));
                    self.lost_without_retry(out);
                    self.attempt(now, false, out);
                }
            }
            Act::Background(d) => {
                self.leave(out);
                if self.state != State::Stopped {
                    self.state = State::Disconnected;
                    self.resume_at = Some(now + d);
                }
            }
            Act::Stop => {
                self.leave(out);
                self.stop(StopReason::Requested, out);
            }
        }
    }

    /// Ends whatever is in progress without scheduling a reconnect.
    fn leave(&mut self, out: &mut Vec<Command>) {
        match self.state {
            State::Live | State::LongPoll => {
                out.push(Command::Close(close::NORMAL));
                self.lost_without_retry(out);
            }
            State::Connecting => out.push(Command::Abort),
            _ => {}
        }
        self.attempt_deadline = None;
        self.retry_at = None;
        self.poll_retry_at = None;
        self.fallback_at = None;
        self.attempt_started = None;
    }

    fn stop(&mut self, why: StopReason, out: &mut Vec<Command>) {
        self.state = State::Stopped;
        self.stop = Some(why);
        out.push(Command::Stopped(why));
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
