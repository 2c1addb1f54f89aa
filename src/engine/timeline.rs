//! The scenario's timeline carried out at its offsets: server-side faults through the mock's
//! fault control, client-side ones broadcast to every user (each user decides with the seed
//! whether the action's fraction picks it, so no per-user channels exist). Users listen on one of
//! two channels, web (`js`) or mobile (every other profile), so that what only mobile apps do
//! (going to the background) reaches only them.

use super::fault::FaultClient;
use super::figures::TimelineMark;
use crate::metrics::Recorder;
use crate::scenario::{Action, Close, Scenario, Side};
use crate::user::UserAction;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The broadcast payload: (action sequence number, action).
pub type Broadcast = broadcast::Sender<(u64, UserAction)>;

/// Whether a profile is a mobile app's (goes to the background): every SDK but the web one.
pub fn is_mobile(profile: crate::scenario::Profile) -> bool {
    profile != crate::scenario::Profile::Js
}

/// The two channels timeline actions reach users on: web users and mobile users.
#[derive(Clone)]
pub struct Audience {
    web: Broadcast,
    mobile: Broadcast,
}

impl Default for Audience {
    fn default() -> Self {
        Audience::new()
    }
}

impl Audience {
    /// Two channels of 64 actions each (a lagging user skips what it missed).
    pub fn new() -> Audience {
        Audience {
            web: broadcast::channel(64).0,
            mobile: broadcast::channel(64).0,
        }
    }

    /// The channel a user of `profile` listens on.
    pub fn subscribe(&self, profile: crate::scenario::Profile) -> broadcast::Receiver<(u64, UserAction)> {
        if is_mobile(profile) {
            self.mobile.subscribe()
        } else {
            self.web.subscribe()
        }
    }

    /// Sends to every user; returns how many users listen.
    pub fn send_all(&self, seq: u64, action: UserAction) -> usize {
        let web = self.web.send((seq, action.clone())).unwrap_or(0);
        web + self.mobile.send((seq, action)).unwrap_or(0)
    }

    /// Sends to the mobile users only; returns how many listen.
    pub fn send_mobile(&self, seq: u64, action: UserAction) -> usize {
        self.mobile.send((seq, action)).unwrap_or(0)
    }
}

/// The marks carried out so far, shared with the runner.
pub type Marks = Arc<Mutex<Vec<TimelineMark>>>;

