//! The `/connect` upgrade request as each SDK profile builds it (PROTOCOL.md §1.2–1.3, §11.2,
//! U.1), and the server side's reading of it and of any Stream query string.
//!
//! | profile | auth goes in | `json` extras | `user_details` on reconnect |
//! |---|---|---|---|
//! | js | query | `client_request_id` | full user |
//! | android | query | `server_determines_connection_id`, `X-Stream-Client` | `{id}` |
//! | swift | headers | `server_determines_connection_id` | full user |
//! | flutter | query (`X-Stream-Client` JSON-quoted) | `user_token`, `server_determines_connection_id` | `{id}` |
//! | unity | query (only `json` percent-encoded) | `user_token`, `server_determines_connection_id`, `Id` key | `{"Id"}` |

use crate::user::User;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The official SDK a simulated user imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// stream-chat-js (browser/node).
    Js,
    /// stream-chat-android.
    Android,
    /// stream-chat-swift.
    Swift,
    /// stream-chat-flutter (Dart).
    Flutter,
    /// stream-chat-unity (C#).
    Unity,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 5] = [Self::Js, Self::Android, Self::Swift, Self::Flutter, Self::Unity];

    /// The lowercase name used in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Js => "js",
            Self::Android => "android",
            Self::Swift => "swift",
            Self::Flutter => "flutter",
            Self::Unity => "unity",
        }
    }

    /// Parses a lowercase profile name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The `X-Stream-Client` value this profile sends (versions as read in PROTOCOL.md).
    pub fn user_agent(self) -> &'static str {
        match self {
            Self::Js => "stream-chat-js-v9.53.0-node|client_bundle=chatstorm",
            Self::Android => "stream-chat-android-client-v6.0.0|os=Android|app=chatstorm",
            Self::Swift => "stream-chat-swift-client-v4.80.0|os=iOS|app=chatstorm",
            Self::Flutter => "stream-chat-dart-client-v9.0.0|os=android|app=chatstorm",
            Self::Unity => "stream-chat-unity-client-5.7.0|os=Linux|platform=chatstorm",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `stream-auth-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// A JWT in `authorization`.
    Jwt,
    /// No token.
    Anonymous,
}

impl AuthType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Anonymous => "anonymous",
        }
    }
}

/// The `json` query parameter of `/connect` (and of the long-poll connect).
///
/// # Format
/// ```text
/// {"user_id":"u1","user_details":{"id":"u1","name":"U 1"},"client_request_id":"5f0c..."}      js
/// {"user_id":"u1","user_details":{"Id":"u1"},"user_token":"eyJ...","server_determines_connection_id":true}  unity
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectPayload {
    /// The connecting user.
    pub user_id: String,
    /// The user object (upserted by the server on connect).
    pub user_details: Value,
    /// A push device to register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Value>,
    /// A fresh UUID per JS connect attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Sent by the mobile SDKs; the server decides the id regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_determines_connection_id: Option<bool>,
    /// Flutter and Unity repeat the token here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    /// Android puts its user agent inside the JSON.
    #[serde(rename = "X-Stream-Client", default, skip_serializing_if = "Option::is_none")]
    pub x_stream_client: Option<String>,
}

impl ConnectPayload {
    /// The payload `profile` sends for `user`; `reconnect` selects the reduced `user_details` the
    /// mobile SDKs send on automatic reconnects; `client_request_id` is used by JS only.
    pub fn for_profile(profile: Profile, user: &User, token: &str, reconnect: bool, client_request_id: &str) -> Self {
        let full = || serde_json::to_value(user).unwrap_or(Value::Null);
        let id_only = || serde_json::json!({ "id": user.id });
        let mut p = Self {
            user_id: user.id.clone(),
            user_details: Value::Null,
            device: None,
            client_request_id: None,
            server_determines_connection_id: None,
            user_token: None,
            x_stream_client: None,
        };
        match profile {
            Profile::Js => {
                p.user_details = full();
                p.client_request_id = Some(client_request_id.to_owned());
            }
            Profile::Android => {
                p.user_details = if reconnect { id_only() } else { full() };
                p.server_determines_connection_id = Some(true);
                p.x_stream_client = Some(profile.user_agent().to_owned());
            }
            Profile::Swift => {
                p.user_details = full();
                p.server_determines_connection_id = Some(true);
            }
            Profile::Flutter => {
                p.user_details = if reconnect { id_only() } else { full() };
                p.server_determines_connection_id = Some(true);
                p.user_token = Some(token.to_owned());
            }
            Profile::Unity => {
                p.user_details = serde_json::json!({ "Id": user.id });
                p.server_determines_connection_id = Some(true);
                p.user_token = Some(token.to_owned());
            }
        }
        p
    }
}

/// The request line and headers of a `/connect` upgrade, relative to the WebSocket base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// `/connect?json=...&api_key=...` (the base URL's own path is prepended by the caller).
    pub path_and_query: String,
    /// Extra headers on the upgrade request (Swift sends auth here).
    pub headers: Vec<(String, String)>,
}

