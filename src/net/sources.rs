//! `--source-ips`: the local addresses a run's users connect from when the target is a real
//! server, so that one machine can hold more connections to one server address and port than
//! the ~28,000 ephemeral ports a single source address has towards it. [`parse`] reads the flag
//! (a comma-separated list, or a CIDR block whose host addresses are used), [`check`] proves
//! before the run starts that the addresses are this machine's and that they, and the descriptor
//! limit, can carry the users ([`BudgetError`], one line, its own exit code). The sockets are
//! then bound round-robin by `super::SourceAddrs::explicit` with the port left to `connect`
//! (`IP_BIND_ADDRESS_NO_PORT`, `super::connect`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// At most this many addresses from one flag (a /8 would be 16 million sockets' worth).
pub const MAX_SOURCES: usize = 4096;

/// Descriptors kept for everything that is not a user's socket (as the engine's own reserve).
pub const RESERVED_FDS: u64 = crate::sys::RESERVED_FDS;

/// The addresses `--source-ips` names: `127.0.0.2,127.0.0.3`, `10.1.0.0/28` (its host addresses:
/// without the network and broadcast addresses for IPv4 blocks of 4 or more), or a mix.
///
/// # Errors
/// A one-line reason: an entry that is neither an address nor a CIDR block, a prefix too long
/// for the family, more than [`MAX_SOURCES`] addresses, both families, or none.
pub fn parse(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('/') {
            None => out.push(
                entry
                    .parse()
                    .map_err(|_| format!("{entry:?} is not an IP address or a CIDR block such as 10.1.0.0/28"))?,
            ),
            Some((ip, prefix)) => out.extend(block(entry, ip, prefix)?),
        }
        if out.len() > MAX_SOURCES {
            return Err(format!("more than {MAX_SOURCES} addresses"));
        }
    }
    out.dedup();
    if out.is_empty() {
        return Err("no address given".to_owned());
    }
    if out.iter().any(IpAddr::is_ipv4) && out.iter().any(IpAddr::is_ipv6) {
        return Err("mixes IPv4 and IPv6 addresses; a run connects to one address family".to_owned());
    }
    Ok(out)
}

fn block(entry: &str, ip: &str, prefix: &str) -> Result<Vec<IpAddr>, String> {
    let bad = || format!("{entry:?} is not a CIDR block such as 10.1.0.0/28");
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    match ip {
        IpAddr::V4(v4) => {
            if prefix > 32 {
                return Err(bad());
            }
            let size = 1u64 << (32 - prefix);
            if size > MAX_SOURCES as u64 + 2 {
                return Err(format!("{entry} holds {size} addresses, more than {MAX_SOURCES}"));
            }
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            let base = u32::from(v4) & mask;
            // A block of 4 or more keeps its network and broadcast addresses out; /31 and /32
            // are all hosts (RFC 3021).
            let (first, last) = if size >= 4 { (1, size - 2) } else { (0, size - 1) };
            Ok((first..=last)
                .map(|i| IpAddr::V4(Ipv4Addr::from(base + i as u32)))
                .collect())
        }
        IpAddr::V6(v6) => {
            if prefix > 128 {
                return Err(bad());
            }
            let bits = 128 - prefix;
            if bits > 12 {
                return Err(format!("{entry} holds more than {MAX_SOURCES} addresses"));
            }
            let mask = if prefix == 0 { 0 } else { u128::MAX << bits };
            let base = u128::from(v6) & mask;
            Ok((0..(1u128 << bits))
                .map(|i| IpAddr::V6(Ipv6Addr::from(base + i)))
                .collect())
        }
    }
}

/// The size of the kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, 28,232 by
/// default on Linux): the connections one source address can hold to one server address and port.
pub fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            let (lo, hi) = (it.next()??, it.next()??);
            (hi >= lo).then(|| hi - lo + 1)
        })
        .unwrap_or(28_232)
}

/// Why the source addresses cannot carry the run (each one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// An address that is not this machine's (binding to it fails).
    #[error("--source-ips: {addr} is not an address of this machine ({reason})")]
    NotLocal {
        /// The address.
        addr: IpAddr,
        /// What binding said.
        reason: String,
    },
    /// No address of the target's family.
    #[error("--source-ips: no {family} address to connect to {target} from")]
    Family {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The server address.
        target: SocketAddr,
    },
    /// Too few ports.
    #[error(
        "--source-ips: {users} users need {users} connections to {target}, and {sources} source address{} carr{} at most {capacity} ({ports} local ports each): give at least {needed} addresses",
        if *sources == 1 { "" } else { "es" },
        if *sources == 1 { "ies" } else { "y" }
    )]
    Ports {
        /// Users of this process.
        users: u64,
        /// The server address.
        target: SocketAddr,
        /// Source addresses of the target's family.
        sources: u64,
        /// Ports per source address.
        ports: u64,
        /// `sources * ports`.
        capacity: u64,
        /// Addresses that would do.
        needed: u64,
    },
    /// Too few descriptors.
    #[error(
        "--source-ips: {users} users need {need} open descriptors ({users} sockets and {reserved} for the harness) and this process may open {limit} (ulimit -n, hard limit): run fewer users per process (--workers) or raise the limit"
    )]
    Descriptors {
        /// Users of this process.
        users: u64,
        /// `users + reserved`.
        need: u64,
        /// Kept for the rest.
        reserved: u64,
        /// The descriptor limit.
        limit: u64,
    },
}