/// Runs the timeline until its end or `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    scenario: Arc<Scenario>,
    start: Instant,
    fault: Option<FaultClient>,
    users: Audience,
    recorder: Recorder,
    marks: Marks,
    stop: CancellationToken,
) {
    let run_end = start + scenario.run_length();
    for (seq, event) in scenario.timeline.iter().enumerate() {
        let at = start + event.at;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(at) => {}
        }
        let seq = seq as u64;
        let salt = crate::seed::hash3(scenario.seed, 0x7469_6d65, seq);
        let detail = match &event.action {
            Action::DropSockets {
                fraction,
                side: Side::Server,
                close,
            } => {
                let code = match close {
                    Close::Code(c) => Some(*c),
                    Close::Abrupt => None,
                };
                let label = format!("drop_sockets {}% server {}", pct(*fraction), close_text(*close));
                let storm = recorder.begin_storm(label, at.into_std(), 0);
                let r = match &fault {
                    Some(f) => outcome(f.drop_sockets(*fraction, code, salt).await),
                    None => "skipped: no fault control".to_owned(),
                };
                storm.extend_window(Instant::now().into_std());
                r
            }
            Action::DropSockets {
                fraction,
                side: Side::Client,
                close,
            } => {
                let label = format!("drop_sockets {}% client {}", pct(*fraction), close_text(*close));
                recorder.begin_storm(label, at.into_std(), 0);
                let (abrupt, code) = match close {
                    Close::Code(c) => (false, *c),
                    Close::Abrupt => (true, 1006),
                };
                send(
                    &users,
                    seq,
                    UserAction::DropSocket {
                        fraction: *fraction,
                        abrupt,
                        code,
                    },
                )
            }
            Action::ExpireTokens {
                fraction,
                side: Side::Server,
            } => match &fault {
                Some(f) => {
                    let picked = (*fraction < 1.0).then(|| picked_ids(&scenario, salt, *fraction));
                    outcome(f.expire_tokens(picked).await)
                }
                None => "skipped: no fault control".to_owned(),
            },
            Action::ExpireTokens {
                fraction,
                side: Side::Client,
            } => send(&users, seq, UserAction::ExpireToken { fraction: *fraction }),
            Action::BlockWebsocket { length } => match &fault {
                Some(f) => {
                    let length = length.unwrap_or_else(|| run_end.saturating_duration_since(Instant::now()));
                    outcome(f.refuse_upgrades(length).await)
                }
                None => "skipped: no fault control".to_owned(),
            },
            Action::RefuseWebsocket { fraction, length } => {
                let length = length.unwrap_or_else(|| run_end.saturating_duration_since(Instant::now()));
                send(
                    &users,
                    seq,
                    UserAction::RefuseWebsocket {
                        fraction: *fraction,
                        for_: length,
                    },
                )
            }
            Action::HalfOpen { fraction, length } => match &fault {
                Some(f) => {
                    let picked = (*fraction < 1.0).then(|| picked_ids(&scenario, salt, *fraction));
                    let r = outcome(f.half_open(picked).await);
                    if let Some(length) = length {
                        let (f, stop) = (f.clone(), stop.clone());
                        let length = *length;
                        tokio::spawn(async move {
                            tokio::select! { _ = stop.cancelled() => {}, _ = tokio::time::sleep(length) => {} }
                            let _ = f.half_open(Some(Vec::new())).await;
                        });
                    }
                    r
                }
                None => "skipped: no fault control".to_owned(),
            },
            Action::AddLatency { delay, length, .. } => match &fault {
                Some(f) => {
                    let r = outcome(f.latency(*delay).await);
                    if let Some(length) = length {
                        let (f, stop) = (f.clone(), stop.clone());
                        let length = *length;
                        tokio::spawn(async move {
                            tokio::select! { _ = stop.cancelled() => {}, _ = tokio::time::sleep(length) => {} }
                            let _ = f.latency(Duration::ZERO).await;
                        });
                    }
                    r
                }
                None => "skipped: no fault control".to_owned(),
            },
            Action::Background { fraction, length } => {
                let label = format!(
                    "background {}% of mobile users for {}",
                    pct(*fraction),
                    humantime::format_duration(*length)
                );
                let wave = recorder.begin_wave(label, at.into_std(), *length);
                let action = UserAction::Background {
                    fraction: *fraction,
                    for_: *length,
                };
                let desc = format!("{action:?}");
                let n = users.send_mobile(seq, action);
                wave.extend_window(Instant::now().into_std());
                format!("{desc} sent to {n} mobile users")
            }
            Action::SetPrivacy {
                fraction,
                typing_indicators,
                read_receipts,
                ..
            } => send(
                &users,
                seq,
                UserAction::SetPrivacy {
                    fraction: *fraction,
                    typing: *typing_indicators,
                    read: *read_receipts,
                },
            ),
        };
        if let Ok(mut m) = marks.lock() {
            let took = start.elapsed().saturating_sub(event.at);
            m.push(TimelineMark {
                at_ms: event.at.as_millis() as u64,
                action: event.action.name().to_owned(),
                detail: if took > Duration::from_millis(100) {
                    format!("{detail} (carried out in {} ms)", took.as_millis())
                } else {
                    detail
                },
            });
        }
    }
}

fn send(users: &Audience, seq: u64, action: UserAction) -> String {
    let desc = format!("{action:?}");
    match users.send_all(seq, action) {
        0 => format!("{desc}: no user was running"),
        n => format!("{desc} sent to {n} users"),
    }
}

fn outcome(r: Result<serde_json::Value, super::fault::FaultCallError>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("failed: {e}"),
    }
}

fn pct(f: f64) -> String {
    format!("{}", (f * 1000.0).round() / 10.0)
}

fn close_text(c: Close) -> String {
    match c {
        Close::Code(code) => format!("close {code}"),
        Close::Abrupt => "abrupt".to_owned(),
    }
}

/// The ids of the users a fraction picks (for server-side actions that take a user list).
fn picked_ids(scenario: &Scenario, salt: u64, fraction: f64) -> Vec<String> {
    (0..scenario.users.count)
        .filter(|&i| crate::seed::picks(scenario.seed, salt, i, fraction))
        .map(|i| scenario.users.id.id(i))
        .collect()
}
