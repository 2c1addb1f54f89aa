//! Raw model -> [`Scenario`]: fills defaults, checks every value and every cross-field rule,
//! and reports every problem with its place. The load plan and the timeline are checked in
//! `validate_load.rs`; the shared helpers live here.

use super::de::{At, Sp};
use super::model::*;
use super::problem::Problem;
use super::raw::*;
use super::threshold::{self, Threshold};
use super::{suggest, tree::shorten, user_id};
use std::time::Duration;

/// Collects problems while the raw model is turned into the engine's model.
pub(crate) struct Check<'a> {
    pub file: &'a str,
    pub problems: Vec<Problem>,
    /// Paths where decoding already failed: no second problem is reported under them, and
    /// cross-field checks that read them are skipped.
    poisoned: Vec<String>,
}

impl<'a> Check<'a> {
    pub fn new(file: &'a str, problems: Vec<Problem>) -> Self {
        let poisoned = problems.iter().map(|p| p.path.clone()).collect();
        Check {
            file,
            problems,
            poisoned,
        }
    }

    pub fn report(&mut self, at: &At, message: impl Into<String>) {
        self.poisoned.push(at.path.clone());
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            path: at.path.clone(),
            message: message.into(),
        });
    }

    /// Reports a required key that is not written, unless it was written but broken.
    pub fn missing(&mut self, parent: &At, key: &str, example: &str) {
        let path = join(&parent.path, key);
        if self.is_poisoned(&path) {
            return;
        }
        let at = At { path, ..parent.clone() };
        self.report(&at, format!("required key is missing, e.g. `{key}: {example}`"));
    }

    /// True when a problem was already reported at or under `path`.
    pub fn is_poisoned(&self, path: &str) -> bool {
        self.poisoned.iter().any(|p| {
            p == path
                || path.is_empty()
                || p.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// A humantime duration; a bare number gets a hint.
    pub fn duration(&mut self, sp: &Sp<Scalar>) -> Option<Duration> {
        match &sp.value {
            Scalar::Text(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.report(
                        &sp.at,
                        format!(
                            "\"{}\" is not a duration; write a number with a unit, e.g. `30s`, `5m`, `250ms`",
                            shorten(s)
                        ),
                    );
                    None
                }
            },
            Scalar::Number(n) => {
                self.report(
                    &sp.at,
                    format!("a duration needs a unit: write `{n}s` or `{n}ms`, not a bare number"),
                );
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub fn positive_duration(&mut self, sp: &Sp<Scalar>) -> Option<Duration> {
        let d = self.duration(sp)?;
        if d.is_zero() {
            self.report(&sp.at, "must be greater than zero");
            return None;
        }
        Some(d)
    }

    pub fn opt_positive_duration(&mut self, sp: &Option<Sp<Scalar>>) -> Option<Duration> {
        sp.as_ref().and_then(|sp| self.positive_duration(sp))
    }

    /// A share in (0, 1]; `default` when absent.
    pub fn fraction(&mut self, sp: &Option<Sp<f64>>, default: f64) -> f64 {
        match sp {
            None => default,
            Some(sp) if sp.value > 0.0 && sp.value <= 1.0 => sp.value,
            Some(sp) => {
                self.report(
                    &sp.at,
                    format!("a fraction is above 0 and at most 1 (0.5 = half), found {}", sp.value),
                );
                default
            }
        }
    }
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn value<T: Clone>(sp: &Option<Sp<T>>) -> Option<T> {
    sp.as_ref().map(|s| s.value.clone())
}

/// Validates the whole file. `root` is where the top-level mapping starts.
pub(crate) fn scenario(check: &mut Check<'_>, raw: &RawScenario, root: &At, default_name: &str) -> Option<Scenario> {
    let name = match &raw.name {
        Some(sp) if sp.value.trim().is_empty() => {
            check.report(&sp.at, "must not be empty");
            None
        }
        Some(sp) if sp.value.chars().any(char::is_control) || sp.value.len() > 200 => {
            check.report(&sp.at, "must be one line of at most 200 bytes");
            None
        }
        Some(sp) => Some(sp.value.trim().to_owned()),
        None => Some(default_name.to_owned()),
    };
    let target = target(check, raw.target.as_ref());
    let users = match &raw.users {
        Some(sp) => users(check, sp, target.as_ref().map(|(_, source)| source)),
        None => {
            check.missing(root, "users", "{ count: 100 }");
            None
        }
    };
    let user_count = users.as_ref().map(|u| u.count);
    let channels = channels(check, raw.channels.as_ref(), user_count);
    let load = match &raw.load {
        Some(sp) => super::validate_load::load_plan(check, sp, user_count),
        None => {
            check.missing(root, "load", "[{ ramp: { to: 100, over: 10s } }, { hold: 1m }]");
            None
        }
    };
    let duration = raw.duration.as_ref().and_then(|sp| check.positive_duration(sp));
    // Cross-field: the timeline is checked against the run's length only when it is known.
    let run_length = if check.is_poisoned("duration") {
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
    let thresholds = thresholds(check, raw.thresholds.as_ref());
    let conformance = conformance(check, raw.conformance.as_ref());
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
    })
}

/// The target, and where tokens come from unless `users.token.endpoint` says otherwise.
fn target(check: &mut Check<'_>, raw: Option<&Sp<RawTarget>>) -> Option<(Target, TokenSource)> {
    let Some(sp) = raw else {
        return Some((Target::Embedded(MockOptions::default()), TokenSource::EmbeddedSecret));
    };
    let t = &sp.value;
    if let (Some(secret), Some(_)) = (&t.secret, &t.token_endpoint) {
        check.report(
            &secret.at,
            "give either `secret` (tokens minted locally) or `token_endpoint` (tokens fetched), not both",
        );
    }
    let endpoint = t
        .token_endpoint
        .as_ref()
        .map(|e| http_url(check, e, &["http", "https"]));
    let secret = match &t.secret {
        Some(s) if s.value.is_empty() => {
            check.report(&s.at, "must not be empty");
            None
        }
        other => value(other),
    };
    let source = match (endpoint, &secret) {
        (Some(None), _) => None,
        (Some(Some(url)), _) => Some(TokenSource::Endpoint(url)),
        (None, Some(s)) => Some(TokenSource::Secret(s.clone())),
        (None, None) => Some(TokenSource::EmbeddedSecret),
    };
    if let Some(url) = &t.url {
        for (key, v) in [
            ("health_interval", t.health_interval.as_ref().map(|s| &s.at)),
            ("longpoll_hold", t.longpoll_hold.as_ref().map(|s| &s.at)),
            ("token_expiry", t.token_expiry.as_ref().map(|s| &s.at)),
        ] {
            if let Some(at) = v {
                check.report(
                    at,
                    format!(
                        "`{key}` configures the embedded mock; it has no effect on a real target (target.url is set)"
                    ),
                );
            }
        }
        let url_ok = http_url(check, url, &["http", "https", "ws", "wss"]);
        let api_key = match &t.api_key {
            Some(k) if !k.value.trim().is_empty() => Some(k.value.trim().to_owned()),
            Some(k) => {
                check.report(&k.at, "must not be empty");
                None
            }
            None => {
                check.missing(&sp.at, "api_key", "my-app-key");
                None
            }
        };
        if t.secret.is_none() && t.token_endpoint.is_none() {
            check.report(
                &url.at,
                "a real target needs `secret` (to mint tokens) or `token_endpoint` (to fetch them)",
            );
        }
        let target = Target::Remote(RemoteTarget {
            url: url_ok?.trim_end_matches('/').to_owned(),
            api_key: api_key?,
        });
        return Some((target, source?));
    }
    let mut mock = MockOptions {
        api_key: value(&t.api_key),
        secret,
        ..MockOptions::default()
    };
    if let Some(d) = t.health_interval.as_ref().and_then(|s| check.positive_duration(s)) {
        mock.health_interval = d;
    }
    if let Some(d) = t.longpoll_hold.as_ref().and_then(|s| check.positive_duration(s)) {
        mock.longpoll_hold = d;
    }
    if let Some(e) = &t.token_expiry {
        mock.token_expiry = match e.value {
            ExpiryPolicy::Keep => TokenExpiry::Keep,
            ExpiryPolicy::Kick => TokenExpiry::Kick,
        };
    }
    Some((Target::Embedded(mock), source?))
}

/// Checks `scheme://host...`, without pulling in a URL parser for one check.
fn http_url(check: &mut Check<'_>, sp: &Sp<String>, schemes: &[&str]) -> Option<String> {
    let url = sp.value.trim();
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme.to_ascii_lowercase().as_str())
            && rest.split(['/', '?', '#']).next().is_some_and(|host| !host.is_empty())
            && !rest.chars().any(char::is_whitespace)
    });
    if ok {
        Some(url.to_owned())
    } else {
        check.report(
            &sp.at,
            format!(
                "\"{}\" is not a URL; expected {}://host[:port][/path]",
                shorten(url),
                schemes.join("|")
            ),
        );
        None
    }
}

fn users(check: &mut Check<'_>, sp: &Sp<RawUsers>, token_source: Option<&TokenSource>) -> Option<Users> {
    let u = &sp.value;
    let count = match &u.count {
        Some(c) if c.value == 0 => {
            check.report(&c.at, "must be at least 1");
            None
        }
        Some(c) => Some(c.value),
        None => {
            check.missing(&sp.at, "count", "1000");
            None
        }
    };
    let id = match &u.id {
        Some(id) => user_id::pattern(check, id, count),
        None => Some(IdPattern {
            prefix: "user-".to_owned(),
            suffix: String::new(),
        }),
    };
    let profile = match &u.profile {
        Some(p) => profile(check, p),
        None => Some(ProfileMix::single(Profile::Js)),
    };
    let fallback = value(&u.fallback).unwrap_or(false);
    if let (Some(f), Some(mix)) = (&u.fallback, &profile)
        && f.value
        && !mix.weights.iter().any(|(p, _)| *p == Profile::Js)
    {
        check.report(
            &f.at,
            "the long-poll fallback is a JS SDK feature (enableWSFallback) and the profile has no js users",
        );
    }
    let token = token(check, u.token.as_ref(), token_source);
    let privacy = u
        .privacy
        .as_ref()
        .map(|p| Privacy {
            typing_indicators: value(&p.value.typing_indicators).unwrap_or(true),
            read_receipts: value(&p.value.read_receipts).unwrap_or(true),
            delivery_receipts: value(&p.value.delivery_receipts).unwrap_or(true),
        })
        .unwrap_or_default();
    const MAX_CUSTOM: u64 = 1 << 20;
    let custom_bytes = match &u.custom_bytes {
        Some(c) if c.value > MAX_CUSTOM => {
            check.report(
                &c.at,
                format!("at most {MAX_CUSTOM} bytes (the server's limit is about 5 KB)"),
            );
            0
        }
        Some(c) => c.value,
        None => 0,
    };
    Some(Users {
        count: count?,
        id: id?,
        profile: profile?,
        token: token?,
        privacy,
        fallback,
        custom_bytes,
    })
}

fn profile(check: &mut Check<'_>, sp: &Sp<RawProfile>) -> Option<ProfileMix> {
    let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
    let named = |check: &mut Check<'_>, name: &str, at: &At| match Profile::from_name(name) {
        Some(p) => Some(p),
        None => {
            check.report(
                at,
                format!("unknown profile `{}`; {}", shorten(name), suggest::hint(name, &names)),
            );
            None
        }
    };
    match &sp.value {
        RawProfile::One(name) => named(check, name, &sp.at).map(ProfileMix::single),
        RawProfile::Mix(entries) if entries.is_empty() => {
            check.report(&sp.at, "a mix needs at least one profile, e.g. {js: 60, android: 40}");
            None
        }
        RawProfile::Mix(entries) => {
            let mut weights = Vec::new();
            let mut ok = true;
            for (key, weight) in entries {
                let Some(p) = named(check, &key.value, &key.at) else {
                    ok = false;
                    continue;
                };
                if weights.iter().any(|(q, _)| *q == p) {
                    check.report(&key.at, "this profile is listed twice");
                    ok = false;
                }
                match u32::try_from(weight.value) {
                    Ok(w) if w > 0 => weights.push((p, w)),
                    _ => {
                        check.report(
                            &weight.at,
                            format!("a weight is a positive whole number, found {}", weight.value),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(ProfileMix { weights })
        }
    }
}

fn token(check: &mut Check<'_>, raw: Option<&Sp<RawToken>>, target_source: Option<&TokenSource>) -> Option<TokenSpec> {
    let Some(sp) = raw else {
        return Some(TokenSpec {
            ttl: None,
            mode: TokenMode::Provider,
            source: target_source?.clone(),
        });
    };
    let t = &sp.value;
    let ttl = match &t.ttl {
        Some(s) if matches!(&s.value, Scalar::Text(w) if w.trim() == "never") => Ok(None),
        Some(s) => check.positive_duration(s).map(Some).ok_or(()),
        None => Ok(None),
    };
    let mode = match t.mode.as_ref().map(|m| m.value) {
        Some(RawTokenMode::Static) => TokenMode::Static,
        Some(RawTokenMode::Provider) | None => TokenMode::Provider,
    };
    let source = match &t.endpoint {
        Some(e) => {
            if let Some(TokenSource::Endpoint(_)) = target_source {
                check.report(
                    &e.at,
                    "the token endpoint is given twice (also as target.token_endpoint); keep one",
                );
                None
            } else {
                http_url(check, e, &["http", "https"]).map(TokenSource::Endpoint)
            }
        }
        None => target_source.cloned(),
    };
    Some(TokenSpec {
        ttl: ttl.ok()?,
        mode,
        source: source?,
    })
}

fn channels(check: &mut Check<'_>, raw: Option<&Sp<RawChannels>>, user_count: Option<u64>) -> Option<Channels> {
    let default_members = user_count.unwrap_or(1).min(100);
    let Some(sp) = raw else {
        return Some(Channels {
            count: 1,
            members: default_members,
            kind: "messaging".to_owned(),
        });
    };
    let c = &sp.value;
    let mut ok = true;
    let count = match &c.count {
        Some(n) if n.value == 0 => {
            check.report(&n.at, "must be at least 1");
            ok = false;
            1
        }
        Some(n) => n.value,
        None => 1,
    };
    let members = match &c.members {
        Some(m) if m.value == 0 => {
            check.report(&m.at, "must be at least 1");
            ok = false;
            1
        }
        Some(m) => {
            if let Some(users) = user_count
                && m.value > users
            {
                check.report(
                    &m.at,
                    format!("{} members per channel but users.count is {users}", m.value),
                );
                ok = false;
            }
            m.value
        }
        None => default_members,
    };
    let kind = match &c.kind {
        Some(k)
            if k.value.is_empty()
                || k.value.len() > 64
                || !k
                    .value
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-') =>
        {
            check.report(
                &k.at,
                "a channel type is 1 to 64 of a-z, 0-9, _ and -, e.g. `messaging`",
            );
            ok = false;
            String::new()
        }
        Some(k) => k.value.clone(),
        None => "messaging".to_owned(),
    };
    ok.then_some(Channels { count, members, kind })
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

fn thresholds(check: &mut Check<'_>, raw: Option<&Sp<RawMap<RawThreshold>>>) -> Vec<Threshold> {
    let Some(sp) = raw else {
        return Vec::new();
    };
    let mut out: Vec<Threshold> = Vec::new();
    for (key, cond) in &sp.value.0 {
        let metric = match threshold::parse_metric(key.value.trim()) {
            Ok(m) => Some(m),
            Err(e) => {
                check.report(&key.at, e);
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
            Err(e) => check.report(&text_at, e),
        }
    }
    out
}

/// The protocol areas of PRODUCT.md; a rule id is `<AREA>-<n>`.
const RULE_AREAS: [&str; 12] = [
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
];

fn conformance(check: &mut Check<'_>, raw: Option<&Sp<RawConformance>>) -> Conformance {
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
