//! The one way the harness opens a connection: [`open`] (a resolved address, an optional source
//! address, `TCP_NODELAY`), called directly by the WebSocket paths and through [`Connector`] by
//! every pooled HTTP client, then [`secure`] for a TLS URL. Also the round-robin [`SourceAddrs`]
//! and the resolvers ([`addresses`], [`resolve`]). [`Stream`] is the type every connection is:
//! plain TCP, or TLS over it behind a `Box`, so that a plain connection carries no TLS state
//! (one pointer-sized variant beside the socket, not rustls's buffers).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use super::tls::{self, Tls};

/// The byte stream of every connection the harness opens: plain TCP, or TLS over TCP. The TLS
/// state (rustls's connection, its buffers) is boxed so that a plain connection stays the size
/// of its socket plus a tag.
#[derive(Debug)]
pub enum Stream {
    /// `http://`, `ws://`.
    Plain(TcpStream),
    /// `https://`, `wss://`.
    Tls(Box<super::lean_tls::LeanTls>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => s.tcp(),
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// For a TLS connection whose handshake is done: whether it resumed a session (`Some(true)`)
    /// or was a full handshake (`Some(false)`); `None` for a plain connection.
    pub fn resumed(&self) -> Option<bool> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(s) => s.common().handshake_kind().map(|k| k == rustls::HandshakeKind::Resumed),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(_) => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// hyper's pooled client asks each new connection what it is; nothing to tell beyond the
/// default (no proxy, and HTTP/1.1 only, which ALPN offers alone).
impl hyper_util::client::legacy::connect::Connection for Stream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

/// The TLS handshake over a plain [`Stream`] for `host` (a TLS stream is returned as it is).
///
/// # Errors
/// The handshake failed: an `io::Error` carrying the [`rustls::Error`] when rustls refused
/// ([`tls::rustls_error`], [`tls::reason`]).
pub async fn secure(stream: Stream, tls: &Tls, host: &str) -> std::io::Result<Stream> {
    match stream {
        Stream::Plain(tcp) => Ok(Stream::Tls(Box::new(tls::handshake(tls, host, tcp).await?))),
        s @ Stream::Tls(_) => Ok(s),
    }
}

/// Local source addresses for sockets, handed out round-robin, so that one machine is not capped
/// by the ~28k ephemeral ports one source address has towards one server address and port.
#[derive(Debug, Default)]
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
    /// `--source-ips`: bind for any target of the addresses' family, not only loopback ones.
    explicit: bool,
}

impl SourceAddrs {
    /// No binding: the OS picks the source address.
    pub fn none() -> Self {
        Self::default()
    }

    /// These addresses, in turn.
    pub fn new(addrs: Vec<IpAddr>) -> Self {
        Self {
            addrs,
            next: AtomicUsize::new(0),
            explicit: false,
        }
    }

    /// `--source-ips`: these addresses, in turn, for every target of their family (checked
    /// local and sufficient before the run, `super::sources::check`).
    pub fn explicit(addrs: Vec<IpAddr>) -> Self {
        Self {
            explicit: true,
            ..Self::new(addrs)
        }
    }

    /// `127.0.0.1` to `127.0.0.n` (Linux routes all of 127.0.0.0/8 to loopback).
    pub fn loopback(n: u8) -> Self {
        Self::new(
            (1..=n.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect(),
        )
    }

    /// The next source address for a connection to `target`: none unless both are loopback
    /// IPv4, or, for `--source-ips`, unless the address is of the target's family.
    pub fn pick(&self, target: &SocketAddr) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        if !self.explicit && (!target.ip().is_loopback() || !target.is_ipv4()) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        Some(self.addrs[i]).filter(|a| a.is_ipv4() == target.is_ipv4())
    }
}

/// Binding to a source address with port 0 makes the kernel pick a port that is free for every
/// destination, searching the whole range on each bind: past about half the range in use that
/// search eats the harness's CPU and then fails. `IP_BIND_ADDRESS_NO_PORT` defers the choice to
/// `connect`, where the port only has to be unique for this destination.
fn defer_port_choice(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the stated length.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// A connection to `server`, from `source` when given (port chosen at connect), with
/// `TCP_NODELAY` on. The socket's own errors (descriptors, ports) come back as they are, so the
/// caller can tell the harness's failures from the server's ([`super::out_of_local_resources`]).
///
/// # Errors
/// Creating, binding or connecting the socket failed.
pub async fn open(server: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Stream> {
    open_tcp(server, source).await.map(Stream::Plain)
}

/// [`open`], the socket itself.
///
/// # Errors
/// Creating, binding or connecting the socket failed.
pub async fn open_tcp(server: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    if let Some(ip) = source {
        defer_port_choice(&socket);
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Why a base URL gives no server address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The URL names no host.
    #[error("{0} has no host")]
    NoHost(url::Url),
    /// The resolver failed.
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The host asked for.
        host: String,
        /// What the resolver said.
        source: std::io::Error,
    },
    /// The resolver answered with no address.
    #[error("{0} resolves to nothing")]
    Nothing(String),
}

/// Every address of `host:port`: an IP literal without asking the resolver, a name the run pinned
/// ([`super::dns`]) as pinned, any other name through the resolver.
///
/// # Errors
/// [`ResolveError::Lookup`] or [`ResolveError::Nothing`].
pub async fn addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // A name the run resolved before it started: the same addresses for every connection.
    if let Some(addrs) = super::dns::pinned(host, port) {
        return Ok(addrs);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ResolveError::Lookup {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::Nothing(host.to_owned()));
    }
    Ok(addrs)
}

/// The server address of a base URL (the first the resolver gives; loopback names resolve
/// locally).
///
/// # Errors
/// [`ResolveError`] when the URL has no host or it does not resolve.
pub async fn resolve(base: &url::Url) -> Result<SocketAddr, ResolveError> {
    let host = base.host_str().ok_or_else(|| ResolveError::NoHost(base.clone()))?;
    let port = base.port_or_known_default().unwrap_or(80);
    Ok(addresses(host, port).await?[0])
}

/// Why [`Connector`] opened no connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI has no host, or a scheme this build does not speak.
    #[error("cannot connect to {0}")]
    BadUri(String),
    /// The host did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Every address failed; the last address's error.
    #[error("tcp connect error: {0}")]
    Tcp(#[source] std::io::Error),
    /// The TLS handshake failed; `reason` is one line ([`tls::reason`]).
    #[error("TLS handshake with {host}: {reason}")]
    Tls {
        /// The host name checked.
        host: String,
        /// Why.
        reason: String,
        /// The handshake's error.
        #[source]
        source: std::io::Error,
    },
    /// An `https` URI on a connector without the run's TLS configuration (a harness bug).
    #[error("{0}: https without a TLS configuration")]
    NoTls(String),
    /// No connection within the connect timeout.
    #[error("tcp connect timed out after {0:?}")]
    Timeout(Duration),
}

/// The connector of every pooled HTTP client: resolves the URI's host, then [`open`]s each
/// address in turn (from the next source address, when there are any) until one connects,
/// within the optional connect timeout.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    sources: Arc<SourceAddrs>,
    connect_timeout: Option<Duration>,
    tls: Option<Tls>,
}

impl Connector {
    /// No source binding, no connect timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds each connect (all addresses together) by `timeout`.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Binds connections to these source addresses, in turn.
    #[must_use]
    pub fn sources(mut self, sources: Arc<SourceAddrs>) -> Self {
        self.sources = sources;
        self
    }

