//! TLS for every `https://` and `wss://` connection the harness opens: the one
//! [`rustls::ClientConfig`] of a run ([`Tls`], built once from [`TlsOptions`] and shared behind an
//! `Arc` by every user, the REST and long-poll lanes, the token endpoint, the conformance suite
//! and the fault API), the client handshake over a connected TCP socket ([`handshake`]), the
//! one-line reason of a failed handshake ([`reason`]). The pre-flight handshake a run and
//! `conform` make before anything else is [`super::preflight`].
//!
//! Trust: the platform's roots (rustls-native-certs), webpki-roots when the platform has none,
//! plus `--ca-cert` for a private CA; `--insecure` swaps the certificate check for one that
//! accepts any certificate (handshake signatures are still checked, so the bytes are still
//! encrypted to whoever answered, but that may be anyone). SNI is the URL's host name (an IP
//! address is sent as none, as RFC 6066 asks); ALPN offers `http/1.1` only, the one protocol
//! every client here speaks. Session resumption is off in the run's configuration: the control
//! traffic, REST lanes and conformance suite make full handshakes. A scenario's
//! `users.tls.resumption` adds a second configuration ([`Tls::with_resumption`]) that the
//! resuming share of the users handshake with ([`Tls::for_user`]), sharing one ticket pool
//! (`super::resumption`), so that a storm of resumed handshakes can be asked for apart from a
//! storm of full ones.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;

use super::lean_tls::LeanTls;

/// What the command line (or a test) asks of TLS: `--ca-cert` and `--insecure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust besides the platform's roots.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
}

/// Why the run's TLS configuration could not be built (each one line).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// `--ca-cert` could not be read or holds no certificate.
    #[error("--ca-cert {}: {reason}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (no usable protocol version for the provider).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The run's TLS client configuration: clone it freely (one `Arc` underneath).
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    /// The resuming users' configuration and their share (`users.tls.resumption`).
    resuming: Option<(Arc<rustls::ClientConfig>, f64)>,
    insecure: bool,
    roots: usize,
    /// The CPU every handshake made with this configuration (or a user's copy of it) took.
    cpu: Arc<super::handshake_cpu::HandshakeCpu>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("insecure", &self.insecure)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// ring, the provider this build compiles in (see Cargo.toml for why ring). rustls marks ring's
/// default provider deprecated because it lacks the post-quantum key exchange (X25519MLKEM768)
/// that aws-lc-rs has; the handshakes here offer X25519 and the NIST curves, which every server
/// accepts, and a load test gains nothing from post-quantum secrecy.
///
/// Key exchange X25519 first: ring's provider lists P-384 first, and the client sends its one key
/// share for the first group, so every handshake was a P-384 key generation and agreement, which
/// ring does with generic big-number code: 0.8 CPU s per 1,000 handshakes, three quarters of
/// the harness's handshake cost (perf, `benches/tls.sh`). X25519 first is also what the SDKs'
/// platforms send (browsers, Node, Android, iOS), so the server does the work real clients ask
/// of it; P-256 and P-384 stay offered for servers without X25519. Cipher suites in the order
/// browsers offer them, AES-128-GCM first: ring's provider lists AES-256-GCM-SHA384 first, whose
/// SHA-384 key schedule was the largest single cost of a resumed handshake (perf, 5 %).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = x25519_first(provider.kx_groups);
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        _ => 3,
    });
    Arc::new(provider)
}

/// The key-exchange groups with X25519, then P-256, ahead of the rest (order otherwise kept).
pub fn x25519_first(
    mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> Vec<&'static dyn rustls::crypto::SupportedKxGroup> {
    let rank = |g: &&dyn rustls::crypto::SupportedKxGroup| match g.name() {
        rustls::NamedGroup::X25519 => 0,
        rustls::NamedGroup::secp256r1 => 1,
        _ => 2,
    };
    groups.sort_by_key(rank);
    groups
}

