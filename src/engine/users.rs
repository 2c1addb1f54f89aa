//! From the scenario to simulated users: each user's spec (id, profile, token, privacy,
//! channels, behaviour, seed) derived from the run seed and its index alone, the context all
//! users of this process share, and spawning one task per user (SDK users, or plain WebSocket
//! users through their own smaller task).

use super::lanes::{Lanes, spawn_user};
use super::timeline::Audience;
use crate::metrics::Recorder;
use crate::scenario::{Scenario, TokenMode, UserKind};
use crate::target::Target;
use crate::user::{self, Behaviour, DeliveryTracker, SourceAddrs, TokenSpec, UserAction, UserCtx, UserSpec};
use chatstorm_protocol::PrivacySettings;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The channel ids of a run: `<type>:ch-<k>`.
pub fn channel_cids(scenario: &Scenario) -> Vec<String> {
    (0..scenario.channels.count)
        .map(|k| format!("{}:ch-{k}", scenario.channels.kind))
        .collect()
}

/// The channels user `index` watches: `members × channels / users` of them (at least one), spread
/// so that every channel gets about `members` watchers.
pub fn channels_of(scenario: &Scenario, index: u64) -> Vec<String> {
    let count = scenario.channels.count.max(1);
    let users = scenario.users.count.max(1);
    let per_user = (scenario.channels.members * count)
        .div_ceil(users)
        .clamp(1, count.min(30));
    // A stride co-prime with the count spreads one user's channels across the whole set.
    // The largest such stride not above half the count; searched from there down (this runs
    // three times per user: a scan from `count` cost 5 % of a 10,000-user run's CPU).
    let stride = (1..=count / 2 + 1).rev().find(|s| gcd(*s, count) == 1).unwrap_or(1);
    (0..per_user)
        .map(|k| format!("{}:ch-{}", scenario.channels.kind, (index + k * stride) % count))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The SDK profile of user `index` (the seed decides).
pub fn profile_of(scenario: &Scenario, index: u32) -> chatstorm_protocol::Profile {
    scenario
        .users
        .profile
        .pick(crate::seed::hash3(scenario.seed, 0x7072_6f66, u64::from(index)))
}

/// The spec of user `index`.
pub fn spec(scenario: &Scenario, index: u32, intended: Option<Instant>) -> UserSpec {
    let seed = crate::seed::user_seed(scenario.seed, index);
    let profile = profile_of(scenario, index);
    let p = &scenario.users.privacy;
    let b = &scenario.behaviour;
    UserSpec {
        index,
        id: scenario.users.id.id(u64::from(index)),
        profile,
        token: TokenSpec {
            mode: match scenario.users.token.mode {
                TokenMode::Provider => user::TokenMode::Provider,
                TokenMode::Static => user::TokenMode::Static,
            },
            ttl: scenario.users.token.ttl,
        },
        privacy: PrivacySettings {
            delivery_receipts: None,
            ..PrivacySettings::with(p.typing_indicators, p.read_receipts)
        },
        fallback: scenario.users.fallback,
        custom_bytes: scenario.users.custom_bytes as usize,
        channels: channels_of(scenario, u64::from(index)),
        behaviour: Behaviour {
            typing: b.typing.map(|e| e.every),
            read: b.read.map(|e| e.every),
            message: b.message.map(|m| m.every),
        },
        seed,
        intended_start: intended,
        unity: scenario.users.unity,
        fixed_backoff: scenario.users.backoff,
    }
}

/// Feeds what users observe into the conformance rules watched during a load run.
struct Watch(crate::conformance::Observer);

impl user::UserObserver for Watch {
    fn on_connected(&self, user: u32, _transport: user::Transport, connection_id: &str) {
        self.0.user_connected(user, connection_id);
    }
    fn on_event(&self, user: u32, event: &chatstorm_protocol::ServerEvent) {
        self.0.user_event(user, event);
    }
    fn on_leak(&self, leak: user::Leak) {
        self.0.receipt(
            leak.kind == user::delivery::Kind::Typing,
            leak.sender,
            leak.receiver,
            true,
        );
    }
    fn on_receipt(&self, d: user::Delivered) {
        use user::delivery::Kind;
        let what = match d.kind {
            Kind::Typing => "typing.start",
            Kind::Read => "message.read",
            Kind::Message => "message.new",
        };
        // A `message.read` carries no stamp of its own, so its order cannot be judged.
        let order = (d.kind != Kind::Read).then_some(d.out_of_order);
        self.0
            .receipt_delivered(what, d.seq, d.sender, d.receiver, d.channel, d.duplicate, order);
    }
    fn on_rest(&self, user: u32, _endpoint: crate::metrics::RestEndpoint, status: Option<u16>, code: Option<i32>) {
        self.0.user_rest(user, status, code);
    }
    fn on_connect_error(&self, user: u32, code: i32, close: Option<u16>) {
        self.0.user_connect_error(user, code, close);
    }
}

/// The conformance observer of a run: the scenario's watched rules, per-user state for its users.
pub fn observer(scenario: &Scenario) -> crate::conformance::Observer {
    let health = match &scenario.target {
        crate::scenario::TargetSpec::Embedded(m) => m.health_interval,
        crate::scenario::TargetSpec::Remote(_) => std::time::Duration::from_secs(30),
    };
    // Plain users report nothing to the rules: no per-user state for them.
    let users = match scenario.users.kind {
        UserKind::Stream => scenario.users.count as usize,
        UserKind::PlainWebsocket => 0,
    };
    // Faults that silence or delay the server's frames on purpose: health-check gaps across them
    // are not the server's (a half-open socket the SDK had not yet given up on showed a 50 s gap).
    let run_end = scenario.run_length();
    let silences = scenario.timeline.iter().filter_map(|e| match &e.action {
        crate::scenario::Action::HalfOpen { length, .. } => Some((e.at, length.map_or(run_end, |l| e.at + l))),
        crate::scenario::Action::AddLatency { delay, length, .. } => {
            Some((e.at, length.map_or(run_end, |l| e.at + l) + *delay))
        }
        _ => None,
    });
    crate::conformance::Observer::for_run(&scenario.conformance.watch, users, health).with_silences(silences)
}

/// The context shared by every user of this process.
pub fn context(
    scenario: &Scenario,
    target: &Target,
    recorder: Recorder,
    start: Instant,
    shard: u32,
    observer: Option<crate::conformance::Observer>,
    run_over: CancellationToken,
) -> Arc<UserCtx> {
    // Plain users send and watch nothing: no delivery tables, no observer.
    let deliveries = match scenario.users.kind {
        UserKind::Stream => {
            let ids: Vec<String> = (0..scenario.users.count).map(|i| scenario.users.id.id(i)).collect();
            let cids = channel_cids(scenario);
            let index: std::collections::HashMap<&str, u32> =
                cids.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
            let memberships: Vec<Vec<u32>> = (0..scenario.users.count)
                .map(|u| {
                    channels_of(scenario, u)
                        .iter()
                        .filter_map(|c| index.get(c.as_str()).copied())
                        .collect()
                })
                .collect();
            DeliveryTracker::with_members(&ids, &cids, &memberships)
        }
        UserKind::PlainWebsocket => DeliveryTracker::new(&[], &[]),
    };
    let first = 1 + u8::try_from(shard)
        .unwrap_or(u8::MAX)
        .saturating_mul(crate::sys::SOURCES_PER_SHARD);
    let source_addrs = match &target.source_ips {
        // `--source-ips`, checked against this process's users before the run.
        Some(ips) => SourceAddrs::explicit(ips.clone()),
        None => SourceAddrs::new(crate::sys::source_addresses(scenario.users.count as u32, first)),
    };
    let observer = observer
        .filter(|_| scenario.users.kind == UserKind::Stream)
        .map(|o| Arc::new(Watch(o)) as Arc<dyn user::UserObserver>);
    // REST slots from the descriptors the users leave free. An embedded mock that fits in this
    // process (the same rule as `EmbeddedMock::start`) holds a second descriptor per user and
    // per call in flight.
    let fd_limit = crate::sys::raise_fd_limit();
    let users = scenario.users.count;
    let fds_per_user = if target.is_mock && users * 2 + crate::sys::RESERVED_FDS <= fd_limit {
        2
    } else {
        1
    };
    // `CHATSTORM_REST_SLOTS` overrides the number (a diagnostic: it lets a test, or a user who
    // suspects the harness, see a queue in the harness reported as one).
    let slots = std::env::var("CHATSTORM_REST_SLOTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| user::http::rest_slots(fd_limit, users, fds_per_user));
    // `users.tls.resumption`: the resuming share's own configuration, beside the run's.
    let mut target = target.clone();
    target.tls = target
        .tls
        .take()
        .map(|t| t.with_resumption(scenario.users.tls_resumption, scenario.users.count));
    let http = user::http::HttpClient::with_tls(slots, Some(recorder.clone()), target.tls.clone());
    Arc::new(UserCtx {
        target,
        http,
        recorder,
        source_addrs,
        deliveries,
        observer,
        run_start: start,
        run_over,
    })
}

/// Spawns user `index` into `tracker`, to be stopped at `stop_at` (open-model sessions and ramp
/// downs) or when `cancel` fires. The user listens on its profile's channel of `audience`; its
/// task is tagged with its profile (see `crate::metrics::profile`); a mobile user picked by
/// `behaviour.background` also goes to the background now and then ([`Pauses`]).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    tracker: &TaskTracker,
    lanes: Option<&Lanes>,
    scenario: &Scenario,
    ctx: &Arc<UserCtx>,
    index: u32,
    intended: Instant,
    stop_at: Option<Instant>,
    audience: &Audience,
    cancel: CancellationToken,
) {
    let spec = spec(scenario, index, Some(intended));
    let profile = spec.profile;
    ctx.recorder.user_started(profile);
    let actions = audience.subscribe(profile);
    let pauses = Pauses::of(scenario, index, profile);
    let ctx = ctx.clone();
    match pauses {
        None => {
            let task = crate::metrics::profiled(profile, run(spec, ctx, actions, stop_at, cancel));
            spawn_user(tracker, lanes, index, task);
        }
        Some(p) => {
            let task = crate::metrics::profiled(profile, run_pausing(spec, ctx, actions, stop_at, cancel, p));
            spawn_user(tracker, lanes, index, task);
        }
    }
}

/// One user until it ends or `stop_at`. One user future in one place: an async block with the
/// future in two branches would hold room for it twice (2 KiB more per user). Boxed, and built
/// before this future: an `async fn` keeps room for each argument for its whole life, so the spec
/// (208 B) and an unboxed user future (copied from the argument into the body) would sit beside
/// the live one in every user's task.
fn run(
    spec: UserSpec,
    ctx: Arc<UserCtx>,
    actions: broadcast::Receiver<(u64, UserAction)>,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    let user = Box::pin(user::run_user(spec, ctx, actions, cancel.clone()));
    run_until(user, stop_at, cancel)
}

async fn run_until(
    mut user: std::pin::Pin<Box<impl std::future::Future<Output = user::UserReport> + Send>>,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
) {
    let stop = async move {
        match stop_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = &mut user => {}
        _ = stop => {
            cancel.cancel();
            user.await;
        }
    }
}

/// The sequence number of a user's own pauses (its fraction is 1: the user is always picked).
const PAUSE_SEQ: u64 = u64::MAX - 1;

/// `behaviour.background` for one mobile user: when it sends its app to the background and for
/// how long. Gaps between pauses are exponential around `every` (the first one uniform in
/// `[0, every)`, so that the pauses of many users spread over time), seeded per user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pauses {
    every: std::time::Duration,
    length: std::time::Duration,
    rng: u64,
}

