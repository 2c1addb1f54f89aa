//! Owns the mock's TLS: [`MockTls`], the server configuration a listener serves `https://` and
//! `wss://` with (the same port, REST, `/connect`, `/longpoll` and `/_fault` alike), from PEM
//! files ([`MockTls::from_pem_files`], `--tls-cert`/`--tls-key`) or a self-signed certificate
//! made at start ([`SelfSigned`], `--tls-self-signed`) whose PEM a client then trusts as its CA.
//! The handshake itself runs in `http`, per connection, before hyper sees the bytes. Session
//! tickets are on (stateless, [`MockTls::new`]), so clients may resume.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS server configuration: clone it freely (one `Arc` underneath).
#[derive(Clone)]
pub struct MockTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for MockTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockTls")
    }
}

/// ring, as the harness (see the workspace Cargo.toml); rustls flags ring's provider deprecated
/// for its lack of a post-quantum key exchange, which a test server does not need.
///
/// X25519 first, then P-256 (ring's provider lists P-384 first, whose arithmetic ring does with
/// generic big-number code, several times the CPU of X25519): the groups real servers prefer.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups.sort_by_key(|g| match g.name() {
        rustls::NamedGroup::X25519 => 0,
        rustls::NamedGroup::secp256r1 => 1,
        _ => 2,
    });
    Arc::new(provider)
}

impl MockTls {
    /// Serves this certificate chain (leaf first) with this private key. ALPN: `http/1.1`.
    ///
    /// # Errors
    /// A one-line reason when rustls refuses the pair (a key that does not match, ...).
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("TLS certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Stateless session tickets (TLS 1.3, two per handshake, rustls's default count), so that
        // clients that keep tickets resume however many they are: the default stateful cache
        // holds 256 sessions, fewer than one run's users.
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// `--tls-cert FILE --tls-key FILE`: a PEM certificate chain and its PEM private key.
    ///
    /// # Errors
    /// A one-line reason naming the file.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let cert_pem = read(cert)?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not a PEM certificate file: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: holds no PEM certificate", cert.display()));
        }
        let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|e| format!("{}: no PEM private key: {e}", key.display()))?;
        Self::new(chain, key_der)
    }

    /// The rustls configuration, for the accept loop.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

/// A self-signed certificate made at start with rcgen: for `127.0.0.1` and `localhost` by
/// default, valid from yesterday for a year. Its PEM is what a client trusts as its CA
/// (`chatstorm --ca-cert`, `NODE_EXTRA_CA_CERTS`).
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// Subject alternative names: DNS names, or IP addresses written as such.
    pub names: Vec<String>,
    /// Already expired (tests of the client's refusal).
    pub expired: bool,
}

impl Default for SelfSigned {
    fn default() -> Self {
        Self {
            names: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            expired: false,
        }
    }
}

/// What [`SelfSigned::make`] gives: the server configuration and the certificate's PEM.
#[derive(Debug, Clone)]
pub struct Made {
    /// Serve with this.
    pub tls: MockTls,
    /// The certificate, PEM: the CA a client trusts.
    pub cert_pem: String,
}

impl SelfSigned {
    /// Makes the key pair and the certificate.
    ///
    /// # Errors
    /// A one-line reason when rcgen or rustls refuses (a name that is neither a DNS name nor an
    /// IP address).
    pub fn make(&self) -> Result<Made, String> {
        let mut params = rcgen::CertificateParams::new(self.names.clone()).map_err(|e| e.to_string())?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "chatstorm-mock self-signed");
        params.distinguished_name = dn;
        let day = std::time::Duration::from_secs(86_400);
        let now = std::time::SystemTime::now();
        let (from, until) = if self.expired {
            (now - 30 * day, now - day)
        } else {
            (now - day, now + 365 * day)
        };
        params.not_before = from.into();
        params.not_after = until.into();
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        let tls = MockTls::new(vec![cert.der().clone()], key_der)?;
        Ok(Made {
            tls,
            cert_pem: cert.pem(),
        })
    }
}
