//! The server a run talks to: its REST and WebSocket bases, the API key, how tokens are
//! obtained, and (for the embedded or a reachable mock) its fault-control API.

use url::Url;

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
}

impl Target {
    /// A target from its REST base URL, deriving the WebSocket base as the JS SDK does.
    ///
    /// # Errors
    /// When the URL is not http, or is https (this build has no TLS yet: refused up front with the
    /// way around it, rather than failing every connect).
    pub fn new(http_base: Url, api_key: String, auth: TargetAuth, secret: Option<Vec<u8>>) -> Result<Self, String> {
        let ws_scheme = match http_base.scheme() {
            "http" => "ws",
            "https" => {
                return Err(format!(
                    "{http_base}: this build speaks plain http/ws only (no TLS yet); use an http:// endpoint \
                     or a TLS-terminating proxy on loopback"
                ));
            }
            other => return Err(format!("target url must be http://, not {other}://")),
        };
        let mut ws_base = http_base.clone();
        ws_base
            .set_scheme(ws_scheme)
            .map_err(|()| "cannot derive the websocket url".to_owned())?;
        Ok(Self {
            http_base,
            ws_base,
            api_key,
            auth,
            secret,
            fault_secret: None,
            is_mock: false,
        })
    }

    /// The target of plain WebSocket users (`users.kind: plain-websocket`): `ws_base` is the
    /// WebSocket URL they open as it is (an `http://` URL is taken as its `ws://` form), and
    /// `http_base` its `http://` form (used to describe the target). No key and no tokens: `auth`
    /// holds an empty secret that nothing reads.
    ///
    /// # Errors
    /// When the URL is not `ws://` or `http://` (no TLS in this build).
    pub fn plain(url: &str) -> Result<Self, String> {
        let url: Url = url.trim().parse().map_err(|e| format!("{url:?}: {e}"))?;
        let (http, ws) = match url.scheme() {
            "ws" | "http" => ("http", "ws"),
            "wss" | "https" => {
                return Err(format!(
                    "{url}: this build speaks plain ws only (no TLS yet); use a ws:// URL"
                ));
            }
            other => return Err(format!("a plain WebSocket target is ws://, not {other}://")),
        };
        let (mut http_base, mut ws_base) = (url.clone(), url);
        http_base
            .set_scheme(http)
            .and_then(|()| ws_base.set_scheme(ws))
            .map_err(|()| "cannot derive the http and ws forms of the url".to_owned())?;
        if ws_base.host_str().is_none() {
            return Err(format!("{ws_base}: no host"));
        }
        Ok(Self {
            http_base,
            ws_base,
            api_key: String::new(),
            auth: TargetAuth::Secret(Vec::new()),
            secret: None,
            fault_secret: None,
            is_mock: false,
        })
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
        );
        assert!(tls.unwrap_err().contains("no TLS"));
        assert!(Target::new("ftp://x".parse().unwrap(), "k".into(), TargetAuth::Secret(vec![]), None).is_err());
    }

    #[test]
    fn a_plain_target_keeps_its_path_and_derives_http() {
        let t = Target::plain("ws://127.0.0.1:9/connect?x=1").unwrap();
        assert_eq!(t.ws_base.as_str(), "ws://127.0.0.1:9/connect?x=1");
        assert_eq!(t.http_base.as_str(), "http://127.0.0.1:9/connect?x=1");
        assert!(t.secret.is_none() && t.api_key.is_empty());
        let h = Target::plain("http://127.0.0.1:9/connect").unwrap();
        assert_eq!(h.ws_base.as_str(), "ws://127.0.0.1:9/connect");
        assert!(
            Target::plain("wss://chat.example/connect")
                .unwrap_err()
                .contains("no TLS")
        );
        assert!(Target::plain("ftp://x/").is_err());
        assert!(Target::plain("not a url").is_err());
    }
}