impl Pauses {
    /// The pauses of user `index`, if it is a mobile user the background fraction picks.
    pub fn of(scenario: &Scenario, index: u32, profile: crate::scenario::Profile) -> Option<Pauses> {
        let b = scenario.behaviour.background?;
        let picked = super::timeline::is_mobile(profile)
            && crate::seed::picks(scenario.seed, 0x6267_7573, u64::from(index), b.fraction)
            && !b.every.is_zero();
        picked.then(|| Pauses {
            every: b.every,
            length: b.length,
            rng: crate::seed::hash3(scenario.seed, 0x7061_7573, u64::from(index)),
        })
    }

    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (crate::seed::mix(self.rng) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Time to the first pause.
    pub fn first(&mut self) -> std::time::Duration {
        self.every.mul_f64(self.unit())
    }

    /// Time from the start of one pause to the start of the next: the pause, then a gap.
    pub fn to_next(&mut self) -> std::time::Duration {
        let gap = (-(1.0 - self.unit()).ln()).min(10.0);
        self.length + self.every.mul_f64(gap)
    }
}

/// [`run`] for a user with pauses: the user listens on a channel of its own, which carries what
/// the shared channel says plus its own pauses. Only users with pauses pay for the channel.
async fn run_pausing(
    spec: UserSpec,
    ctx: Arc<UserCtx>,
    mut shared: broadcast::Receiver<(u64, UserAction)>,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
    mut pauses: Pauses,
) {
    let (own, actions) = broadcast::channel(8);
    let recorder = ctx.recorder.clone();
    // Boxed as in `run`; the spec argument stays beside it (208 B, only in users with pauses).
    let mut user = Box::pin(user::run_user(spec, ctx, actions, cancel.clone()));
    let mut shared_open = true;
    let mut next = Instant::now() + pauses.first();
    let stop = async {
        match stop_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut user => return,
            r = shared.recv(), if shared_open => match r {
                Ok(m) => {
                    let _ = own.send(m);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => shared_open = false,
            },
            () = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                if recorder.storm_at(now.into_std()).is_some() || recorder.wave_underway(now.into_std()) {
                    // A pause now would be counted in a storm's or wave's figures, or hold up a
                    // user coming back from a wave: wait it out.
                    next = now + crate::metrics::STORM_WINDOW;
                    continue;
                }
                let _ = own.send((PAUSE_SEQ, UserAction::Background { fraction: 1.0, for_: pauses.length }));
                next = now + pauses.to_next();
            }
            () = &mut stop => {
                cancel.cancel();
                user.await;
                return;
            }
        }
    }
}

