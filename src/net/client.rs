//! The one HTTP/1.1 client type: hyper's pooled (legacy) client over [`Connector`], its pool,
//! connect timeout, body limit and optional cap on requests in flight given as [`Options`].
//! Each request is bounded by a timeout and reads at most the body limit (a 30 MB body once took
//! the harness to 1.79 GB); every failure is one [`Error`] with an [`ErrorKind`].
//!
//! The cap ("slots") is for a client that must stay inside the harness's own descriptors: a
//! request waits for a slot for at most its timeout, and the wait is told to the options'
//! [`SlotWatch`] as it ends, so that the caller can measure it apart from the server's time
//! (this layer records nothing itself).

use super::connect::{ConnectError, Connector};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The most bytes of a response body the harness's clients read by default.
pub const MAX_BODY: usize = 1 << 20;

/// How much of a body goes into an error message.
pub const SNIPPET: usize = 200;

/// The first [`SNIPPET`] bytes of a body for a one-line message: lossy UTF-8, control
/// characters replaced, `…` when cut.
pub fn snippet(body: &[u8]) -> String {
    let cut = body.len() > SNIPPET;
    let text: String = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut { format!("{text}…") } else { text }
}

/// A client's pool and limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Idle connections kept per host.
    pub pool_idle_per_host: usize,
    /// How long an idle connection is kept (`None`: hyper's default, 90 s).
    pub pool_idle_timeout: Option<Duration>,
    /// Bound on each new connection's TCP connect (`None`: the OS's).
    pub connect_timeout: Option<Duration>,
    /// The most bytes of a body read; a longer body is [`ErrorKind::BodyTooLong`].
    pub max_body: usize,
    /// The most requests in flight at once (`None`: no cap).
    pub slots: Option<usize>,
    /// Told every slot wait, on a client with slots.
    pub slot_watch: Option<SlotWatch>,
    /// The run's TLS configuration, for `https` URLs (`None`: they fail as [`ErrorKind::Request`]).
    pub tls: Option<super::Tls>,
}

/// What a client with slots tells about each wait for one: how long it took, and whether it
/// gave up (no slot within the request's timeout). Called once per request, as the wait ends.
#[derive(Clone)]
pub struct SlotWatch(pub Arc<dyn Fn(Duration, bool) + Send + Sync>);

impl std::fmt::Debug for SlotWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotWatch")
    }
}

impl Default for Options {
    /// The harness's control traffic (probe, fault API, setup, state check): a few idle
    /// connections, no cap.
    fn default() -> Self {
        Self {
            pool_idle_per_host: 8,
            pool_idle_timeout: None,
            connect_timeout: None,
            max_body: MAX_BODY,
            slots: None,
            slot_watch: None,
            tls: None,
        }
    }
}

/// A pooled client: clone it freely (the pool and the slots are shared behind `Arc`s).
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    slots: Option<Arc<Semaphore>>,
    slot_watch: Option<SlotWatch>,
    max_body: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("free_slots", &self.slots.as_ref().map(|s| s.available_permits()))
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new(&Options::default())
    }
}

/// A response: status, headers and the whole body (at most the client's body limit).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `code` of an error body (status 400 or more, a JSON object with an integer `code`,
    /// the shape every Stream-compatible server answers errors with).
    pub fn error_code(&self) -> Option<i32> {
        if self.status < 400 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("code")?.as_i64().and_then(|c| i32::try_from(c).ok())
    }
}

/// Why a request got no usable answer, in the classes callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be built (a bad URL or header, a scheme this build lacks).
    Request,
    /// The host did not resolve.
    Dns,
    /// The server refused the connection.
    Refused,
    /// The harness ran out of descriptors, buffers or local ports: not the target's fault.
    Local,
    /// The TCP connect did not complete within the connect timeout.
    ConnectTimeout,
    /// The TLS handshake was refused (a certificate not trusted, a name mismatch, an expired
    /// certificate, no common protocol): the detail says which.
    Tls,
    /// A reset, a closed connection or a malformed response head.
    Reset,
    /// No whole answer within the request's timeout.
    Timeout,
    /// The body was longer than the client's limit.
    BodyTooLong,
    /// The body could not be read.
    Body,
    /// No free slot within the request's timeout: the generator's failure, the request never left.
    Saturated,
}

/// A failed request: its class, the URL and a one-line description.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    url: String,
    detail: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { kind, url, detail } = self;
        match kind {
            ErrorKind::Request => write!(f, "bad request to {url}: {detail}"),
            ErrorKind::Body | ErrorKind::BodyTooLong => write!(f, "{url}: reading body: {detail}"),
            _ => write!(f, "{url}: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    fn new(kind: ErrorKind, url: &str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            url: url.to_owned(),
            detail: detail.into(),
        }
    }

    /// The class of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The URL asked for.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What failed, without the URL.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// True when the request failed for lack of the harness's own resources.
    pub fn is_local(&self) -> bool {
        self.kind == ErrorKind::Local
    }

    /// True when no slot was free within the timeout (the request never left).
    pub fn is_saturated(&self) -> bool {
        self.kind == ErrorKind::Saturated
    }
}

