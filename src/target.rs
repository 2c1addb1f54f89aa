//! The server a run talks to: its REST and WebSocket bases, the API key, how tokens are
//! obtained, and (for the embedded or a reachable mock) its fault-control API. This module owns
//! every way to build a [`Target`]: from command-line options ([`TargetOptions`]), from a
//! scenario's `target:` ([`Target::from_scenario`]), for a mock at a known address
//! ([`Target::mock`]), and the plain-WebSocket form ([`Target::plain`]). A target reached over
//! TLS (`https://`, `wss://`) carries the run's one [`Tls`] configuration ([`Target::tls`]),
//! which every connection to it uses.

use crate::net::{Tls, TlsOptions};
use crate::scenario::{RemoteTarget, Scenario, TokenSource, UserKind};
use url::Url;

/// Why a target cannot be built; each prints as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `--api-key`, `--secret` or `--token-endpoint` without `--target`.
    #[error("--api-key, --secret and --token-endpoint need --target")]
    FlagsWithoutTarget,
    /// Token flags for users that use no tokens.
    #[error("plain-websocket users use no tokens: drop --secret and --token-endpoint")]
    PlainWithTokens,
    /// `--target` without `--api-key`.
    #[error("--target needs --api-key (or CHATSTORM_API_KEY)")]
    NoApiKey,
    /// `--target` without a way to get tokens.
    #[error("--target needs --secret (or CHATSTORM_SECRET) or --token-endpoint")]
    NoAuth,
    /// A remote target in a scenario without a way to get tokens.
    #[error("a remote target needs target.secret or users.token.endpoint")]
    NoScenarioAuth,
    /// A URL that does not parse; `what` names where it came from (`--target`, `target.url`).
    #[error("{what} {value:?}: {reason}")]
    BadUrl {
        /// Where the URL was written.
        what: &'static str,
        /// The URL as written.
        value: String,
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// A URL with no usable form, prefixed with where it was written.
    #[error("{what} {reason}")]
    At {
        /// Where the URL was written.
        what: &'static str,
        /// What is wrong with it.
        reason: Box<TargetError>,
    },
    /// A plain WebSocket URL that does not parse.
    #[error("{value:?}: {reason}")]
    Unparsable {
        /// The URL as written.
        value: String,
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// The run's TLS configuration could not be built (`--ca-cert` unreadable, ...).
    #[error("{0}")]
    Tls(String),
    /// `--source-ips` is unreadable, or given without `--target`.
    #[error("--source-ips: {0}")]
    SourceIps(String),
    /// Neither http nor https.
    #[error("target url must be http:// or https://, not {0}://")]
    NotHttp(String),
    /// Neither ws nor http (nor their TLS forms) for plain users.
    #[error("a plain WebSocket target is ws:// or wss://, not {0}://")]
    NotWs(String),
    /// The scheme could not be swapped (a URL that cannot be a base).
    #[error("cannot derive the websocket url")]
    NoWsForm,
    /// The scheme could not be swapped for plain users.
    #[error("cannot derive the http and ws forms of the url")]
    NoHttpForm,
    /// A URL without a host.
    #[error("{0}: no host")]
    NoHost(Url),
}

/// The target as the command line names it (`--target`, `--api-key`, ...), plain strings: the
/// binary's `cli.rs` fills it, [`TargetOptions::build`] turns it into a [`Target`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// `--target`: REST base URL (or the WebSocket URL of plain users).
    pub target: Option<String>,
    /// `--api-key`.
    pub api_key: Option<String>,
    /// `--secret`: the app secret.
    pub secret: Option<String>,
    /// `--token-endpoint`.
    pub token_endpoint: Option<String>,
    /// `--fault-secret`: a standalone chatstorm mock's fault-control secret.
    pub fault_secret: Option<String>,
    /// `--ca-cert` and `--insecure`, for a target reached over TLS.
    pub tls: TlsOptions,
    /// `--source-ips`: local addresses (a list or a CIDR block) the users connect from.
    pub source_ips: Option<String>,
}

