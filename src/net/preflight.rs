//! The pre-flight handshake of a run and of `conform`: one TCP connect and TLS handshake to the
//! target before any user starts ([`preflight`]), so that a certificate the run does not trust
//! ends it with one reason ([`PreflightError`]) instead of one failed handshake per user. Apart
//! from `tls` and `connect` because it uses both (the resolver and the socket of one, the
//! handshake and its reason of the other).

use super::tls::{self, Tls};

/// Why the pre-flight handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The URL names no host.
    #[error("{0}: no host")]
    NoHost(String),
    /// The host did not resolve.
    #[error(transparent)]
    Resolve(#[from] super::ResolveError),
    /// No TCP connection.
    #[error("TLS pre-flight to {addr}: {reason}")]
    Tcp {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The handshake failed: `reason` is one line (unknown issuer, name mismatch, expired, ...).
    #[error("TLS pre-flight to {host} ({addr}): {reason}")]
    Handshake {
        /// The host name checked.
        host: String,
        /// The address tried.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// One TCP connect and TLS handshake to `url`'s host (nothing sent after it), so that a
/// certificate the run does not trust stops the run with one reason before any user starts.
///
/// # Errors
/// [`PreflightError`] with the reason.
pub async fn preflight(config: &Tls, url: &url::Url, timeout: std::time::Duration) -> Result<(), PreflightError> {
    let host = url.host_str().ok_or_else(|| PreflightError::NoHost(url.to_string()))?;
    let addr = super::resolve(url).await?;
    let attempt = async {
        let tcp = super::connect::open_tcp(addr, None)
            .await
            .map_err(|e| PreflightError::Tcp {
                addr,
                reason: e.to_string(),
            })?;
        tls::handshake(config, host, tcp)
            .await
            .map_err(|e| PreflightError::Handshake {
                host: host.to_owned(),
                addr,
                reason: tls::rustls_error(&e).map_or_else(|| format!("TLS handshake failed: {e}"), tls::reason),
            })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r.map(drop),
        Err(_) => Err(PreflightError::Handshake {
            host: host.to_owned(),
            addr,
            reason: format!("no TCP connection and TLS handshake within {timeout:?}"),
        }),
    }
}