/// A request that went out (or could not): the answer, and when it left the harness (after any
/// wait for a slot, so that callers measure the server's time from it).
#[derive(Debug)]
pub struct Sent {
    /// The answer.
    pub result: Result<Response, Error>,
    /// When the request left (after any slot wait; when the wait failed, when it gave up).
    pub sent: Instant,
}

impl Client {
    /// A client with these pool and limits.
    pub fn new(options: &Options) -> Self {
        let connector = Connector::new()
            .connect_timeout(options.connect_timeout)
            .tls(options.tls.clone());
        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder.pool_max_idle_per_host(options.pool_idle_per_host);
        if let Some(t) = options.pool_idle_timeout {
            builder.pool_idle_timeout(t);
        }
        Self {
            inner: builder.build(connector),
            slots: options.slots.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            slot_watch: options.slot_watch.clone(),
            max_body: options.max_body,
        }
    }

    /// The control traffic's client ([`Options::default`]) speaking TLS to `https` URLs with `tls`.
    pub fn with_tls(tls: Option<super::Tls>) -> Self {
        Self::new(&Options {
            tls,
            ..Options::default()
        })
    }

    /// Slots free now (`None` on a client without a cap).
    pub fn free_slots(&self) -> Option<usize> {
        self.slots.as_ref().map(|s| s.available_permits())
    }

    /// [`Client::exchange`], the answer only.
    ///
    /// # Errors
    /// [`Error`]: what failed, classified by [`ErrorKind`].
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        self.exchange(method, url, headers, body, timeout).await.result
    }

    /// Sends one request (a body goes as `application/json`) and reads the whole answer within
    /// `timeout`, counted from when the request leaves; on a client with slots, the wait for one
    /// is bounded by `timeout` too and then fails with [`ErrorKind::Saturated`].
    pub async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Sent {
        let queued = Instant::now();
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = match req.body(Full::new(body.unwrap_or_default())) {
            Ok(r) => r,
            Err(e) => {
                return Sent {
                    result: Err(Error::new(ErrorKind::Request, url, e.to_string())),
                    sent: queued,
                };
            }
        };
        let _slot = match &self.slots {
            None => None,
            Some(slots) => {
                let slot = match slots.clone().try_acquire_owned() {
                    Ok(s) => s,
                    Err(_) => match tokio::time::timeout(timeout, slots.clone().acquire_owned()).await {
                        Ok(Ok(s)) => s,
                        _ => {
                            if let Some(w) = &self.slot_watch {
                                (w.0)(queued.elapsed(), true);
                            }
                            return Sent {
                                result: Err(Error::new(
                                    ErrorKind::Saturated,
                                    url,
                                    "no free request slot in the harness (generator saturated)",
                                )),
                                sent: Instant::now(),
                            };
                        }
                    },
                };
                if let Some(w) = &self.slot_watch {
                    (w.0)(queued.elapsed(), false);
                }
                Some(slot)
            }
        };
        let sent = Instant::now();
        let result = tokio::time::timeout(timeout, self.read(req, url))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    url,
                    format!("timed out (no answer within {timeout:?})"),
                ))
            });
        Sent { result, sent }
    }

    /// The request's answer, its body bounded by the limit.
    async fn read(&self, req: http::Request<Full<Bytes>>, url: &str) -> Result<Response, Error> {
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| Error::new(classify(&e), url, chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        let max = self.max_body;
        let too_long = || {
            Error::new(
                ErrorKind::BodyTooLong,
                url,
                format!("HTTP {status}, body over {max} bytes"),
            )
        };
        // A declared length over the limit is refused before a byte of it is read.
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_long());
        }
        let body = Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_long()
                } else {
                    Error::new(ErrorKind::Body, url, e.to_string())
                }
            })?
            .to_bytes();
        Ok(Response {
            status,
            headers: parts.headers,
            body,
        })
    }
}

/// The class of a failed exchange, from the connector's error or the socket's, wherever in the
/// chain of sources it is.
fn classify(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::BadUri(_) | ConnectError::NoTls(_) => ErrorKind::Request,
                ConnectError::Tls { source, .. } if super::tls::rustls_error(source).is_none() => io_kind(source),
                ConnectError::Tls { .. } => ErrorKind::Tls,
                ConnectError::Resolve(_) => ErrorKind::Dns,
                ConnectError::Timeout(_) => ErrorKind::ConnectTimeout,
                ConnectError::Tcp(io) => io_kind(io),
            };
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_kind(io);
        }
        cur = err.source();
    }
    ErrorKind::Reset
}

/// The class of a socket error.
fn io_kind(io: &std::io::Error) -> ErrorKind {
    if is_local(io) {
        ErrorKind::Local
    } else if io.kind() == std::io::ErrorKind::ConnectionRefused {
        ErrorKind::Refused
    } else if io.kind() == std::io::ErrorKind::TimedOut {
        ErrorKind::ConnectTimeout
    } else {
        ErrorKind::Reset
    }
}