/// Whether `users` connections to `target` fit on `sources` with `ports` ephemeral ports per
/// address and `fd_limit` descriptors; descriptors are checked first (they bind sooner on most
/// machines), then ports. Addresses are not bound here ([`check_local`]).
///
/// # Errors
/// The first budget that does not hold.
pub fn check_budget(
    sources: &[IpAddr],
    target: SocketAddr,
    users: u64,
    ports: u64,
    fd_limit: u64,
) -> Result<(), BudgetError> {
    let need = users + RESERVED_FDS;
    if need > fd_limit {
        return Err(BudgetError::Descriptors {
            users,
            need,
            reserved: RESERVED_FDS,
            limit: fd_limit,
        });
    }
    let same = sources.iter().filter(|s| s.is_ipv4() == target.is_ipv4()).count() as u64;
    if same == 0 {
        return Err(BudgetError::Family {
            family: if target.is_ipv4() { "IPv4" } else { "IPv6" },
            target,
        });
    }
    let capacity = same * ports;
    if users > capacity {
        return Err(BudgetError::Ports {
            users,
            target,
            sources: same,
            ports,
            capacity,
            needed: users.div_ceil(ports.max(1)),
        });
    }
    Ok(())
}

/// Binds a socket to each address (port 0, then closed) to prove it is this machine's.
///
/// # Errors
/// [`BudgetError::NotLocal`] for the first address that is not.
pub fn check_local(sources: &[IpAddr]) -> Result<(), BudgetError> {
    for &addr in sources {
        std::net::TcpListener::bind(SocketAddr::new(addr, 0))
            .map(drop)
            .map_err(|e| BudgetError::NotLocal {
                addr,
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn lists_and_blocks_parse() {
        assert_eq!(parse("127.0.0.2, 127.0.0.3").unwrap(), ips(&["127.0.0.2", "127.0.0.3"]));
        assert_eq!(
            parse("10.1.0.0/29").unwrap(),
            ips(&["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"])
        );
        assert_eq!(parse("127.0.0.2/31").unwrap(), ips(&["127.0.0.2", "127.0.0.3"]));
        assert_eq!(parse("10.0.0.9/32").unwrap(), ips(&["10.0.0.9"]));
        assert_eq!(parse("fd00::/126").unwrap().len(), 4);
        assert!(parse("10.0.0.0/8").unwrap_err().contains("more than 4096"));
        assert!(parse("ten").unwrap_err().contains("not an IP address"));
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("10.0.0.1,::1").unwrap_err().contains("mixes"));
        assert!(parse(" , ").unwrap_err().contains("no address"));
    }

    #[test]
    fn the_budget_counts_ports_per_address_and_descriptors() {
        let target: SocketAddr = "10.9.0.1:443".parse().unwrap();
        let two = ips(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(check_budget(&two, target, 56_000, 28_232, 100_000), Ok(()));
        let e = check_budget(&two, target, 60_000, 28_232, 100_000).unwrap_err();
        assert!(
            matches!(
                e,
                BudgetError::Ports {
                    needed: 3,
                    capacity: 56_464,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "--source-ips: 60000 users need 60000 connections to 10.9.0.1:443, and 2 source addresses carry at most 56464 (28232 local ports each): give at least 3 addresses"
        );
        let e = check_budget(&two, target, 20_000, 28_232, 20_000).unwrap_err();
        assert!(matches!(e, BudgetError::Descriptors { need: 20_200, .. }), "{e}");
        let e = check_budget(&ips(&["::1"]), target, 1, 28_232, 1000).unwrap_err();
        assert!(matches!(e, BudgetError::Family { .. }), "{e}");
        assert!(ephemeral_ports() > 1000);
    }

    #[test]
    fn loopback_aliases_are_local_and_others_are_not() {
        assert_eq!(check_local(&ips(&["127.0.0.2", "127.0.0.3"])), Ok(()));
        let e = check_local(&ips(&["192.0.2.77"])).unwrap_err();
        assert!(
            e.to_string().contains("192.0.2.77 is not an address of this machine"),
            "{e}"
        );
    }
}