impl Tls {
    /// The configuration `options` ask for.
    ///
    /// # Errors
    /// [`TlsSetupError`] when `--ca-cert` is unreadable or empty.
    pub fn new(options: &TlsOptions) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let builder =
            rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let (mut config, roots) = if options.insecure {
            let verifier = Arc::new(AcceptAnyCertificate(provider));
            (
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth(),
                0,
            )
        } else {
            let roots = root_store(options.ca_cert.as_deref())?;
            let n = roots.len();
            (builder.with_root_certificates(roots).with_no_client_auth(), n)
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            config: Arc::new(config),
            resuming: None,
            insecure: options.insecure,
            roots,
            cpu: Arc::default(),
        })
    }

    /// Trusting exactly the CA certificates in `pem` (tests, and embedders with their own CA).
    ///
    /// # Errors
    /// When `pem` holds no certificate rustls accepts as a root.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, TlsSetupError> {
        let bad = |reason: String| TlsSetupError::CaCert {
            path: PathBuf::from("<memory>"),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate".to_owned()));
        }
        let n = roots.len();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            config: Arc::new(config),
            resuming: None,
            insecure: false,
            roots: n,
            cpu: Arc::default(),
        })
    }

    /// Whether certificate checks are off (`--insecure`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The shared rustls configuration.
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// The same trust, plus session resumption for a share `share` (0 to 1) of `users` users:
    /// their handshakes ([`Tls::for_user`]) go through a second configuration whose session
    /// store is one [`super::resumption::TicketPool`] holding a ticket per resuming user. A
    /// share of 0 leaves the configuration as it is.
    #[must_use]
    pub fn with_resumption(mut self, share: f64, users: u64) -> Self {
        if share <= 0.0 {
            self.resuming = None;
            return self;
        }
        let resuming_users = (users as f64 * share.min(1.0)).ceil() as usize;
        let mut config = (*self.config).clone();
        config.resumption =
            rustls::client::Resumption::store(Arc::new(super::resumption::TicketPool::new(resuming_users)));
        self.resuming = Some((Arc::new(config), share.min(1.0)));
        self
    }

    /// The harness's CPU in the handshakes of this configuration and every copy of it.
    pub fn handshake_cpu(&self) -> &Arc<super::handshake_cpu::HandshakeCpu> {
        &self.cpu
    }

    /// The share of users that resume (0 without [`Tls::with_resumption`]).
    pub fn resumption_share(&self) -> f64 {
        self.resuming.as_ref().map_or(0.0, |(_, s)| *s)
    }

    /// The configuration user `index` handshakes with: the resuming one when the user is in the
    /// resuming share ([`super::resumption::resumes`]), else the run's (a clone of `Arc`s).
    pub fn for_user(&self, index: u32) -> Tls {
        match &self.resuming {
            Some((config, share)) if super::resumption::resumes(index, *share) => Tls {
                config: config.clone(),
                resuming: None,
                insecure: self.insecure,
                roots: self.roots,
                cpu: self.cpu.clone(),
            },
            _ => Tls {
                resuming: None,
                ..self.clone()
            },
        }
    }
}

/// The platform's roots (webpki-roots when it has none), plus the PEM file's certificates.
fn root_store(ca_cert: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the platform store holds but cannot be parsed are skipped, as browsers do.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_cert {
        let bad = |reason: String| TlsSetupError::CaCert {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no PEM certificate".to_owned()));
        }
    }
    Ok(roots)
}

/// `--insecure`: any certificate is accepted; the handshake's signatures are still verified with
/// the provider's algorithms, so only the identity check is gone.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name the handshake sends (SNI) and checks the certificate against: the URL's host, an IP
/// literal without its brackets.
///
/// # Errors
/// When `host` is neither a DNS name nor an IP address.
pub fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host:?}: {e}")))
}

/// The client handshake over a connected socket, for `host` (a [`LeanTls`]: buffers only while
/// they hold bytes, see `super::lean_tls`).
///
/// # Errors
/// The handshake's failure as an `io::Error` whose inner error is the [`rustls::Error`] when
/// rustls refused (see [`reason`]); socket errors as they came.
pub async fn handshake(tls: &Tls, host: &str, tcp: TcpStream) -> std::io::Result<LeanTls> {
    let name = server_name(host)?;
    LeanTls::connect(tls.config.clone(), name, tcp, &tls.cpu).await
}

/// The rustls error inside an error chain, if any.
pub fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// A failed handshake's reason in a person's words: `certificate not trusted: unknown issuer`,
/// `certificate name mismatch: ...`, `certificate expired: ...`, or rustls's own text.
pub fn reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate not trusted: unknown issuer (give its CA with --ca-cert, or --insecure)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate name mismatch: {c}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate expired: {c}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate not valid yet: {c}")
            }
            CertificateError::Revoked => "certificate revoked".to_owned(),
            other => format!("certificate refused: {other}"),
        },
        rustls::Error::NoApplicationProtocol => {
            "the server offers no ALPN protocol this client speaks (http/1.1)".to_owned()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// True for URLs whose connections are TLS.
pub fn is_tls_scheme(scheme: &str) -> bool {
    matches!(scheme, "https" | "wss")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_share_is_x25519() {
        let groups: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups[0], rustls::NamedGroup::X25519, "{groups:?}");
        assert_eq!(groups[1], rustls::NamedGroup::secp256r1, "{groups:?}");
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn the_first_cipher_suite_is_aes_128_gcm() {
        let suites: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256, "{suites:?}");
        assert_eq!(suites.len(), rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len());
    }
}