/// Spawns a plain WebSocket user (`users.kind: plain-websocket`) into `tracker`. Its own task, apart
/// from [`spawn`]'s: a task is sized for the largest future it may hold, and the plain one is a
/// fraction of an SDK user's.
pub fn spawn_plain(
    tracker: &TaskTracker,
    lanes: Option<&Lanes>,
    ctx: &Arc<UserCtx>,
    index: u32,
    intended: Instant,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
) {
    spawn_user(
        tracker,
        lanes,
        index,
        user::plain::run(ctx.clone(), index, intended, stop_at, cancel),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Profile;
    use std::time::Duration;

    fn fleet() -> Scenario {
        let yaml = "users: {count: 400, profile: {js: 1, android: 1}}\nload: [{hold: 1m}]\nbehaviour:\n  background: {fraction: 0.25, every: 20s, for: 5s}\n";
        crate::scenario::parse("fleet.yaml", yaml).expect("valid")
    }

    #[test]
    fn a_seeded_share_of_the_mobile_users_pauses_and_no_web_user() {
        let s = fleet();
        let (mut web, mut mobile, mut pausing) = (0, 0, 0);
        for i in 0..400 {
            let profile = spec(&s, i, None).profile;
            let p = Pauses::of(&s, i, profile);
            match profile {
                Profile::Js => {
                    web += 1;
                    assert!(p.is_none(), "user {i} is a web user");
                }
                _ => {
                    mobile += 1;
                    pausing += u32::from(p.is_some());
                }
            }
            assert_eq!(p, Pauses::of(&s, i, profile), "the seed decides");
        }
        assert!(web > 100 && mobile > 100, "{web} {mobile}");
        let share = f64::from(pausing) / f64::from(mobile);
        assert!((0.15..0.35).contains(&share), "{pausing} of {mobile}");
    }

    #[test]
    fn pauses_come_around_every_and_last_their_length() {
        let s = fleet();
        let mut p = (0..400)
            .find_map(|i| Pauses::of(&s, i, Profile::Android))
            .expect("some user pauses");
        assert!(p.first() < Duration::from_secs(20));
        let gaps: Vec<Duration> = (0..2_000).map(|_| p.to_next()).collect();
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_secs(5)),
            "a pause lasts its length"
        );
        let mean = gaps.iter().sum::<Duration>() / 2_000;
        // The pause plus an exponential gap around `every`.
        assert!(
            mean > Duration::from_secs(23) && mean < Duration::from_secs(27),
            "{mean:?}"
        );
    }
}
