//! Validation of `load:` into one [`LoadPlan`] and of `timeline:` into sorted events, including
//! the refusal of server-side faults against a real target.

use super::check::Check;
use super::de::Sp;
use super::model::*;
use super::raw::*;
use super::tree::shorten;
use std::time::Duration;

/// Normalizes the stages: start offsets, user levels before and after, arrival rates.
pub(crate) fn load_plan(
    check: &mut Check<'_>,
    sp: &Sp<Vec<Sp<RawStage>>>,
    user_count: Option<u64>,
) -> Option<LoadPlan> {
    if sp.value.is_empty() && !check.is_poisoned(&sp.at.path) {
        check.report(
            &sp.at,
            "needs at least one stage, e.g. `- ramp: { to: 100, over: 10s }`",
        );
        return None;
    }
    let mut stages = Vec::new();
    let mut ok = true;
    let mut level = 0u64;
    let mut start = Duration::ZERO;
    for stage in &sp.value {
        let s = &stage.value;
        let written: Vec<&str> = [
            ("ramp", s.ramp.is_some()),
            ("hold", s.hold.is_some()),
            ("arrival", s.arrival.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect();
        if written.len() != 1 {
            if !check.is_poisoned(&stage.at.path) {
                let msg = if written.is_empty() {
                    "a stage needs one of `ramp`, `hold` or `arrival`".to_owned()
                } else {
                    format!(
                        "a stage has exactly one of `ramp`, `hold` or `arrival`, found {}",
                        written.join(" and ")
                    )
                };
                check.report(&stage.at, msg);
            }
            ok = false;
            continue;
        }
        let built = if let Some(r) = &s.ramp {
            ramp(check, r, user_count)
        } else if let Some(h) = &s.hold {
            check
                .positive_duration(h)
                .map(|length| (length, level, StageKind::Hold))
        } else if let Some(a) = &s.arrival {
            arrival(check, a, level, user_count)
        } else {
            None
        };
        let Some((length, after, kind)) = built else {
            ok = false;
            continue;
        };
        stages.push(Stage {
            start,
            length,
            users_before: level,
            users_after: after,
            kind,
        });
        start += length;
        level = after;
    }
    ok.then_some(LoadPlan { stages })
}

fn ramp(check: &mut Check<'_>, sp: &Sp<RawRamp>, user_count: Option<u64>) -> Option<(Duration, u64, StageKind)> {
    let to = match &sp.value.to {
        Some(to) => {
            if let Some(count) = user_count
                && to.value > count
            {
                check.report(
                    &to.at,
                    format!("ramps to {} users but users.count is {count}", to.value),
                );
                None
            } else {
                Some(to.value)
            }
        }
        None => {
            check.missing(&sp.at, "to", "1000");
            None
        }
    };
    let over = match &sp.value.over {
        Some(o) => check.positive_duration(o),
        None => {
            check.missing(&sp.at, "over", "60s");
            None
        }
    };
    Some((over?, to?, StageKind::Ramp))
}

fn arrival(
    check: &mut Check<'_>,
    sp: &Sp<RawArrival>,
    level: u64,
    user_count: Option<u64>,
) -> Option<(Duration, u64, StageKind)> {
    let a = &sp.value;
    let rate = match &a.rate {
        Some(r) => per_second(check, r),
        None => {
            check.missing(&sp.at, "rate", "50/s");
            None
        }
    };
    let length = match &a.for_ {
        Some(f) => check.positive_duration(f),
        None => {
            check.missing(&sp.at, "for", "2m");
            None
        }
    };
    let session = a.session.as_ref().map(|s| check.positive_duration(s));
    let max = match &a.max {
        Some(m) if m.value == 0 => {
            check.report(&m.at, "must be at least 1");
            return None;
        }
        other => other.as_ref().map(|m| m.value),
    };
    let (rate, length) = (rate?, length?);
    let session = match session {
        Some(None) => return None,
        Some(Some(d)) => Some(d),
        None => None,
    };
    // Float-to-int casts saturate, so absurd rates cannot overflow here.
    let scheduled = (rate * length.as_secs_f64()).floor() as u64;
    let arrivals = max.map_or(scheduled, |m| m.min(scheduled));
    if arrivals == 0 {
        check.report(
            &sp.at,
            format!(
                "starts no user: {rate}/s for {} is less than one arrival",
                humantime::format_duration(length)
            ),
        );
        return None;
    }
    let after = level.saturating_add(arrivals);
    if let Some(count) = user_count
        && after > count
    {
        check.report(
            &sp.at,
            format!(
                "starts {arrivals} users on top of {level}, {after} in all, but users.count is {count}; lower the rate or set `max`"
            ),
        );
        return None;
    }
    Some((
        length,
        after,
        StageKind::Arrival {
            per_second: rate,
            session,
        },
    ))
}

/// `50/s`, `300/m`: new users per second.
fn per_second(check: &mut Check<'_>, sp: &Sp<Scalar>) -> Option<f64> {
    let text = match &sp.value {
        Scalar::Number(n) => {
            check.report(&sp.at, format!("a rate needs a unit: write `{n}/s` or `{n}/m`"));
            return None;
        }
        Scalar::Text(t) => t.trim(),
    };
    let parsed = text.split_once('/').and_then(|(n, unit)| {
        let n: f64 = n.trim().parse().ok()?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            _ => return None,
        };
        (n.is_finite() && n > 0.0).then_some(n / per)
    });
    if parsed.is_none() {
        check.report(
            &sp.at,
            format!(
                "\"{}\" is not a rate; write a positive number of users per second or minute, e.g. `50/s` or `300/m`",
                shorten(text)
            ),
        );
    }
    parsed
}

/// Checks every entry; `run_length` is known only when the load plan (and cap) are valid,
/// `embedded` only when the target is.
pub(crate) fn timeline(
    check: &mut Check<'_>,
    raw: Option<&Sp<Vec<Sp<RawEvent>>>>,
    run_length: Option<Duration>,
    embedded: Option<bool>,
) -> Option<Vec<TimelineEvent>> {
    let Some(sp) = raw else {
        return Some(Vec::new());
    };
    let mut events = Vec::new();
    let mut ok = true;
    for entry in &sp.value {
        match event(check, entry, run_length, embedded) {
            Some(e) => events.push(e),
            None => ok = false,
        }
    }
    events.sort_by_key(|e| e.at);
    ok.then_some(events)
}

fn event(
    check: &mut Check<'_>,
    entry: &Sp<RawEvent>,
    run_length: Option<Duration>,
    embedded: Option<bool>,
) -> Option<TimelineEvent> {
    let e = &entry.value;
    let at = match &e.at {
        Some(a) => check.duration(a).and_then(|d| match run_length {
            Some(len) if d >= len => {
                check.report(
                    &a.at,
                    format!(
                        "{} is not within the run, which lasts {}",
                        humantime::format_duration(d),
                        humantime::format_duration(len)
                    ),
                );
                None
            }
            _ => Some(d),
        }),
        None => {
            check.missing(&entry.at, "at", "30s");
            None
        }
    };
    let written: Vec<&str> = [
        ("drop_sockets", e.drop_sockets.is_some()),
        ("expire_tokens", e.expire_tokens.is_some()),
        ("block_websocket", e.block_websocket.is_some()),
        ("refuse_websocket", e.refuse_websocket.is_some()),
        ("half_open", e.half_open.is_some()),
        ("add_latency", e.add_latency.is_some()),
        ("set_privacy", e.set_privacy.is_some()),
        ("background", e.background.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    if written.len() != 1 {
        if !check.is_poisoned(&entry.at.path) {
            let msg = if written.is_empty() {
                "an entry needs `at` and one action: drop_sockets, expire_tokens, block_websocket, refuse_websocket, half_open, add_latency, set_privacy or background".to_owned()
            } else {
                format!("an entry has exactly one action, found {}", written.join(" and "))
            };
            check.report(&entry.at, msg);
        }
        return None;
    }
    let refused = embedded == Some(false) && refuse_on_real_target(check, e);
    let action = action(check, e);
    if refused {
        return None;
    }
    Some(TimelineEvent {
        at: at?,
        action: action?,
    })
}

/// Reports a fault that needs the embedded mock's fault control (target.url is set).
fn refuse_on_real_target(check: &mut Check<'_>, e: &RawEvent) -> bool {
    const NEEDS_MOCK: &str = "needs the embedded mock's fault control and target.url is set";
    let server_side = |side: &Option<Sp<RawSide>>| {
        side.as_ref()
            .filter(|s| s.value == RawSide::Server)
            .map(|s| s.at.clone())
    };
    let refusal = if let Some(at) = e.drop_sockets.as_ref().and_then(|d| server_side(&d.value.side)) {
        Some((
            at,
            format!("side: server {NEEDS_MOCK}; use side: client (users drop their own sockets)"),
        ))
    } else if let Some(at) = e.expire_tokens.as_ref().and_then(|x| server_side(&x.value.side)) {
        Some((
            at,
            format!("side: server {NEEDS_MOCK}; use side: client (users switch to expired tokens)"),
        ))
    } else if let Some(b) = &e.block_websocket {
        Some((
            b.at.clone(),
            format!("{NEEDS_MOCK}; use refuse_websocket (users refuse their own WebSocket)"),
        ))
    } else if let Some(h) = &e.half_open {
        Some((
            h.at.clone(),
            format!("{NEEDS_MOCK}; a real target has no client-side form of it"),
        ))
    } else {
        e.add_latency.as_ref().map(|l| {
            (
                l.at.clone(),
                format!("{NEEDS_MOCK}; a real target has no client-side form of it"),
            )
        })
    };
    match refusal {
        Some((at, reason)) => {
            check.report(&at, reason);
            true
        }
        None => false,
    }
}

/// The one action of an entry.
fn action(check: &mut Check<'_>, e: &RawEvent) -> Option<Action> {
    if let Some(d) = &e.drop_sockets {
        let fraction = check.fraction(&d.value.fraction, 1.0);
        let side = side(d.value.side.as_ref());
        let close = match &d.value.close {
            None if side == Side::Server => Close::Code(1011),
            None => Close::Abrupt,
            Some(c) => close_code(check, c)?,
        };
        return Some(Action::DropSockets { fraction, side, close });
    }
    if let Some(x) = &e.expire_tokens {
        let fraction = check.fraction(&x.value.fraction, 1.0);
        let side = side(x.value.side.as_ref());
        return Some(Action::ExpireTokens { fraction, side });
    }
    if let Some(b) = &e.block_websocket {
        if let Some(f) = &b.value.fraction {
            check.report(
                &f.at,
                "the mock blocks every upgrade; for a share of users use refuse_websocket",
            );
        }
        let length = check.opt_positive_duration(&b.value.for_);
        return Some(Action::BlockWebsocket { length });
    }
    if let Some(r) = &e.refuse_websocket {
        let fraction = check.fraction(&r.value.fraction, 1.0);
        let length = check.opt_positive_duration(&r.value.for_);
        return Some(Action::RefuseWebsocket { fraction, length });
    }
    if let Some(h) = &e.half_open {
        let fraction = check.fraction(&h.value.fraction, 1.0);
        let length = check.opt_positive_duration(&h.value.for_);
        return Some(Action::HalfOpen { fraction, length });
    }
    if let Some(l) = &e.add_latency {
        let fraction = check.fraction(&l.value.fraction, 1.0);
        let length = check.opt_positive_duration(&l.value.for_);
        let delay = match &l.value.delay {
            Some(d) => check.positive_duration(d),
            None => {
                check.missing(&l.at, "delay", "200ms");
                None
            }
        };
        return Some(Action::AddLatency {
            delay: delay?,
            fraction,
            length,
        });
    }
    if let Some(w) = &e.background {
        let fraction = check.fraction(&w.value.fraction, 1.0);
        let length = match &w.value.for_ {
            Some(f) => check.positive_duration(f),
            None => {
                check.missing(&w.at, "for", "10s");
                None
            }
        };
        return Some(Action::Background {
            fraction,
            length: length?,
        });
    }
    if let Some(p) = &e.set_privacy {
        let v = &p.value;
        let fraction = check.fraction(&v.fraction, 1.0);
        let get = |f: &Option<Sp<bool>>| f.as_ref().map(|s| s.value);
        let (typing, read, delivery) = (
            get(&v.typing_indicators),
            get(&v.read_receipts),
            get(&v.delivery_receipts),
        );
        if typing.is_none() && read.is_none() && delivery.is_none() {
            if !check.is_poisoned(&p.at.path) {
                check.report(
                    &p.at,
                    "set at least one of typing_indicators, read_receipts, delivery_receipts",
                );
            }
            return None;
        }
        return Some(Action::SetPrivacy {
            fraction,
            typing_indicators: typing,
            read_receipts: read,
            delivery_receipts: delivery,
        });
    }
    None
}

/// The side; client unless written.
fn side(sp: Option<&Sp<RawSide>>) -> Side {
    match sp.map(|s| s.value) {
        Some(RawSide::Server) => Side::Server,
        Some(RawSide::Client) | None => Side::Client,
    }
}

/// `abrupt`, or a close code that may be sent on the wire (RFC 6455 §7.4).
fn close_code(check: &mut Check<'_>, sp: &Sp<Scalar>) -> Option<Close> {
    match &sp.value {
        Scalar::Text(t) if t.trim() == "abrupt" => Some(Close::Abrupt),
        Scalar::Text(t) => {
            check.report(
                &sp.at,
                format!(
                    "\"{}\" is not a close; write a close code such as 1011, or `abrupt` to cut the connection without one",
                    shorten(t)
                ),
            );
            None
        }
        Scalar::Number(n) => {
            let code = (n.fract() == 0.0 && (0.0..=65535.0).contains(n)).then_some(*n as u16);
            match code {
                Some(c @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => Some(Close::Code(c)),
                Some(1005 | 1006 | 1015) => {
                    check.report(
                        &sp.at,
                        format!("close code {n} is never sent on the wire; use `abrupt` for a cut connection"),
                    );
                    None
                }
                _ => {
                    check.report(
                        &sp.at,
                        format!("{n} is not a close code that can be sent; use 1000-1003, 1007-1014 or 3000-4999"),
                    );
                    None
                }
            }
        }
    }
}
