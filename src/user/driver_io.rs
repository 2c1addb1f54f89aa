//! The driver's traffic: frames and events received (health, errors, closes, stamped deliveries),
//! client health checks, long-poll polls, timeline actions, and the one-at-a-time REST job queue.

use super::*;
use crate::user::delivery::{Delivered, Receipt};
use crate::user::http::StreamAuth;
use crate::user::profile::RestExpired;
use chatstorm_protocol::limits as protocol_limits;

/// A text frame longer than this may have grown the WebSocket's read buffer past the 512 bytes
/// the config asks for (see [`crate::user::metered`]).
const GIVE_BACK_ABOVE: usize = protocol_limits::CLIENT_READ_BUFFER / 2;

impl Driver {
    /// Rebuilds the WebSocket over the same socket when nothing is buffered in it, so that the
    /// read buffer a large message grew goes back to the allocator (about 3 KB per active user)
    /// instead of staying with the connection for its life. Costs a few small allocations per
    /// large message; a connection with buffered bytes (or fragmented messages) keeps its buffer.
    async fn give_back_read_buffer(&mut self) {
        let Some(ws) = self.ws.take_if(|ws| ws.get_ref().drained()) else {
            return;
        };
        let stream = (*ws).into_inner().restart();
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            stream,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            Some(transport::ws_config()),
        )
        .await;
        self.ws = Some(Box::new(ws));
    }

    pub(super) async fn on_frame(&mut self, f: FrameIn) {
        match f {
            FrameIn::Text(text) => {
                let large = text.len() > GIVE_BACK_ABOVE;
                self.ctx.deliveries.heard(self.spec.index, self.now_us());
                match ServerEvent::parse(text.as_str()) {
                    Ok(ServerEvent::ConnectionError(e)) => {
                        self.ctx.recorder.error_code(u32::try_from(e.error.code).unwrap_or(0));
                        self.feed(Input::ErrorFrame(e.error.code)).await;
                    }
                    Ok(ev) => {
                        let health = matches!(ev, ServerEvent::HealthCheck(_));
                        self.on_event(&ev);
                        drop(ev);
                        self.feed(Input::Frame { health }).await;
                    }
                    // Garbage still proves the socket is alive (JS arms its timer on any message).
                    Err(_) => self.feed(Input::Frame { health: false }).await,
                }
                if large {
                    self.give_back_read_buffer().await;
                }
            }
            FrameIn::Close(code) => {
                self.ws = None;
                if let Some(c) = code {
                    self.ctx.recorder.close_code(c);
                }
                self.feed(Input::Closed(code)).await;
            }
            FrameIn::Control => {}
            FrameIn::Gone => {
                self.ws = None;
                self.feed(Input::Closed(None)).await;
            }
        }
    }

    /// Books a received event: counters, observer, and the delivery latency of stamped ones.
    pub(super) fn on_event(&mut self, ev: &ServerEvent) {
        self.report.events_received += 1;
        if matches!(self.params.recovery, Recovery::Sync | Recovery::SyncAndRewatch)
            && let Some(t) = ev.created_at().and_then(chatstorm_protocol::time::parse_rfc3339)
            && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
        {
            self.last_event_us = self.last_event_us.max(d.as_micros() as u64);
        }
        self.ctx.recorder.count(Counter::EventsReceived);
        if self.live == Some(Transport::LongPoll) {
            self.ctx.recorder.count(Counter::LongpollEventsReceived);
        }
        if let Some(o) = &self.ctx.observer {
            o.on_event(self.spec.index, ev);
        }
        match ev {
            ServerEvent::TypingStart(e) => {
                if let Some(s) = Stamp::from_object(&e.extra) {
                    self.receipt(Kind::Typing, s, &e.cid);
                }
            }
            ServerEvent::MessageNew(e) => {
                if let Some(s) = e.message.as_object().and_then(Stamp::from_object) {
                    self.receipt(Kind::Message, s, &e.cid);
                }
            }
            ServerEvent::MessageRead(e) => {
                let d = &self.ctx.deliveries;
                let stamp = d
                    .user(&e.user.id)
                    .zip(d.channel(&e.cid))
                    .and_then(|(reader, ch)| d.read_stamp(ch, reader, self.spec.index));
                if let Some(s) = stamp {
                    self.receipt(Kind::Read, s, &e.cid);
                }
            }
            _ => {}
        }
    }

    fn receipt(&mut self, kind: Kind, stamp: Stamp, cid: &str) {
        let d = &self.ctx.deliveries;
        let ch = d.channel(cid).unwrap_or(u32::MAX);
        let latency = std::time::Duration::from_micros(self.now_us().saturating_sub(stamp.t_us));
        let metric = match kind {
            Kind::Typing => Metric::DeliveryTyping,
            Kind::Read => Metric::DeliveryRead,
            Kind::Message => Metric::DeliveryMessage,
        };
        self.ctx.recorder.record(metric, latency);
        // A `message.read` carries no stamp of its own (it is matched to a remembered read), so
        // only typing and messages, which carry theirs, can be judged out of order.
        let out_of_order = kind != Kind::Read && self.order.out_of_order(kind, stamp.user, stamp.seq);
        if out_of_order {
            self.ctx.recorder.count(Counter::EventsOutOfOrder);
        }
        let duplicate = match d.receipt(kind, stamp, self.spec.index, ch) {
            Receipt::Leak(leak) => {
                self.ctx.recorder.count(Counter::PrivacyLeaks);
                if let Some(o) = &self.ctx.observer {
                    o.on_leak(leak);
                }
                return;
            }
            Receipt::Ignored => return,
            Receipt::Fresh => false,
            Receipt::Duplicate => true,
        };
        if let Some(o) = &self.ctx.observer {
            o.on_receipt(Delivered {
                kind,
                seq: stamp.seq,
                sender: stamp.user,
                receiver: self.spec.index,
                channel: ch,
                duplicate,
                out_of_order,
            });
        }
    }

    pub(super) async fn send_health(&mut self) {
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let msg = match self.params.health {
            ClientHealth::JsArray => Message::text(event::client_health_check_js(&format!(
                "{}--{:016x}",
                self.spec.id, self.spec.seed
            ))),
            ClientHealth::Object => Message::text(event::client_health_check_object(&self.connection_id)),
            ClientHealth::Unity => Message::text(event::client_health_check_unity()),
            ClientHealth::Ping => Message::Ping(bytes::Bytes::new()),
        };
        if ws.send(msg).await.is_err() {
            // Fed on the next turn of the loop (feeding from here would recurse).
            self.ws = None;
            self.deferred = Some(Input::Closed(None));
        }
    }

    /// Starts one poll. Code 40 is handled as JS's HTTP client handles it for any request: with a
    /// provider, fetch a token and re-issue the same poll (same connection id), waiting
    /// `retryInterval(consecutive failures)` from the second try on; the machine then sees what
    /// the last try got (events, 46 when the server forgot the connection meanwhile, ...).
    pub(super) fn start_poll(&mut self) {
        let (ctx, spec) = (self.ctx.clone(), self.spec.clone());
        let (token, id) = (self.token.clone().unwrap_or_default(), self.connection_id.clone());
        self.poll = Some(Box::pin(async move {
            fn auth<'a>(ctx: &'a UserCtx, spec: &'a UserSpec, id: &'a str, token: &'a str) -> StreamAuth<'a> {
                StreamAuth {
                    api_key: &ctx.target.api_key,
                    user_id: &spec.id,
                    connection_id: id,
                    token,
                    user_agent: spec.profile.user_agent(),
                }
            }
            let base = &ctx.target.http_base;
            let poll = |token: String| {
                let (ctx, spec, id) = (&ctx, &spec, &id);
                async move {
                    let started = Instant::now();
                    let r = transport::longpoll_poll(&ctx.http, base, auth(ctx, spec, id, &token)).await;
                    ctx.recorder.record(Metric::LongpollPoll, started.elapsed());
                    r
                }
            };
            let mut r = poll(token).await;
            let mut new_token = None;
            let first_40 = Instant::now();
            let mut failures = 0u32;
            while matches!(r, PollResult::Api(40))
                && spec.token.mode == TokenMode::Provider
                && failures < rest::JS_REFRESH_RESENDS
            {
                if failures > 0 {
                    let unit = crate::user::selected_unit(spec.seed, u64::from(failures) ^ 0x5EED_0046);
                    tokio::time::sleep(profile::params(spec.profile).retry_delay(failures, unit)).await;
                }
                failures += 1;
                let a = &ctx.target.auth;
                let Ok(t) = auth::fetch(a, &ctx.http, &ctx.recorder, &spec.id, spec.token.ttl, spec.seed).await else {
                    break;
                };
                r = poll(t.clone()).await;
                new_token = Some((t, first_40));
            }
            (r, new_token)
        }));
    }

    pub(super) async fn on_poll(&mut self, (r, new_token): PollDone) {
        self.poll = None;
        if let Some((token, asked_at)) = new_token {
            self.token = Some(token);
            // The refresh is measured like a WebSocket one: from the code 40 until live again
            // (this poll answered, or the reconnect it leads to).
            self.feed(Input::PollTokenRefreshed(asked_at)).await;
        }
        match r {
            PollResult::Events(events) => {
                self.ctx.deliveries.heard(self.spec.index, self.now_us());
                for v in events {
                    if let Ok(ev) = ServerEvent::from_value(v) {
                        self.on_event(&ev);
                    }
                }
                self.feed(Input::PollOk).await;
            }
            PollResult::Api(code) => {
                self.ctx.recorder.error_code(u32::try_from(code).unwrap_or(0));
                self.feed(Input::PollFailed(Some(code))).await;
            }
            PollResult::Network => self.feed(Input::PollFailed(None)).await,
        }
    }

    pub(super) fn spawn_longpoll_close(&self) {
        let (ctx, spec) = (self.ctx.clone(), self.spec.clone());
        let (token, id) = (self.token.clone().unwrap_or_default(), self.connection_id.clone());
        tokio::spawn(async move {
            let auth = StreamAuth {
                api_key: &ctx.target.api_key,
                user_id: &spec.id,
                connection_id: &id,
                token: &token,
                user_agent: spec.profile.user_agent(),
            };
            transport::longpoll_close(&ctx.http, &ctx.target.http_base, auth).await;
        });
    }

    pub(super) async fn on_action(&mut self, seq: u64, action: UserAction) {
        let pick = |f: f64| selected(self.spec.seed, seq, f);
        let act = match action {
            UserAction::DropSocket { fraction, abrupt, code } if pick(fraction) => Act::DropSocket { abrupt, code },
            UserAction::RefuseWebsocket { fraction, for_ } if pick(fraction) => Act::RefuseWebsocket(for_),
            UserAction::ExpireToken { fraction } if pick(fraction) => {
                let secret = match &self.ctx.target.auth {
                    crate::target::TargetAuth::Secret(s) => Some(s.as_slice()),
                    crate::target::TargetAuth::TokenEndpoint(_) => self.ctx.target.secret.as_deref(),
                };
                match auth::expired(secret, &self.spec.id) {
                    Some(t) => self.token = Some(t),
                    None => return,
                }
                Act::ExpireToken
            }
            UserAction::SetPrivacy { fraction, typing, read } if pick(fraction) => {
                let (t0, r0) = self.pending.privacy.unwrap_or((None, None));
                self.pending.privacy = Some((typing.or(t0), read.or(r0)));
                return;
            }
            UserAction::Background { fraction, for_ } if pick(fraction) => Act::Background(for_),
            UserAction::Stop => Act::Stop,
            _ => return,
        };
        self.feed(Input::Action(act)).await;
    }

    /// Starts the next REST job when none is in flight and the user is live (a REST call needs the
    /// connection id). Order: privacy, recovery, watches, then behaviours.
    pub(super) fn start_job(&mut self) {
        if self.rest.is_some() || !self.m.is_live() {
            return;
        }
        let Some(job) = self.next_job() else {
            return;
        };
        let token = self.token.clone().unwrap_or_default();
        let fut = rest::run(
            self.ctx.clone(),
            self.spec.clone(),
            job,
            token,
            self.connection_id.clone(),
        );
        self.rest = Some(Box::pin(fut));
    }

    fn next_job(&mut self) -> Option<Job> {
        let p = &mut self.pending;
        if let Some((typing, read)) = p.privacy.take() {
            return Some(Job::Privacy(typing, read));
        }
        if let Some((job, deadline)) = p.resend.take() {
            if Instant::now() <= deadline {
                p.resending = true;
                return Some(job);
            }
            // Not reconnected in time: the SDK throws (TimeoutException), the call is lost.
            self.report.rest_failures += 1;
            self.ctx.recorder.count(Counter::RestFailures);
        }
        let p = &mut self.pending;
        if let Some(since) = p.sync.take() {
            return Some(Job::Sync(since));
        }
        if std::mem::take(&mut p.recover_query) {
            return Some(Job::RecoverQuery);
        }
        if let Some(i) = p.watch_from {
            let next = i + 1;
            p.watch_from = (usize::from(next) < self.spec.channels.len()).then_some(next);
            if usize::from(i) < self.spec.channels.len() {
                return Some(Job::Watch(i));
            }
        }
        let n = self.spec.channels.len();
        for b in [Behaviour::Message, Behaviour::Read, Behaviour::Typing] {
            if !std::mem::take(&mut self.pending.behave[b as usize]) || n == 0 {
                continue;
            }
            if b == Behaviour::Typing && !self.m.may_type() {
                continue;
            }
            let i = ((self.unit() * n as f64) as usize).min(n - 1);
            let d = &self.ctx.deliveries;
            let ch = d.channel(&self.spec.channels[i]).unwrap_or(u32::MAX);
            let kind = match b {
                Behaviour::Typing => Kind::Typing,
                Behaviour::Read => Kind::Read,
                Behaviour::Message => Kind::Message,
            };
            let stamp = d.send(kind, self.spec.index, ch, self.now_us());
            self.ctx.recorder.count(Counter::EventsSent);
            self.report.events_sent += 1;
            let i = i as u16;
            return Some(match b {
                Behaviour::Typing => Job::Typing(i, stamp),
                Behaviour::Read => Job::Read(i, stamp),
                Behaviour::Message => Job::Message(i, stamp),
            });
        }
        None
    }

    pub(super) async fn on_rest_done(&mut self, done: rest::Done) {
        self.rest = None;
        if let Some(t) = done.new_token.clone() {
            self.token = Some(t);
        }
        let ok = done.ok();
        let code = done.result.as_ref().ok().and_then(|r| r.error_code());
        if let Some(o) = &self.ctx.observer {
            let status = done.result.as_ref().ok().map(|r| r.status);
            o.on_rest(self.spec.index, done.job.endpoint(), status, code);
        }
        let resent = std::mem::take(&mut self.pending.resending);
        if code == Some(40) && !resent && self.params.rest_expired == RestExpired::ReconnectAndResend {
            // Unity: reconnect (new token from the provider), then send this request once more.
            self.pending.resend = Some((done.job, Instant::now() + profile::UNITY_RESEND_WAIT));
            self.feed(Input::RestTokenExpired).await;
            return;
        }
        if !ok {
            self.report.rest_failures += 1;
        }
        if let Job::Typing(_, stamp) | Job::Read(_, stamp) | Job::Message(_, stamp) = done.job {
            self.ctx.deliveries.answered(stamp.seq, ok, self.now_us());
        }
        // Watches count only for the connection they were made on (a reconnect may have come
        // between the call and its answer).
        let live_here = self.m.is_live() && done.connection_id == self.connection_id;
        match done.job {
            Job::Watch(i) if ok && live_here => self.mark_watched(usize::from(i)),
            Job::RecoverQuery if ok && live_here => {
                for i in 0..self.spec.channels.len().min(profile::RECOVER_LIMIT) {
                    self.mark_watched(i);
                }
            }
            Job::Sync(_) if live_here => match self.params.recovery {
                // Unity: `/sync` with `watch:true` re-bound the channels; nothing is re-queried.
                Recovery::Sync if ok => {
                    for i in 0..self.spec.channels.len() {
                        self.mark_watched(i);
                    }
                }
                Recovery::Sync => {}
                _ => self.pending.watch_from = Some(0),
            },
            Job::Privacy(typing, read) if ok => {
                let now_us = self.now_us();
                self.ctx.deliveries.set_privacy(self.spec.index, typing, read, now_us);
                let mut p = self.privacy;
                p.merge_from(&PrivacySettings::with(
                    typing.unwrap_or(p.typing_enabled()),
                    read.unwrap_or(p.read_receipts_enabled()),
                ));
                self.privacy = p;
                self.report.privacy_updates += 1;
                self.m_own_typing(p.typing_enabled());
            }
            _ => {}
        }
    }

    fn mark_watched(&mut self, i: usize) {
        self.report.watches += 1;
        if i >= 64 || self.watched & (1 << i) != 0 {
            return;
        }
        self.watched |= 1 << i;
        if let Some(ch) = self.spec.channels.get(i).and_then(|c| self.ctx.deliveries.channel(c)) {
            self.ctx.deliveries.watch_started(self.spec.index, ch, self.now_us());
        }
    }
}