/// Builds the upgrade request `profile` sends (PROTOCOL.md §1.2–1.3, U.1).
pub fn build_connect_request(
    profile: Profile,
    api_key: &str,
    token: &str,
    auth_type: AuthType,
    payload: &ConnectPayload,
) -> ConnectRequest {
    const PATH: &str = "/connect?";
    let json = serde_json::to_string(payload).unwrap_or_default();
    let ua = profile.user_agent();
    let mut headers = Vec::new();
    let path_and_query = match profile {
        Profile::Unity => {
            // Only `json` is escaped (Uri.EscapeDataString: space = %20); the rest goes in raw.
            let escaped: String = form_urlencoded::byte_serialize(json.as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            format!("{PATH}json={escaped}&api_key={api_key}&authorization={token}&stream-auth-type=jwt")
        }
        _ => {
            // Written once into a string sized for it: grown pair by pair from empty, and then
            // copied behind "/connect?", it cost a realloc per doubling (about 3 % of the
            // harness's CPU in a reconnect storm). JSON's quotes, braces, colons and commas take
            // three bytes each once encoded: twice the JSON's length covers a user payload.
            let capacity = PATH.len() + 2 * json.len() + api_key.len() + token.len() + ua.len() + 96;
            let mut target = String::with_capacity(capacity);
            target.push_str(PATH);
            let mut q = form_urlencoded::Serializer::for_suffix(target, PATH.len());
            q.append_pair("json", &json).append_pair("api_key", api_key);
            match profile {
                Profile::Swift => {
                    headers.push(("Authorization".to_owned(), token.to_owned()));
                    headers.push(("Stream-Auth-Type".to_owned(), auth_type.as_str().to_owned()));
                    headers.push(("X-Stream-Client".to_owned(), ua.to_owned()));
                }
                Profile::Android if auth_type == AuthType::Anonymous => {
                    q.append_pair("stream-auth-type", auth_type.as_str());
                }
                _ => {
                    q.append_pair("authorization", token)
                        .append_pair("stream-auth-type", auth_type.as_str());
                }
            }
            match profile {
                Profile::Js => {
                    q.append_pair("X-Stream-Client", ua);
                }
                Profile::Flutter => {
                    q.append_pair("X-Stream-Client", &Value::String(ua.to_owned()).to_string());
                }
                _ => {}
            }
            q.finish()
        }
    };
    ConnectRequest {
        path_and_query,
        headers,
    }
}

/// The Stream parameters of a query string (`/connect`, `/longpoll` and REST calls alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectQuery {
    /// The `json` payload, decoded from the query but not parsed.
    pub json: Option<String>,
    /// `api_key`.
    pub api_key: Option<String>,
    /// `authorization` (a raw JWT).
    pub authorization: Option<String>,
    /// `stream-auth-type`.
    pub auth_type: Option<String>,
    /// `X-Stream-Client`.
    pub x_stream_client: Option<String>,
    /// `connection_id` (REST and long-poll).
    pub connection_id: Option<String>,
    /// `user_id` (REST).
    pub user_id: Option<String>,
    /// `close=true` (long-poll).
    pub close: bool,
    /// `payload` (GET bodies of Swift and Unity).
    pub payload: Option<String>,
}

