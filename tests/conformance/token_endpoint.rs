//! A token endpoint on 127.0.0.1:0 (`GET /token?user_id=…` → `{"token": …}`), as a real
//! deployment without a shared secret would offer.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves tokens signed with `secret` until the runtime ends; returns the endpoint URL.
pub async fn start(secret: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let secret = secret.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let q = chatstorm_protocol::connect::parse_query(req.uri().query().unwrap_or_default());
                    let body = match q.user_id {
                        Some(id) => {
                            let claims = chatstorm_protocol::token::Claims::user(id, None);
                            serde_json::json!({"token": chatstorm_protocol::token::sign(&claims, &secret)}).to_string()
                        }
                        None => String::new(),
                    };
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    format!("http://{addr}/token")
}

/// An HTTP server answering every request with 404 and a Stream error body (code 16), as a
/// deployment without the long-poll fallback answers `/longpoll`.
pub async fn start_not_found() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let body =
                        chatstorm_protocol::ErrorBody::new(chatstorm_protocol::ErrorCode(16), "Route", "not found");
                    let mut resp = Response::new(Full::new(Bytes::from(body.to_json())));
                    *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    format!("http://{addr}")
}
