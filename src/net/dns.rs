//! Name resolution once per run: [`resolve_once`] looks up each host name a run connects to (the
//! target, its token endpoint) with the system resolver (tokio's `lookup_host`) before any user
//! starts, times the lookup (the `connect.dns` histogram), and pins the answer ([`Pins`]) so that
//! every later connection of the run, users, REST lanes, probes and fault API alike, goes to the
//! same addresses without asking the resolver again ([`pinned`], consulted by
//! `super::connect::addresses`). [`Resolution`] is what the summary shows of it.
//!
//! Why pinned process-wide and not carried by each client: the run's clients are built in a
//! dozen places (each user lane, the probe, setup, the fault client, the conformance client), and
//! they must all agree on the addresses; a resolver asked 10,000 times in a connect burst would
//! also be measured as part of the server's connect time and could answer differently mid-run.
//! The pins live as long as the run holds the [`Pins`] guard; IP literals are never looked up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

/// One host name's lookup: the addresses it gave (in the order connections try them; a user's
/// WebSocket uses the first) and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The host name as the URL writes it.
    pub host: String,
    /// The port connections use.
    pub port: u16,
    /// The addresses, in the resolver's order.
    pub addrs: Vec<SocketAddr>,
    /// The lookup's time.
    pub took: Duration,
}

type Table = HashMap<(String, u16), (Vec<SocketAddr>, usize)>;

fn table() -> &'static RwLock<Table> {
    static PINS: OnceLock<RwLock<Table>> = OnceLock::new();
    PINS.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The pinned addresses of `host:port`, if a run resolved it.
pub fn pinned(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    let t = table().read().ok()?;
    if t.is_empty() {
        return None;
    }
    t.get(&(host.to_ascii_lowercase(), port)).map(|(a, _)| a.clone())
}

/// The run's pins: released (the host names looked up afresh by the next run) when dropped.
#[derive(Debug, Default)]
pub struct Pins {
    keys: Vec<(String, u16)>,
    /// What was looked up, in the order asked.
    pub resolutions: Vec<Resolution>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        let Ok(mut t) = table().write() else { return };
        for key in &self.keys {
            if let Some((_, refs)) = t.get_mut(key) {
                *refs -= 1;
                if *refs == 0 {
                    t.remove(key);
                }
            }
        }
    }
}

/// The host and port a URL connects to (the scheme's default port when none is written).
fn host_port(url: &url::Url) -> Option<(String, u16)> {
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    Some((host, port))
}

/// Looks up each distinct host name of `urls` once (IP literals are skipped) and pins the
/// answers for as long as the returned [`Pins`] live.
///
/// # Errors
/// The first name that does not resolve, or resolves to nothing.
pub async fn resolve_once(urls: &[&url::Url]) -> Result<Pins, super::ResolveError> {
    let mut pins = Pins::default();
    for url in urls {
        let Some((host, port)) = host_port(url) else { continue };
        if host.parse::<IpAddr>().is_ok()
            || pins
                .keys
                .iter()
                .any(|k| k.0 == host.to_ascii_lowercase() && k.1 == port)
        {
            continue;
        }
        let started = Instant::now();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| super::ResolveError::Lookup {
                host: host.clone(),
                source,
            })?
            .collect();
        let took = started.elapsed();
        if addrs.is_empty() {
            return Err(super::ResolveError::Nothing(host));
        }
        let key = (host.to_ascii_lowercase(), port);
        if let Ok(mut t) = table().write() {
            let entry = t.entry(key.clone()).or_insert_with(|| (addrs.clone(), 0));
            entry.0.clone_from(&addrs);
            entry.1 += 1;
        }
        pins.keys.push(key);
        pins.resolutions.push(Resolution {
            host,
            port,
            addrs,
            took,
        });
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_is_looked_up_once_and_pinned_while_the_run_lasts() {
        let a: url::Url = "http://localhost:4321/x".parse().unwrap();
        let b: url::Url = "ws://LOCALHOST:4321/connect".parse().unwrap();
        let ip: url::Url = "http://127.0.0.1:9/".parse().unwrap();
        let pins = resolve_once(&[&a, &b, &ip]).await.expect("localhost resolves");
        assert_eq!(pins.resolutions.len(), 1, "{:?}", pins.resolutions);
        let r = &pins.resolutions[0];
        assert_eq!((r.host.as_str(), r.port), ("localhost", 4321));
        assert!(r.addrs.iter().all(|a| a.ip().is_loopback()), "{:?}", r.addrs);
        assert_eq!(pinned("localhost", 4321), Some(r.addrs.clone()));
        assert_eq!(pinned("localhost", 4322), None);
        drop(pins);
        assert_eq!(pinned("localhost", 4321), None, "released with the run");
    }
}
