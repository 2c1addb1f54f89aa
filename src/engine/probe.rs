//! Is the target there at all? One `GET /hi` (the JS SDK's warm-up call) before any user starts,
//! so an unreachable target is reported as such (exit 5) instead of as 10,000 failed connects.
//! Plain WebSocket targets get a TCP connect only.

use crate::http::HttpClient;
use crate::target::Target;
use std::time::Duration;

/// Checks that the target answers HTTP at all (any status counts: it is there).
///
/// # Errors
/// A one-line description when it does not answer within 5 s.
pub async fn reachable(target: &Target) -> Result<(), String> {
    let url = Target::join(&target.http_base, "/hi");
    HttpClient::default()
        .send(http::Method::GET, &url, &[], None, Duration::from_secs(5))
        .await
        .map(|_| ())
}

/// Checks that the WebSocket URL's host accepts a TCP connection (and closes it at once).
///
/// # Errors
/// A one-line description when it does not resolve or accept within 5 s.
pub async fn reachable_tcp(target: &Target) -> Result<(), String> {
    let addr = crate::user::transport::resolve(&target.ws_base).await?;
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer within 5 s")),
    }
}
