//! Validation of `target`, `users` (id pattern, profiles, tokens, privacy) and `channels`.

use super::check::{Check, MAX_USERS, value};
use super::de::{At, Sp};
use super::model::*;
use super::raw::*;
use super::user_id;
use super::{suggest, tree::shorten};

/// The target, and where tokens come from unless `users.token.endpoint` says otherwise.
/// With `plain` (`users.kind: plain-websocket`), `target.url` is the full WebSocket URL the users
/// open, and no key, secret or token endpoint is needed (or accepted).
pub(crate) fn target(
    check: &mut Check<'_>,
    raw: Option<&Sp<RawTarget>>,
    plain: bool,
) -> Option<(TargetSpec, TokenSource)> {
    let Some(sp) = raw else {
        return Some((
            TargetSpec::Embedded(MockOptions::default()),
            TokenSource::EmbeddedSecret,
        ));
    };
    let t = &sp.value;
    if plain {
        return plain_target(check, t);
    }
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
        let target = TargetSpec::Remote(RemoteTarget {
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
    Some((TargetSpec::Embedded(mock), source?))
}

/// `target` for plain WebSocket users: only `url` (the WebSocket URL itself) means anything.
fn plain_target(check: &mut Check<'_>, t: &RawTarget) -> Option<(TargetSpec, TokenSource)> {
    for (key, at) in [
        ("api_key", t.api_key.as_ref().map(|s| &s.at)),
        ("secret", t.secret.as_ref().map(|s| &s.at)),
        ("token_endpoint", t.token_endpoint.as_ref().map(|s| &s.at)),
        ("health_interval", t.health_interval.as_ref().map(|s| &s.at)),
        ("longpoll_hold", t.longpoll_hold.as_ref().map(|s| &s.at)),
        ("token_expiry", t.token_expiry.as_ref().map(|s| &s.at)),
    ] {
        if let Some(at) = at {
            check.report(
                at,
                format!("`{key}` applies to stream users; plain-websocket users open target.url as it is"),
            );
        }
    }
    let Some(url) = &t.url else {
        return Some((
            TargetSpec::Embedded(MockOptions::default()),
            TokenSource::EmbeddedSecret,
        ));
    };
    let url = http_url(check, url, &["ws", "wss", "http", "https"])?;
    Some((
        TargetSpec::Remote(RemoteTarget {
            url,
            api_key: String::new(),
        }),
        TokenSource::EmbeddedSecret,
    ))
}

/// Checks `scheme://host...`, without pulling in a URL parser for one check.
pub(crate) fn http_url(check: &mut Check<'_>, sp: &Sp<String>, schemes: &[&str]) -> Option<String> {
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

pub(crate) fn users(check: &mut Check<'_>, sp: &Sp<RawUsers>, token_source: Option<&TokenSource>) -> Option<Users> {
    let u = &sp.value;
    let count = match &u.count {
        Some(c) if c.value == 0 => {
            check.report(&c.at, "must be at least 1");
            None
        }
        Some(c) if c.value > MAX_USERS => {
            check.report(&c.at, format!("at most {MAX_USERS} users per scenario"));
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
    let kind = match u.kind.as_ref().map(|k| k.value) {
        Some(RawUserKind::PlainWebsocket) => UserKind::PlainWebsocket,
        Some(RawUserKind::Stream) | None => UserKind::Stream,
    };
    if kind == UserKind::PlainWebsocket {
        for (key, at) in [
            ("profile", u.profile.as_ref().map(|s| &s.at)),
            ("token", u.token.as_ref().map(|s| &s.at)),
            ("privacy", u.privacy.as_ref().map(|s| &s.at)),
            ("fallback", u.fallback.as_ref().map(|s| &s.at)),
            ("custom_bytes", u.custom_bytes.as_ref().map(|s| &s.at)),
            ("unity", u.unity.as_ref().map(|s| &s.at)),
        ] {
            if let Some(at) = at {
                check.report(
                    at,
                    format!("`{key}` applies to stream users; plain-websocket users speak no Stream protocol"),
                );
            }
        }
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
    let unity = u
        .unity
        .as_ref()
        .map_or_else(UnityReconnect::default, |s| unity(check, s));
    if let (Some(sp), Some(mix)) = (&u.unity, &profile)
        && !mix.weights.iter().any(|(p, _)| *p == Profile::Unity)
    {
        check.report(&sp.at, "these settings apply to unity users and the profile has none");
    }
    let backoff = match &u.backoff {
        Some(s) if matches!(&s.value, Scalar::Text(w) if w.trim() == "sdk") => Some(None),
        Some(s) => check.duration(s).map(Some),
        None => Some(None),
    };
    let tls_resumption = u
        .tls
        .as_ref()
        .and_then(|t| t.value.resumption.as_ref())
        .map_or(Some(0.0), |r| super::validate_tls::resumption(check, r));
    Some(Users {
        count: count?,
        id: id?,
        profile: profile?,
        token: token?,
        privacy,
        fallback,
        custom_bytes,
        unity,
        backoff: backoff?,
        kind,
        tls_resumption: tls_resumption?,
    })
}

/// `users.unity`: the strategy (default exponential) and, for `constant` only, its interval
/// (default 1 s, Unity's own).
fn unity(check: &mut Check<'_>, sp: &Sp<RawUnity>) -> UnityReconnect {
    let u = &sp.value;
    let strategy = match u.reconnect.as_ref().map(|r| r.value) {
        Some(RawUnityReconnect::Exponential) | None => UnityStrategy::Exponential,
        Some(RawUnityReconnect::Constant) => UnityStrategy::Constant,
        Some(RawUnityReconnect::Never) => UnityStrategy::Never,
    };
    let mut out = UnityReconnect {
        strategy,
        ..UnityReconnect::default()
    };
    if let Some(i) = &u.interval {
        if check.is_poisoned("users.unity.reconnect") {
            // The strategy itself is wrong and already reported.
        } else if strategy != UnityStrategy::Constant {
            check.report(&i.at, "`interval` applies to `reconnect: constant` only");
        } else if let Some(d) = check.positive_duration(i) {
            out.interval = d;
        }
    }
    out
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

pub(crate) fn channels(
    check: &mut Check<'_>,
    raw: Option<&Sp<RawChannels>>,
    user_count: Option<u64>,
) -> Option<Channels> {
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
        Some(n) if n.value == 0 || n.value > MAX_USERS => {
            check.report(&n.at, format!("must be 1 to {MAX_USERS}"));
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