    /// Speaks TLS to `https` URIs with this configuration.
    #[must_use]
    pub fn tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// A connection to `host:port`: TCP for `http` URIs, TCP then the TLS handshake for `https`
    /// (within the same connect timeout).
    ///
    /// # Errors
    /// [`ConnectError`]: no host, no address, every address refused or failed, the handshake
    /// refused, or the timeout.
    pub async fn connect(&self, uri: &http::Uri) -> Result<Stream, ConnectError> {
        let tls = match uri.scheme_str() {
            None | Some("http") => None,
            Some("https") => Some(self.tls.as_ref().ok_or_else(|| ConnectError::NoTls(uri.to_string()))?),
            Some(_) => return Err(ConnectError::BadUri(uri.to_string())),
        };
        let host = uri.host().ok_or_else(|| ConnectError::BadUri(uri.to_string()))?;
        let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let attempt = async {
            let mut last = None;
            for addr in addresses(host, port).await? {
                match open(addr, self.sources.pick(&addr)).await {
                    Ok(s) => {
                        let Some(tls) = tls else { return Ok(s) };
                        return secure(s, tls, host).await.map_err(|source| ConnectError::Tls {
                            host: host.to_owned(),
                            reason: tls::rustls_error(&source)
                                .map_or_else(|| format!("TLS handshake failed: {source}"), tls::reason),
                            source,
                        });
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(ConnectError::Tcp(
                last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
            ))
        };
        match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, attempt)
                .await
                .unwrap_or(Err(ConnectError::Timeout(t))),
            None => attempt.await,
        }
    }
}

/// What hyper's pooled client calls for a new connection (one boxed future per new connection,
/// as hyper's own connector has; a request on a pooled connection never gets here).
impl tower_service::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.connect(&uri).await.map(hyper_util::rt::TokioIo::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_stream_carries_no_tls_state() {
        // The TLS variant is a pointer: a plain connection costs its socket and at most a tag.
        let plain = std::mem::size_of::<TcpStream>();
        let stream = std::mem::size_of::<Stream>();
        assert!(stream <= plain + 8, "Stream {stream} B, TcpStream {plain} B");
    }

    #[test]
    fn source_addresses_rotate_for_loopback_targets_only() {
        let s = SourceAddrs::loopback(3);
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let picks: Vec<_> = (0..4).map(|_| s.pick(&lo).unwrap().to_string()).collect();
        assert_eq!(picks, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert_eq!(s.pick(&"10.0.0.1:80".parse().unwrap()), None);
        assert_eq!(SourceAddrs::none().pick(&lo), None);
    }

    #[tokio::test]
    async fn the_connector_binds_its_source_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let c = Connector::new().sources(Arc::new(SourceAddrs::new(vec!["127.0.0.3".parse().unwrap()])));
        let uri: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let s = c.connect(&uri).await.expect("connects");
        assert_eq!(s.tcp().local_addr().unwrap().ip().to_string(), "127.0.0.3");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip().to_string(), "127.0.0.3");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_tcp_error_and_https_needs_a_tls_configuration() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let uri: http::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let e = Connector::new().connect(&uri).await.expect_err("closed");
        assert!(
            matches!(&e, ConnectError::Tcp(io) if io.kind() == std::io::ErrorKind::ConnectionRefused),
            "{e}"
        );
        let uri: http::Uri = "https://127.0.0.1:1/".parse().unwrap();
        assert!(matches!(
            Connector::new().connect(&uri).await,
            Err(ConnectError::NoTls(_))
        ));
        let uri: http::Uri = "ftp://127.0.0.1:1/".parse().unwrap();
        assert!(matches!(
            Connector::new().connect(&uri).await,
            Err(ConnectError::BadUri(_))
        ));
    }
}
