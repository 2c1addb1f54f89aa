//! A small HTTP/1.1 client for the harness's own control traffic (reachability probe, the mock's
//! fault-control API, channel setup, the end-of-run state check): one pooled hyper client, JSON
//! in and out, bounded by a timeout and by [`MAX_BODY`]: a target answering with a huge body
//! must not take the harness's memory with it (a 30 MB body once took it to 1.79 GB).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The most bytes of a response body the harness reads; a longer body is an error.
pub const MAX_BODY: usize = 1 << 20;

/// How much of a body goes into an error message.
pub const SNIPPET: usize = 200;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be built (a bad URL or header).
    #[error("bad request to {url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// No connection, a reset, or a malformed response head.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
        /// The harness itself ran out of descriptors or local ports: not the target's fault.
        local: bool,
    },
    /// The body could not be read, or was longer than [`MAX_BODY`].
    #[error("{url}: reading body: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Nothing within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

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

/// A pooled client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Default for HttpClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            inner: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(8)
                .build(connector),
        }
    }
}

impl HttpClient {
    /// Sends one request and reads the whole response within `timeout`.
    ///
    /// # Errors
    /// [`HttpError`]: what failed (connect, timeout, a body over [`MAX_BODY`]).
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let payload = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| HttpError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let fut = async {
            let resp = self.inner.request(req).await.map_err(|e| HttpError::Transport {
                url: url.to_owned(),
                reason: chain(&e),
                local: out_of_local_resources(&e),
            })?;
            let status = resp.status().as_u16();
            // A declared length over the limit is refused before a byte of it is read.
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let too_long = || HttpError::Body {
                url: url.to_owned(),
                reason: format!("HTTP {status}, body over {MAX_BODY} bytes"),
            };
            if declared.is_some_and(|n| n > MAX_BODY as u64) {
                return Err(too_long());
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        too_long()
                    } else {
                        HttpError::Body {
                            url: url.to_owned(),
                            reason: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok(Response { status, body })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.to_owned(),
                timeout,
            })?
    }
}

/// True when an error (or one of its sources) is the harness running out of descriptors,
/// buffers or local ports.
pub fn out_of_local_resources(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::ENOMEM)
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl HttpError {
    /// True when the request failed for lack of the harness's own resources.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Transport { local: true, .. })
    }
}

/// An error with its sources, on one line (hyper's own message is only "client error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
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
            let err = HttpClient::default()
                .send(
                    http::Method::GET,
                    &format!("http://{addr}/"),
                    &[],
                    None,
                    Duration::from_secs(10),
                )
                .await
                .expect_err("a 30 MiB body must be refused");
            assert!(matches!(err, HttpError::Body { .. }), "{err}");
            assert!(err.to_string().contains("body over"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_body_under_the_limit_is_read() {
        let addr = serve("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_owned(), 1000).await;
        let r = HttpClient::default()
            .send(
                http::Method::GET,
                &format!("http://{addr}/"),
                &[],
                None,
                Duration::from_secs(10),
            )
            .await
            .expect("answered");
        assert_eq!(r.body.len(), 1000);
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        let s = snippet(&[b'a'; 1000]);
        assert_eq!(s.chars().count(), SNIPPET + 1);
        assert_eq!(snippet(b"a\nb\x00c"), "a b c");
    }
}