fn is_local(io: &std::io::Error) -> bool {
    matches!(
        io.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// True when an error (or one of its sources) is the harness running out of descriptors,
/// buffers or local ports.
pub fn out_of_local_resources(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<std::io::Error>().is_some_and(is_local) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// An error with its sources, on one line (hyper's own message is only "client error"); a
/// source whose text its parent already ends with is not repeated, and a refused TLS handshake
/// stops at its one-line reason (rustls's own wording is already in it).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(c) = s.downcast_ref::<ConnectError>()
            && matches!(c, ConnectError::Tls { .. })
        {
            out.push_str(": ");
            out.push_str(&c.to_string());
            break;
        }
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `head` and then `body_len` bytes of `x`.
    async fn serve(head: String, body_len: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        addr
    }

    async fn get(client: &Client, url: &str) -> Result<Response, Error> {
        client
            .send(http::Method::GET, url, &[], None, Duration::from_secs(10))
            .await
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        // Without a length (read until close) and with a declared one: both stop at MAX_BODY.
        for declared in [false, true] {
            let len = 30 * MAX_BODY;
            let head = if declared {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_owned()
            };
            let addr = serve(head, len).await;
            let err = get(&Client::default(), &format!("http://{addr}/"))
                .await
                .expect_err("a 30 MiB body must be refused");
            assert_eq!(err.kind(), ErrorKind::BodyTooLong, "{err}");
            assert!(err.to_string().contains("body over"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_body_under_the_limit_is_read() {
        let addr = serve("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_owned(), 1000).await;
        let r = get(&Client::default(), &format!("http://{addr}/"))
            .await
            .expect("answered");
        assert_eq!(r.body.len(), 1000);
        assert_eq!(r.headers.get("content-length").unwrap(), "1000");
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let e = get(&Client::default(), &format!("http://{addr}/")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");
        let e = get(&Client::default(), "not a url").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Request, "{e}");
        let e = get(&Client::default(), "https://127.0.0.1:1/").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Request, "{e}");
        assert!(e.to_string().contains("without a TLS configuration"), "{e}");
        // Accepted, never answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let e = Client::default()
            .send(
                http::Method::GET,
                &format!("http://{addr}/"),
                &[],
                None,
                Duration::from_millis(50),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("timed out"), "{e}");
        drop(listener);
    }

    #[tokio::test]
    async fn https_goes_over_tls_and_a_refused_handshake_is_classified() {
        let made = chatstorm_mock::SelfSigned::default().make().expect("certificate");
        let mock = chatstorm_mock::start(chatstorm_mock::MockConfig {
            tls: Some(made.tls),
            ..chatstorm_mock::MockConfig::default()
        })
        .await
        .expect("a TLS mock");
        let url = format!("{}/hi", mock.base_url());
        // Not trusted: the platform's roots do not hold the mock's certificate.
        let untrusted = Client::with_tls(Some(crate::net::Tls::new(&Default::default()).unwrap()));
        let e = get(&untrusted, &url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
        assert!(e.detail().contains("unknown issuer"), "{e}");
        // Trusted: an answer over TLS, the pooled connection reused for the next call.
        let trusted = Client::with_tls(Some(crate::net::Tls::with_ca_pem(made.cert_pem.as_bytes()).unwrap()));
        for _ in 0..2 {
            let r = get(&trusted, &url).await.expect("an answer over https");
            assert!(r.status < 500, "{}", r.status);
        }
        // A plain client refuses to speak plain HTTP to an https URL.
        let e = get(&Client::default(), &url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Request, "{e}");
        mock.shutdown().await;
    }

    #[tokio::test]
    async fn a_full_client_is_saturated_and_reports_the_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let waits = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = waits.clone();
        let client = Client::new(&Options {
            slots: Some(1),
            slot_watch: Some(SlotWatch(Arc::new(move |d, gave_up| {
                w.lock().unwrap().push((d, gave_up))
            }))),
            ..Options::default()
        });
        let url = format!("http://{addr}/");
        let held = {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .exchange(http::Method::GET, &url, &[], None, Duration::from_secs(5))
                    .await
            })
        };
        while client.free_slots() != Some(0) {
            tokio::task::yield_now().await;
        }
        let s = client
            .exchange(http::Method::GET, &url, &[], None, Duration::from_millis(50))
            .await;
        assert!(s.result.as_ref().unwrap_err().is_saturated());
        let waits = waits.lock().unwrap().clone();
        assert_eq!(waits.len(), 2, "{waits:?}");
        assert!(
            !waits[0].1 && waits[1].1 && waits[1].0 >= Duration::from_millis(50),
            "{waits:?}"
        );
        held.abort();
        drop(listener);
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        let s = snippet(&[b'a'; 1000]);
        assert_eq!(s.chars().count(), SNIPPET + 1);
        assert_eq!(snippet(b"a\nb\x00c"), "a b c");
    }

    #[test]
    fn error_codes_come_from_error_bodies_only() {
        let r = |status, body: &'static str| Response {
            status,
            headers: http::HeaderMap::new(),
            body: Bytes::from(body),
        };
        assert_eq!(r(401, r#"{"code":40}"#).error_code(), Some(40));
        assert_eq!(r(200, r#"{"code":40}"#).error_code(), None);
        assert_eq!(r(502, "<html>").error_code(), None);
    }
}
