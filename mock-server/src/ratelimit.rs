//! Owns the optional per-user, per-endpoint rate limits: fixed one-minute windows, code 9 and HTTP 429
//! beyond the limit, and the `X-RateLimit-Limit/Remaining/Reset` values for every response; and
//! the count of server-side calls per operation in the current minute, always kept (server-side
//! calls only, never the clients' hot paths), for `GET /rate_limits`.

use std::collections::HashMap;
use std::sync::Mutex;

/// Windows kept before stale ones are swept (bounds the map under many users).
const SWEEP_AT: usize = 100_000;

/// The header values for one request, and whether it may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the window resets.
    pub reset: i64,
}

/// (user, endpoint) → (window number, requests counted in it).
type Windows = HashMap<(String, &'static str), (i64, u32)>;

/// Counts requests per (user, endpoint) in the current minute.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<u32>,
    windows: Mutex<Windows>,
    /// Operation name → (window number, server-side calls counted in it).
    served: Mutex<HashMap<&'static str, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: Option<u32>) -> Self {
        RateLimiter {
            limit,
            windows: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
        }
    }

    /// The limit every endpoint has when limits are on.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// Counts one server-side call of operation `op` at `now` (Unix seconds).
    pub fn count_server(&self, op: &'static str, now: i64) {
        let window = now.div_euclid(60);
        let mut map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let slot = map.entry(op).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        slot.1 += 1;
    }

    /// Server-side calls of `op` counted in the minute of `now`.
    pub fn server_used(&self, op: &str, now: i64) -> u32 {
        let window = now.div_euclid(60);
        let map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        map.get(op).filter(|(w, _)| *w == window).map_or(0, |(_, n)| *n)
    }

    pub fn enabled(&self) -> bool {
        self.limit.is_some()
    }

    /// Counts one request by `user` to `endpoint` at `now` (Unix seconds); `None` when limits are off.
    pub fn check(&self, user: &str, endpoint: &'static str, now: i64) -> Option<Verdict> {
        let limit = self.limit?;
        let window = now.div_euclid(60);
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (w, _)| *w == window);
        }
        let slot = map.entry((user.to_owned(), endpoint)).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        let allowed = slot.1 < limit;
        if allowed {
            slot.1 += 1;
        }
        Some(Verdict {
            allowed,
            limit,
            remaining: limit - slot.1,
            reset: (window + 1) * 60,
        })
    }

    /// The header values without counting a request (for responses outside the limited endpoints).
    pub fn peek(&self, now: i64) -> Option<Verdict> {
        let limit = self.limit?;
        Some(Verdict {
            allowed: true,
            limit,
            remaining: limit,
            reset: (now.div_euclid(60) + 1) * 60,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_endpoint_and_resets_each_minute() {
        let r = RateLimiter::new(Some(2));
        let t = 6000;
        assert!(r.check("a", "read", t).is_some_and(|v| v.allowed && v.remaining == 1));
        assert!(r.check("a", "read", t).is_some_and(|v| v.allowed && v.remaining == 0));
        let v = r.check("a", "read", t + 1).expect("enabled");
        assert!(!v.allowed);
        assert_eq!(v.reset, 6060);
        assert!(r.check("b", "read", t).is_some_and(|v| v.allowed));
        assert!(r.check("a", "event", t).is_some_and(|v| v.allowed));
        assert!(r.check("a", "read", t + 60).is_some_and(|v| v.allowed));
        assert!(RateLimiter::new(None).check("a", "read", t).is_none());
    }
}
