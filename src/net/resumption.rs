//! TLS session resumption for the simulated users (`users.tls.resumption` in a scenario): which
//! users resume ([`resumes`]: an exact share of the user indexes, spread evenly), and the one
//! session store the resuming users share ([`TicketPool`]), given to the second rustls client
//! configuration of a run (`Tls::with_resumption`).
//!
//! Why a pool of its own and not rustls's `ClientSessionMemoryCache`: that cache keeps at most 8
//! TLS 1.3 tickets per server name, so when thousands of resuming users reconnect at once (a
//! storm) all but 8 would find the cache empty and make a full handshake, and the share asked for
//! would not be the share measured. The pool keeps up to one ticket per resuming user (each
//! handshake, full or resumed, leaves the server's new tickets in it), hands each ticket out once,
//! as rustls requires, and forgets the oldest beyond its bound. Which resuming user gets which
//! ticket does not matter to the server: a ticket names a session, not a device.

use rustls::NamedGroup;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Whether user `index` resumes its TLS sessions when a share `share` (0 to 1) of the users do:
/// exactly `floor(n * share)` of the first `n` indexes, for every `n`, spread evenly (user `i`
/// resumes when `floor((i + 1) s)` passes `floor(i s)`), so any slice of a run carries the share.
pub fn resumes(index: u32, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    if share >= 1.0 {
        return true;
    }
    let i = f64::from(index);
    ((i + 1.0) * share).floor() > (i * share).floor()
}

/// The session store of the resuming users: TLS 1.3 tickets per server name (each handed out
/// once, the oldest forgotten beyond `capacity`), the key-exchange hint and TLS 1.2 sessions as
/// rustls's own cache keeps them.
#[derive(Debug)]
pub struct TicketPool {
    capacity: usize,
    tickets: Mutex<HashMap<ServerName<'static>, VecDeque<Tls13ClientSessionValue>>>,
    rest: ClientSessionMemoryCache,
}

impl TicketPool {
    /// A pool holding at most `capacity` TLS 1.3 tickets per server name (at least 8).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(8),
            tickets: Mutex::new(HashMap::new()),
            rest: ClientSessionMemoryCache::new(64),
        }
    }

    /// TLS 1.3 tickets held for `server_name`.
    pub fn held(&self, server_name: &ServerName<'static>) -> usize {
        self.tickets
            .lock()
            .map_or(0, |t| t.get(server_name).map_or(0, VecDeque::len))
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.rest.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.rest.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.rest.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.rest.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.rest.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let Ok(mut tickets) = self.tickets.lock() else {
            return;
        };
        let queue = tickets.entry(server_name).or_default();
        if queue.len() >= self.capacity {
            queue.pop_front();
        }
        queue.push_back(value);
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest first: it is the one least likely to have expired.
        self.tickets.lock().ok()?.get_mut(server_name)?.pop_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_exact_and_spread() {
        let count = |share: f64, n: u32| (0..n).filter(|&i| resumes(i, share)).count();
        assert_eq!(count(0.5, 1000), 500);
        assert_eq!(count(0.25, 1000), 250);
        assert_eq!(count(0.3, 10), 3);
        assert_eq!(count(0.0, 100), 0);
        assert_eq!(count(1.0, 100), 100);
        // Spread: every other user at one half.
        assert_eq!(
            (0..6).map(|i| resumes(i, 0.5)).collect::<Vec<_>>(),
            [false, true, false, true, false, true]
        );
    }
}
