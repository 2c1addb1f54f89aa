//! Raw model -> [`Scenario`]: fills defaults, checks every value and every cross-field rule,
//! and reports every problem with its place. This file holds the walk over the whole file,
//! the shared helpers ([`Check`]) and `behaviour`; the other sections are checked in
//! `validate_users.rs`, `validate_load.rs` and `validate_verdict.rs`.

use super::check::{Check, MAX_USERS, value};
use super::de::{At, Sp};
use super::model::*;
use super::raw::*;
use super::{validate_users, validate_verdict};

/// Validates the whole file. `root` is where the top-level mapping starts.
pub(crate) fn scenario(check: &mut Check<'_>, raw: &RawScenario, root: &At, default_name: &str) -> Option<Scenario> {
    // The name becomes the run folder's name (crate::run_folder): only a plain file name passes.
    let name = match &raw.name {
        Some(sp) => match crate::run_folder::check_plain(&sp.value) {
            Ok(n) => Some(n.to_owned()),
            Err(e) => {
                check.report(&sp.at, e.to_string());
                None
            }
        },
        None => Some(default_name.to_owned()),
    };
    let plain = raw
        .users
        .as_ref()
        .and_then(|u| u.value.kind.as_ref())
        .is_some_and(|k| k.value == RawUserKind::PlainWebsocket);
    if plain {
        // Plain users only connect and hold: what would make them act is refused, not ignored.
        for (key, at) in [
            ("behaviour", raw.behaviour.as_ref().map(|s| &s.at)),
            ("timeline", raw.timeline.as_ref().map(|s| &s.at)),
        ] {
            if let Some(at) = at {
                check.report(
                    at,
                    format!("`{key}` applies to stream users; plain-websocket users only connect and hold"),
                );
            }
        }
    }
    let target = validate_users::target(check, raw.target.as_ref(), plain);
    let users = match &raw.users {
        Some(sp) => validate_users::users(check, sp, target.as_ref().map(|(_, source)| source)),
        None => {
            check.missing(root, "users", "{ count: 100 }");
            None
        }
    };
    // Read on its own, so that a broken `users.id` does not hide `ramp: {to}` > `count`.
    let user_count = raw
        .users
        .as_ref()
        .and_then(|u| u.value.count.as_ref())
        .map(|c| c.value)
        .filter(|c| (1..=MAX_USERS).contains(c));
    let channels = validate_users::channels(check, raw.channels.as_ref(), user_count);
    let load = match &raw.load {
        Some(sp) => super::validate_load::load_plan(check, sp, user_count),
        None => {
            check.missing(root, "load", "[{ ramp: { to: 100, over: 10s } }, { hold: 1m }]");
            None
        }
    };
    let duration = raw.duration.as_ref().and_then(|sp| check.positive_duration(sp));
    // Cross-field: the timeline is checked against the run's length only when it is known
    // (a stage that failed to decode is missing from the list, so the sum would be wrong).
    let run_length = if check.is_poisoned("duration") || check.is_poisoned("load") {
        None
    } else {
        load.as_ref().map(|plan| match duration {
            Some(cap) => cap.min(plan.total()),
            None => plan.total(),
        })
    };
    let timeline = super::validate_load::timeline(
        check,
        raw.timeline.as_ref(),
        run_length,
        target.as_ref().map(|(t, _)| t.is_embedded()),
    );
    let behaviour = behaviour(check, raw.behaviour.as_ref());
    if let Some(u) = &users {
        backgrounds_need_mobile_users(check, raw, &u.profile);
    }
    let thresholds = validate_verdict::thresholds(check, raw.thresholds.as_ref());
    let conformance = validate_verdict::conformance(check, raw.conformance.as_ref());
    let checks = validate_verdict::checks(check, raw.checks.as_ref());
    if !check.problems.is_empty() {
        return None;
    }
    Some(Scenario {
        name: name?,
        description: value(&raw.description),
        seed: value(&raw.seed).unwrap_or(1),
        target: target?.0,
        users: users?,
        channels: channels?,
        load: load?,
        behaviour,
        timeline: timeline?,
        thresholds,
        conformance,
        duration,
        checks,
    })
}

/// Only mobile apps go to the background: a background behaviour or wave needs a mobile profile
/// (android, swift, flutter, unity) in `users.profile`.
fn backgrounds_need_mobile_users(check: &mut Check<'_>, raw: &RawScenario, mix: &ProfileMix) {
    if mix.weights.iter().any(|(p, _)| *p != Profile::Js) {
        return;
    }
    const WHY: &str = "only mobile apps go to the background and users.profile has no mobile profile; add android, swift, flutter or unity to the mix, e.g. {js: 70, android: 30}";
    let behaviour = raw
        .behaviour
        .as_ref()
        .and_then(|b| b.value.background.as_ref())
        .map(|b| b.at.clone());
    let waves = raw
        .timeline
        .iter()
        .flat_map(|t| t.value.iter())
        .filter_map(|e| e.value.background.as_ref().map(|b| b.at.clone()));
    for at in behaviour.into_iter().chain(waves).collect::<Vec<_>>() {
        if !check.is_poisoned(&at.path) {
            check.report(&at, WHY);
        }
    }
}

fn behaviour(check: &mut Check<'_>, raw: Option<&Sp<RawBehaviour>>) -> Behaviour {
    let Some(sp) = raw else {
        return Behaviour::default();
    };
    let b = &sp.value;
    let every = |check: &mut Check<'_>, e: &Option<Sp<Scalar>>, parent: &At| match e {
        Some(e) => check.positive_duration(e),
        None => {
            check.missing(parent, "every", "30s");
            None
        }
    };
    let typing = b
        .typing
        .as_ref()
        .and_then(|t| every(check, &t.value.every, &t.at))
        .map(|every| Every { every });
    let read = b
        .read
        .as_ref()
        .and_then(|t| every(check, &t.value.every, &t.at))
        .map(|every| Every { every });
    let message = b.message.as_ref().and_then(|m| {
        let bytes = match &m.value.bytes {
            Some(n) if n.value == 0 || n.value > 5_000 => {
                check.report(&n.at, "message text is 1 to 5000 bytes");
                64
            }
            Some(n) => n.value,
            None => 64,
        };
        every(check, &m.value.every, &m.at).map(|every| MessageBehaviour { every, bytes })
    });
    let background = b.background.as_ref().and_then(|g| {
        let fraction = check.fraction(&g.value.fraction, 1.0);
        let e = every(check, &g.value.every, &g.at);
        let length = match &g.value.for_ {
            Some(f) => check.positive_duration(f),
            None => {
                check.missing(&g.at, "for", "20s");
                None
            }
        };
        Some(Background {
            fraction,
            every: e?,
            length: length?,
        })
    });
    Behaviour {
        typing,
        read,
        message,
        background,
    }
}