impl TargetOptions {
    /// The target named by these options, if any. With `plain` (the scenario's users are
    /// `kind: plain-websocket`) `target` is the WebSocket URL the users open as it is, and needs no
    /// key, secret or token endpoint.
    ///
    /// # Errors
    /// What is wrong with the options.
    pub fn build(&self, plain: bool) -> Result<Option<Target>, TargetError> {
        let sources = match &self.source_ips {
            Some(text) => Some(crate::net::sources::parse(text).map_err(TargetError::SourceIps)?),
            None => None,
        };
        let target = self.build_target(plain)?;
        if sources.is_some() && target.is_none() {
            return Err(TargetError::SourceIps(
                "applies to a real target (--target); the embedded mock's users already spread over loopback addresses"
                    .to_owned(),
            ));
        }
        Ok(target.map(|mut t| {
            t.source_ips = sources;
            t
        }))
    }

    fn build_target(&self, plain: bool) -> Result<Option<Target>, TargetError> {
        let Some(url) = &self.target else {
            if self.api_key.is_some() || self.secret.is_some() || self.token_endpoint.is_some() {
                return Err(TargetError::FlagsWithoutTarget);
            }
            // The embedded mock draws its own fault secret for every run; one given (e.g. from
            // CHATSTORM_FAULT_SECRET set for a service mock) has nothing to open here.
            return Ok(None);
        };
        if plain {
            if self.secret.is_some() || self.token_endpoint.is_some() {
                return Err(TargetError::PlainWithTokens);
            }
            return Target::plain(url)
                .and_then(|t| t.with_tls(&self.tls))
                .map(Some)
                .map_err(|e| TargetError::At {
                    what: "--target",
                    reason: Box::new(e),
                });
        }
        let url = parse_url(
            "--target",
            &url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1),
        )?;
        let api_key = self.api_key.clone().ok_or(TargetError::NoApiKey)?;
        let (auth, secret) = match (&self.secret, &self.token_endpoint) {
            (Some(s), _) => (TargetAuth::Secret(s.clone().into_bytes()), Some(s.clone().into_bytes())),
            (None, Some(e)) => (TargetAuth::TokenEndpoint(parse_url("--token-endpoint", e)?), None),
            (None, None) => return Err(TargetError::NoAuth),
        };
        let mut target = Target::new(url, api_key, auth, secret)?.with_tls(&self.tls)?;
        // A chatstorm mock's fault API is used only once `fault::detect` has seen it accept this secret.
        target.fault_secret = self.fault_secret.clone().filter(|s| !s.is_empty());
        target.is_mock = false;
        Ok(Some(target))
    }
}

