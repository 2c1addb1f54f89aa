//! The live endpoints' one HTTP server: hyper's HTTP/1 connection serving on the run's runtime,
//! one task per connection, each request answered by a plain function. Bodies are boxed so that
//! a handler can answer with a whole text or with a stream (the dashboard's server-sent events).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A response body: a whole text or a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a handler answers.
pub type Response = http::Response<Body>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A plain answer with a status, a content type and a body.
pub fn answer(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(full(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// Binds `addr` and serves every connection with `handler` until the process ends; gives the
/// bound address (port 0 resolved).
///
/// # Errors
/// The bind's error.
pub async fn serve<H>(addr: SocketAddr, handler: H) -> std::io::Result<SocketAddr>
where
    H: Fn(&http::Request<Incoming>) -> Response + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors under load: the run matters more than a scrape; try again.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let r = handler(&req);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}
