//! The mock's listening socket, with an accept queue as deep as the system allows.
//!
//! Why not `TcpListener::bind`: it listens with a backlog of 1,024. A reconnect storm of 19,000
//! clients, all dropped at once and back within the SDK's first back-off (2.5 s), sends its SYNs
//! faster than one accept loop takes them; past 1,024 waiting connections the kernel drops SYNs,
//! and each dropped client waits for its SYN retransmission (1 s, then 3 s more). Measured with
//! `benches/storm.sh`: `connect.tcp` p90 2.0 s and p99 4.1 s, the storm's whole tail. Servers
//! that expect bursts listen with the system's limit (Go's `net.Listen` reads `somaxconn`);
//! the kernel caps the number asked for at `net.core.somaxconn`, so asking for more is safe.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// The accept queue asked for; the kernel uses `min(BACKLOG, net.core.somaxconn)`.
pub const BACKLOG: u32 = 65_535;

/// Binds `addr` (port 0: a free port) and listens with [`BACKLOG`]. Address reuse is on, as
/// `TcpListener::bind` sets it, so a restarted mock can take its port back at once.
///
/// # Errors
/// When the socket cannot be created, bound or put to listen.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn binds_a_free_loopback_port_and_accepts() {
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        assert!(client.is_ok() && accepted.is_ok());
    }
}
