//! Validation of what decides a run's verdict: `thresholds`, `conformance` and `checks`.

use super::check::{Check, value};
use super::de::Sp;
use super::model::{Checks, Conformance};
use super::raw::*;
use super::threshold::{self, Threshold};
use super::{suggest, tree::shorten};

pub(crate) fn thresholds(check: &mut Check<'_>, raw: Option<&Sp<RawMap<RawThreshold>>>) -> Vec<Threshold> {
    let Some(sp) = raw else {
        return Vec::new();
    };
    let mut out: Vec<Threshold> = Vec::new();
    for (key, cond) in &sp.value.0 {
        let metric = match threshold::parse_metric(key.value.trim()) {
            Ok(m) => Some(m),
            Err(e) => {
                check.report(&key.at, e.to_string());
                None
            }
        };
        let (text, text_at, abort, after) = match &cond.value {
            RawThreshold::Short(t) => (Some(t.clone()), cond.at.clone(), false, None),
            RawThreshold::Full(full) => {
                let abort = value(&full.abort).unwrap_or(false);
                let after = full.after.as_ref().and_then(|a| {
                    if !abort {
                        check.report(&a.at, "`after` only matters with `abort: true`");
                    }
                    check.duration(a)
                });
                match &full.limit {
                    Some(l) => (Some(l.value.clone()), l.at.clone(), abort, after),
                    None => {
                        check.missing(&cond.at, "limit", "\"< 500ms\"");
                        (None, cond.at.clone(), abort, after)
                    }
                }
            }
        };
        let (Some(metric), Some(text)) = (metric, text) else {
            continue;
        };
        match threshold::parse_condition(metric, &text) {
            Ok((op, bound)) => out.push(Threshold {
                key: key.value.trim().to_owned(),
                metric,
                op,
                bound,
                text: text.trim().to_owned(),
                abort,
                abort_after: after,
            }),
            Err(e) => check.report(&text_at, e.to_string()),
        }
    }
    out
}

/// The protocol areas of PRODUCT.md; a rule id is `<AREA>-<n>`.
const RULE_AREAS: [&str; 13] = [
    "CONN",
    "AUTH",
    "USER",
    "HEALTH",
    "RECONNECT",
    "LONGPOLL",
    "PRIVACY",
    "TYPING",
    "READ",
    "DISCONNECT",
    "ERROR",
    "RATE",
    "DELIVERY",
];

pub(crate) fn conformance(check: &mut Check<'_>, raw: Option<&Sp<RawConformance>>) -> Conformance {
    let Some(sp) = raw else {
        return Conformance::default();
    };
    let strict = value(&sp.value.strict).unwrap_or(false);
    let Some(watch) = &sp.value.watch else {
        return Conformance {
            strict,
            ..Conformance::default()
        };
    };
    if watch.value.is_empty() {
        check.report(
            &watch.at,
            "an empty list watches no rule; leave `watch` out to watch them all",
        );
    }
    let mut globs = Vec::new();
    for glob in &watch.value {
        let g = glob.value.trim();
        let chars_ok = !g.is_empty()
            && g.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '_' | '.'));
        let area = g.split('-').next().unwrap_or("");
        let area_ok = area.contains(['*', '?']) || RULE_AREAS.contains(&area);
        if !chars_ok {
            check.report(
                &glob.at,
                "a rule glob is made of letters, digits, -, _, . and the wildcards * and ?, e.g. `CONN-*`",
            );
        } else if !area_ok {
            check.report(
                &glob.at,
                format!(
                    "unknown rule area `{}`; {}",
                    shorten(area),
                    suggest::hint(&area.to_ascii_uppercase(), &RULE_AREAS)
                ),
            );
        } else {
            globs.push(g.to_owned());
        }
    }
    Conformance { watch: globs, strict }
}

/// `checks:`: every key optional (on by default); `users_connected` also takes a share.
pub(crate) fn checks(check: &mut Check<'_>, raw: Option<&Sp<RawChecks>>) -> Checks {
    let mut out = Checks::default();
    let Some(sp) = raw else {
        return out;
    };
    let c = &sp.value;
    if let Some(u) = &c.users_connected {
        out.users_connected = match &u.value {
            RawShare::Toggle(true) => Some(1.0),
            RawShare::Toggle(false) => None,
            RawShare::Share(s) => match share(s) {
                Some(f) => Some(f),
                None => {
                    check.report(
                        &u.at,
                        "users_connected is true, false or a share of the users above 0, such as \"95%\" or 0.95",
                    );
                    None
                }
            },
        };
    }
    out.recovered = value(&c.recovered).unwrap_or(true);
    out.target_reachable = value(&c.target_reachable).unwrap_or(true);
    out.state_kept = value(&c.state_kept).unwrap_or(true);
    out.shards_lost = value(&c.shards_lost).unwrap_or(0);
    out
}

/// `"95%"`, `95%`, `0.95`: a share in `(0, 1]`.
fn share(s: &Scalar) -> Option<f64> {
    let f = match s {
        Scalar::Number(n) => *n,
        Scalar::Text(t) => match t.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
            None => t.trim().parse::<f64>().ok()?,
        },
    };
    (f > 0.0 && f <= 1.0).then_some(f)
}
