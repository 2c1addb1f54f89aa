//! From the scenario to simulated users: each user's spec (id, profile, token, privacy,
//! channels, behaviour, seed) derived from the run seed and its index alone, the context all
//! users of this process share, and spawning one task per user (SDK users, or plain WebSocket
//! users through their own smaller task).

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
    let stride = (1..=count)
        .rev()
        .find(|s| gcd(*s, count) == 1 && *s <= count / 2 + 1)
        .unwrap_or(1);
    (0..per_user)
        .map(|k| format!("{}:ch-{}", scenario.channels.kind, (index + k * stride) % count))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The spec of user `index`.
pub fn spec(scenario: &Scenario, index: u32, intended: Option<Instant>) -> UserSpec {
    let seed = crate::seed::user_seed(scenario.seed, index);
    let profile = scenario
        .users
        .profile
        .pick(crate::seed::hash3(scenario.seed, 0x7072_6f66, u64::from(index)));
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
    crate::conformance::Observer::for_run(&scenario.conformance.watch, users, health)
}

/// The context shared by every user of this process.
///
/// # Errors
/// When the shared tables cannot be built.
pub async fn context(
    scenario: &Scenario,
    target: &Target,
    recorder: Recorder,
    start: Instant,
    shard: u32,
    observer: Option<crate::conformance::Observer>,
) -> anyhow::Result<Arc<UserCtx>> {
    // Plain users send and watch nothing: no delivery tables, no observer.
    let deliveries = match scenario.users.kind {
        UserKind::Stream => {
            let ids: Vec<String> = (0..scenario.users.count).map(|i| scenario.users.id.id(i)).collect();
            DeliveryTracker::new(&ids, &channel_cids(scenario))
        }
        UserKind::PlainWebsocket => DeliveryTracker::new(&[], &[]),
    };
    let sources = crate::sys::source_addresses(scenario.users.count as u32, 1 + (shard as u8).saturating_mul(4)).len();
    let observer = observer
        .filter(|_| scenario.users.kind == UserKind::Stream)
        .map(|o| Arc::new(Watch(o)) as Arc<dyn user::UserObserver>);
    Ok(Arc::new(UserCtx {
        target: target.clone(),
        recorder,
        http: user::http::new_client(),
        source_addrs: SourceAddrs::loopback(sources as u8),
        deliveries,
        observer,
        run_start: start,
    }))
}

/// Spawns user `index` into `tracker`, to be stopped at `stop_at` (open-model sessions and ramp
/// downs) or when `cancel` fires.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    tracker: &TaskTracker,
    scenario: &Scenario,
    ctx: &Arc<UserCtx>,
    index: u32,
    intended: Instant,
    stop_at: Option<Instant>,
    actions: broadcast::Receiver<(u64, UserAction)>,
    cancel: CancellationToken,
) {
    let spec = spec(scenario, index, Some(intended));
    let ctx = ctx.clone();
    // One user future in one place: an async block with the future in two branches would hold
    // room for it twice (the task would be twice the size: 2 KiB more per user).
    tracker.spawn(async move {
        let user = user::run_user(spec, ctx, actions, cancel.clone());
        tokio::pin!(user);
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
    });
}

/// Spawns a plain WebSocket user (`users.kind: plain-websocket`) into `tracker`. Its own task, apart
/// from [`spawn`]'s: a task is sized for the largest future it may hold, and the plain one is a
/// fraction of an SDK user's.
pub fn spawn_plain(
    tracker: &TaskTracker,
    ctx: &Arc<UserCtx>,
    intended: Instant,
    stop_at: Option<Instant>,
    cancel: CancellationToken,
) {
    tracker.spawn(user::plain::run(ctx.clone(), intended, stop_at, cancel));
}