/// Form-decodes a query string (`+` is a space) into the Stream parameters; unknown keys are
/// ignored, and a repeated key keeps its first value.
pub fn parse_query(query: &str) -> ConnectQuery {
    let mut q = ConnectQuery::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "json" => &mut q.json,
            "api_key" => &mut q.api_key,
            "authorization" => &mut q.authorization,
            "stream-auth-type" => &mut q.auth_type,
            "X-Stream-Client" => &mut q.x_stream_client,
            "connection_id" => &mut q.connection_id,
            "user_id" => &mut q.user_id,
            "payload" => &mut q.payload,
            "close" => {
                q.close = v == "true";
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    q
}

/// The token and auth type of a request: the `Authorization` / `Stream-Auth-Type` headers win
/// over the query parameters when both are present (the mock's documented decision).
pub fn resolve_auth(
    query: &ConnectQuery,
    header_authorization: Option<&str>,
    header_auth_type: Option<&str>,
) -> (Option<String>, Option<String>) {
    let token = header_authorization
        .map(str::to_owned)
        .or_else(|| query.authorization.clone());
    let auth_type = header_auth_type.map(str::to_owned).or_else(|| query.auth_type.clone());
    (token, auth_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        serde_json::from_value(serde_json::json!({"id":"u-1","name":"Ann Lee","x":1})).unwrap()
    }

    fn payload_of(req: &ConnectRequest) -> (ConnectQuery, ConnectPayload) {
        let q = parse_query(req.path_and_query.split_once('?').unwrap().1);
        let p = serde_json::from_str(q.json.as_deref().unwrap()).unwrap();
        (q, p)
    }

    #[test]
    fn js_puts_everything_in_the_query() {
        let p = ConnectPayload::for_profile(Profile::Js, &user(), "tok", false, "req-1");
        let req = build_connect_request(Profile::Js, "key", "tok", AuthType::Jwt, &p);
        assert!(req.headers.is_empty());
        assert!(
            req.path_and_query.contains("Ann+Lee"),
            "form encoding: {}",
            req.path_and_query
        );
        let (q, back) = payload_of(&req);
        assert_eq!(back, p);
        assert_eq!(
            (q.api_key.as_deref(), q.authorization.as_deref(), q.auth_type.as_deref()),
            (Some("key"), Some("tok"), Some("jwt"))
        );
        assert_eq!(back.client_request_id.as_deref(), Some("req-1"));
        assert_eq!(back.user_details["name"], "Ann Lee");
    }

    #[test]
    fn swift_sends_auth_in_headers() {
        let p = ConnectPayload::for_profile(Profile::Swift, &user(), "tok", true, "");
        let req = build_connect_request(Profile::Swift, "key", "tok", AuthType::Jwt, &p);
        let (q, back) = payload_of(&req);
        assert_eq!(q.authorization, None);
        assert_eq!(
            resolve_auth(&q, Some("tok"), Some("jwt")),
            (Some("tok".into()), Some("jwt".into()))
        );
        assert!(req.headers.iter().any(|(k, v)| k == "Authorization" && v == "tok"));
        assert_eq!(back.server_determines_connection_id, Some(true));
        assert_eq!(
            back.user_details["name"], "Ann Lee",
            "swift sends the full user on reconnect"
        );
    }

    #[test]
    fn mobile_reconnects_send_id_only() {
        for profile in [Profile::Android, Profile::Flutter] {
            let p = ConnectPayload::for_profile(profile, &user(), "tok", true, "");
            assert_eq!(p.user_details, serde_json::json!({"id":"u-1"}));
            let req = build_connect_request(profile, "key", "tok", AuthType::Jwt, &p);
            assert_eq!(payload_of(&req).1, p);
        }
        let flutter = build_connect_request(
            Profile::Flutter,
            "k",
            "t",
            AuthType::Jwt,
            &ConnectPayload::for_profile(Profile::Flutter, &user(), "t", false, ""),
        );
        assert!(
            parse_query(flutter.path_and_query.split_once('?').unwrap().1)
                .x_stream_client
                .unwrap()
                .starts_with('"')
        );
    }

    #[test]
    fn unity_percent_encodes_only_json() {
        let p = ConnectPayload::for_profile(Profile::Unity, &user(), "tok", false, "");
        let req = build_connect_request(Profile::Unity, "key", "tok", AuthType::Jwt, &p);
        assert!(!req.path_and_query.contains('+'));
        let (q, back) = payload_of(&req);
        assert_eq!(back.user_details, serde_json::json!({"Id":"u-1"}));
        assert_eq!(back.user_token.as_deref(), Some("tok"));
        assert_eq!(q.auth_type.as_deref(), Some("jwt"));
    }

    #[test]
    fn headers_win_over_query() {
        let q = parse_query("authorization=q&stream-auth-type=anonymous&close=true&connection_id=c&user_id=u");
        assert_eq!(
            resolve_auth(&q, Some("h"), None),
            (Some("h".into()), Some("anonymous".into()))
        );
        assert!(q.close);
        assert_eq!(
            (q.connection_id.as_deref(), q.user_id.as_deref()),
            (Some("c"), Some("u"))
        );
    }

    #[test]
    fn profile_names() {
        for p in Profile::ALL {
            assert_eq!(Profile::from_name(p.name()), Some(p));
        }
        assert_eq!(Profile::from_name("kotlin"), None);
    }
}