fn parse_url(what: &'static str, value: &str) -> Result<Url, TargetError> {
    value.parse().map_err(|reason| TargetError::BadUrl {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// How simulated users obtain their tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAuth {
    /// Tokens are minted locally with the app secret (HS256).
    Secret(Vec<u8>),
    /// Tokens are fetched from an HTTP endpoint with the user id (`GET <url>?user_id=<id>`, the
    /// body either the raw token or `{"token": "..."}`).
    TokenEndpoint(Url),
}

/// Where and how to reach the server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// REST and long-poll base, e.g. `http://127.0.0.1:41234`.
    pub http_base: Url,
    /// WebSocket base, e.g. `ws://127.0.0.1:41234` (the REST base with `http` replaced by `ws`).
    pub ws_base: Url,
    /// The app's API key.
    pub api_key: String,
    /// How tokens are obtained.
    pub auth: TargetAuth,
    /// The app secret, when known (needed for server-side calls and the mock's fault control).
    pub secret: Option<Vec<u8>>,
    /// The secret of the mock's fault-control API (`X-Chatstorm-Secret`), separate from the app
    /// secret: random per run for the embedded mock, `--fault-secret` for a standalone one.
    pub fault_secret: Option<String>,
    /// Whether the target is a chatstorm mock whose fault-control API answered `fault_secret`.
    pub is_mock: bool,
    /// The run's TLS configuration: set ([`Target::with_tls`]) when the target or its token
    /// endpoint is reached over TLS, shared by every connection of the run.
    pub tls: Option<Tls>,
    /// `--source-ips`: the local addresses the users' WebSockets connect from (`None`: the
    /// OS's choice for a remote target, loopback aliases for a loopback one).
    pub source_ips: Option<Vec<std::net::IpAddr>>,
}

impl Target {
    /// A target from its REST base URL, deriving the WebSocket base as the JS SDK does
    /// (`http` → `ws`, `https` → `wss`). An `https` target needs [`Target::with_tls`] before use.
    ///
    /// # Errors
    /// When the URL is neither http nor https.
    pub fn new(
        http_base: Url,
        api_key: String,
        auth: TargetAuth,
        secret: Option<Vec<u8>>,
    ) -> Result<Self, TargetError> {
        let ws_scheme = match http_base.scheme() {
            "http" => "ws",
            "https" => "wss",
            other => return Err(TargetError::NotHttp(other.to_owned())),
        };
        let mut ws_base = http_base.clone();
        ws_base.set_scheme(ws_scheme).map_err(|()| TargetError::NoWsForm)?;
        Ok(Self {
            http_base,
            ws_base,
            api_key,
            auth,
            secret,
            fault_secret: None,
            is_mock: false,
            tls: None,
            source_ips: None,
        })
    }

    /// Whether any connection of the run is TLS: the target itself, or its token endpoint.
    pub fn needs_tls(&self) -> bool {
        let endpoint_tls = matches!(&self.auth, TargetAuth::TokenEndpoint(u) if u.scheme() == "https");
        crate::net::tls::is_tls_scheme(self.ws_base.scheme()) || endpoint_tls
    }

    /// Whether the target itself is reached over TLS (`https`/`wss`).
    pub fn is_tls(&self) -> bool {
        crate::net::tls::is_tls_scheme(self.ws_base.scheme())
    }

    /// The target with the run's TLS configuration built from `options`, when it needs one
    /// ([`Target::needs_tls`]); a plain target is returned as it is.
    ///
    /// # Errors
    /// [`TargetError::Tls`] when the configuration cannot be built (`--ca-cert` unreadable).
    pub fn with_tls(mut self, options: &TlsOptions) -> Result<Self, TargetError> {
        if self.needs_tls() {
            self.tls = Some(Tls::new(options).map_err(|e| TargetError::Tls(e.to_string()))?);
        }
        Ok(self)
    }

    /// The target of plain WebSocket users (`users.kind: plain-websocket`): `ws_base` is the
    /// WebSocket URL they open as it is (an `http://` URL is taken as its `ws://` form), and
    /// `http_base` its `http://` form (used to describe the target); `wss://` and `https://` the
    /// same with TLS (then [`Target::with_tls`] before use). No key and no tokens: `auth` holds an
    /// empty secret that nothing reads.
    ///
    /// # Errors
    /// When the URL is not `ws://`, `wss://`, `http://` or `https://`.
    pub fn plain(url: &str) -> Result<Self, TargetError> {
        let url: Url = url.trim().parse().map_err(|reason| TargetError::Unparsable {
            value: url.to_owned(),
            reason,
        })?;
        let (http, ws) = match url.scheme() {
            "ws" | "http" => ("http", "ws"),
            "wss" | "https" => ("https", "wss"),
            other => return Err(TargetError::NotWs(other.to_owned())),
        };
        let (mut http_base, mut ws_base) = (url.clone(), url);
        http_base
            .set_scheme(http)
            .and_then(|()| ws_base.set_scheme(ws))
            .map_err(|()| TargetError::NoHttpForm)?;
        if ws_base.host_str().is_none() {
            return Err(TargetError::NoHost(ws_base));
        }
        Ok(Self {
            http_base,
            ws_base,
            api_key: String::new(),
            auth: TargetAuth::Secret(Vec::new()),
            secret: None,
            fault_secret: None,
            is_mock: false,
            tls: None,
            source_ips: None,
        })
    }

    /// The target a scenario names (`target.url`), with its token source.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn from_scenario(remote: &RemoteTarget, scenario: &Scenario) -> Result<Self, TargetError> {
        if scenario.users.kind == UserKind::PlainWebsocket {
            return Target::plain(&remote.url)
                .and_then(|t| t.with_tls(&TlsOptions::default()))
                .map_err(|e| TargetError::At {
                    what: "target.url",
                    reason: Box::new(e),
                });
        }
        let url = remote
            .url
            .replacen("ws://", "http://", 1)
            .replacen("wss://", "https://", 1);
        let url = parse_url("target.url", &url)?;
        let (auth, secret) = match &scenario.users.token.source {
            TokenSource::Secret(s) => (TargetAuth::Secret(s.clone().into_bytes()), Some(s.clone().into_bytes())),
            TokenSource::Endpoint(e) => (TargetAuth::TokenEndpoint(parse_url("token endpoint", e)?), None),
            TokenSource::EmbeddedSecret => return Err(TargetError::NoScenarioAuth),
        };
        Target::new(url, remote.api_key.clone(), auth, secret)?.with_tls(&TlsOptions::default())
    }

    /// A chatstorm mock at `http_base` (embedded or started by a test): tokens minted with its
    /// app `secret`, its fault-control API open with `fault_secret`.
    ///
    /// # Errors
    /// When `http_base` is neither http nor https (an https mock then needs [`Target::with_tls`]).
    pub fn mock(http_base: Url, api_key: String, secret: &str, fault_secret: String) -> Result<Self, TargetError> {
        let secret = secret.as_bytes().to_vec();
        let mut t = Target::new(http_base, api_key, TargetAuth::Secret(secret.clone()), Some(secret))?;
        t.fault_secret = Some(fault_secret);
        t.is_mock = true;
        Ok(t)
    }

    /// `base` joined with an absolute path such as `/connect` (keeping any path prefix of the base).
    pub fn join(base: &Url, path_and_query: &str) -> String {
        let b = base.as_str().trim_end_matches('/');
        format!("{b}{path_and_query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ws_base() {
        let t = Target::new(
            "http://127.0.0.1:9/".parse().unwrap(),
            "k".into(),
            TargetAuth::Secret(vec![1]),
            None,
        )
        .unwrap();
        assert_eq!(t.ws_base.as_str(), "ws://127.0.0.1:9/");
        assert_eq!(Target::join(&t.ws_base, "/connect?x=1"), "ws://127.0.0.1:9/connect?x=1");
        let s = Target::new(
            "http://chat.example/api".parse().unwrap(),
            "k".into(),
            TargetAuth::Secret(vec![]),
            None,
        )
        .unwrap();
        assert_eq!(Target::join(&s.ws_base, "/connect"), "ws://chat.example/api/connect");
        let tls = Target::new(
            "https://chat.example".parse().unwrap(),
            "k".into(),
            TargetAuth::Secret(vec![]),
            None,
        )
        .unwrap();
        assert_eq!(tls.ws_base.as_str(), "wss://chat.example/");
        assert!(tls.needs_tls() && tls.tls.is_none() && !t.needs_tls());
        let tls = tls.with_tls(&TlsOptions::default()).unwrap();
        assert!(tls.tls.is_some_and(|c| !c.is_insecure()));
        let missing = TlsOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            insecure: false,
        };
        let e = Target::new(
            "https://chat.example".parse().unwrap(),
            "k".into(),
            TargetAuth::Secret(vec![]),
            None,
        )
        .unwrap()
        .with_tls(&missing)
        .unwrap_err();
        assert!(e.to_string().contains("--ca-cert /nonexistent/ca.pem"), "{e}");
        assert!(Target::new("ftp://x".parse().unwrap(), "k".into(), TargetAuth::Secret(vec![]), None).is_err());
    }

    #[test]
    fn an_https_token_endpoint_gives_a_plain_target_its_tls() {
        let t = Target::new(
            "http://127.0.0.1:9".parse().unwrap(),
            "k".into(),
            TargetAuth::TokenEndpoint("https://auth.example/token".parse().unwrap()),
            None,
        )
        .unwrap();
        assert!(t.needs_tls() && !t.is_tls());
        assert!(t.with_tls(&TlsOptions::default()).unwrap().tls.is_some());
        let plain = Target::new(
            "http://127.0.0.1:9".parse().unwrap(),
            "k".into(),
            TargetAuth::TokenEndpoint("http://auth.example/token".parse().unwrap()),
            None,
        )
        .unwrap();
        assert!(plain.with_tls(&TlsOptions::default()).unwrap().tls.is_none());
    }

    #[test]
    fn a_plain_target_keeps_its_path_and_derives_http() {
        let t = Target::plain("ws://127.0.0.1:9/connect?x=1").unwrap();
        assert_eq!(t.ws_base.as_str(), "ws://127.0.0.1:9/connect?x=1");
        assert_eq!(t.http_base.as_str(), "http://127.0.0.1:9/connect?x=1");
        assert!(t.secret.is_none() && t.api_key.is_empty());
        let h = Target::plain("http://127.0.0.1:9/connect").unwrap();
        assert_eq!(h.ws_base.as_str(), "ws://127.0.0.1:9/connect");
        let s = Target::plain("wss://chat.example/connect").unwrap();
        assert_eq!(s.http_base.as_str(), "https://chat.example/connect");
        assert!(s.is_tls());
        assert!(Target::plain("ftp://x/").is_err());
        assert!(Target::plain("not a url").is_err());
    }
}
