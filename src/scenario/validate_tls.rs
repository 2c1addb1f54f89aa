//! `users.tls`: the TLS settings of the simulated users, today `resumption` (`off`, `on`, or a
//! share of the users such as `0.5` or `"50%"`), checked into the share the engine hands to
//! `net::Tls::with_resumption`.

use super::check::Check;
use super::de::Sp;
use super::raw::{RawShare, Scalar};

/// `users.tls.resumption`: `off`/`false` is 0, `on`/`true` is 1, a share is itself (0 to 1).
/// `None` (reported) for anything else.
pub(crate) fn resumption(check: &mut Check<'_>, sp: &Sp<RawShare>) -> Option<f64> {
    let share = match &sp.value {
        RawShare::Toggle(on) => Some(if *on { 1.0 } else { 0.0 }),
        RawShare::Share(Scalar::Text(t)) if t.trim() == "on" => Some(1.0),
        RawShare::Share(Scalar::Text(t)) if t.trim() == "off" => Some(0.0),
        RawShare::Share(Scalar::Number(n)) => Some(*n).filter(|f| (0.0..=1.0).contains(f)),
        RawShare::Share(Scalar::Text(t)) => t
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| p / 100.0)
            .filter(|f| (0.0..=1.0).contains(f)),
    };
    if share.is_none() {
        check.report(
            &sp.at,
            "resumption is off, on, or the share of users that resume their TLS sessions, such as 0.5 or \"50%\"",
        );
    }
    share
}
